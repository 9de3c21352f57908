"""CoD end to end on tiny models: search and OpenAI-compatible CFEs validated by a real
(tiny, trained) teacher, the cache (zero calls on rerun, kill -9 resume, two processes),
pairing in mini-batches, and the ablations."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cod_pipeline import ConfigError
from cod_pipeline.counterfactuals.store import CFEStore
from cod_pipeline.pipeline import run
from tests.conftest import NEGATIVE, POSITIVE, ROOT, SENTIMENT_TEACHER, write_sentiment_tsv
from tests.openai_server import FakeOpenAIServer, extract_target_sentence

SWAP = {**dict(zip(POSITIVE, NEGATIVE)), **dict(zip(NEGATIVE, POSITIVE))}


def swap_responder(prompt_text, request_json):
    """Behaves like a minimal-edit LLM on the easy sentiment file: swaps the adjective."""
    return " ".join(SWAP.get(w, w) for w in extract_target_sentence(prompt_text).split())


def openai_overrides(srv, *extra):
    return ["cfe=openai", f"cfe.runtime.base_url={srv.base_url}", "cfe.llm.model=fake-llm",
            "cfe.runtime.max_retries=2", "cfe.runtime.timeout_s=5", *extra]


def test_cod_with_search_pairs_originals_and_cfes(sentiment_cfg):
    cfg = sentiment_cfg("augment=cod", "k=8")
    result = run(cfg)
    q = result["cfe"]
    assert q["generator"] == "search" and q["n_valid"] == 4 and q["validity"] > 0
    assert result["student"]["train_size"] == 8  # budget stays k: 4 originals + 4 CFEs
    assert q["edit_distance_mean"] <= cfg.cfe.max_edit_distance
    for s in q["samples"]:  # every CFE flips the teacher
        assert max(range(2), key=lambda c: s["orig_probs"][c]) != max(range(2), key=lambda c: s["cfe_probs"][c])
    assert os.path.exists(q["samples_file"]) and "**" in open(q["samples_file"]).read()
    again = run(sentiment_cfg("augment=cod", "k=8", "method=finetune"))  # another method reuses every CFE
    assert again["cfe"]["cache"] == {"cache_hits": again["cfe"]["n_originals"]}


def test_openai_cfes_feedback_and_zero_calls_on_rerun(sentiment_cfg):
    with FakeOpenAIServer(responder=swap_responder) as srv:
        srv.faults.append(("text", "I cannot help with that.\nHere is why: ..."))  # rejected, then feedback
        cfg = sentiment_cfg("stage=cfe", "k=8", *openai_overrides(srv))
        first = run(cfg)
        q = first["cfe"]
        assert q["n_valid"] == 4 and q["llm_calls"] >= 5
        assert sum(q["rejections"].values()) >= 1
        prompts = [json.dumps(r["body"]) for r in srv.records]
        assert any("previous" in p.lower() for p in prompts)  # the failed attempt went back with feedback
        calls = srv.requests
        second = run(sentiment_cfg("stage=cfe", "k=8", *openai_overrides(srv)))
        assert srv.requests == calls and second["cfe"]["llm_calls_this_run"] == 0
        assert first["cfe"]["llm_calls_this_run"] == calls
        bigger = run(sentiment_cfg("stage=cfe", "k=16", *openai_overrides(srv)))  # nested draw: reuse
        assert bigger["cfe"]["cache"]["cache_hits"] >= 4


def test_missing_api_key_fails_before_generation(sentiment_cfg, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        run(sentiment_cfg("stage=cfe", "k=8", "cfe=openai"))


@pytest.mark.parametrize("augment", ["random_edit", "cod_unvalidated"])
def test_ablations_run(sentiment_cfg, augment):
    result = run(sentiment_cfg(f"augment={augment}", "k=8"))
    assert result["augment"] == augment and result["student"]["train_size"] == 8


def test_default_compare_trains_both_variants(sentiment_cfg):
    result = run(sentiment_cfg("k=8", "compare=[cod]"))
    assert result["augment"] == "none" and "kd+cod" in result["compare"]
    assert os.path.exists(os.path.join(sentiment_cfg().paths.output_dir, "compare", "cod", "result.json"))
    log = open(os.path.join(sentiment_cfg().paths.output_dir, "run.log")).read()  # the printed summary, kept
    assert "student kd+cod" in log and "timings (s) kd:" in log and "timings (s) kd+cod:" in log


def cfe_cli(tmp_path, data, srv, k, *extra):
    args = [sys.executable, "run.py", "stage=cfe", f"k={k}", "model=tiny", "logger=none", "dataset=local",
            f"dataset.source.path={data}", "dataset.label_names=[negative,positive]", "dataset.val_size=100",
            "dataset.test_size=200", *SENTIMENT_TEACHER, "trainer.enable_progress_bar=false", f"paths.root_dir={tmp_path}",
            *openai_overrides(srv, "cfe.runtime.max_in_flight=1", "cfe.runtime.chunk_size=2"), *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_resume_and_two_processes_share_the_cache(tmp_path):
    data = write_sentiment_tsv(tmp_path / "easy.tsv")
    with FakeOpenAIServer(responder=swap_responder, latency_s=0.3) as srv:
        warm = cfe_cli(tmp_path, data, srv, 4)  # trains and caches the teacher once
        assert warm.wait(180) == 0, warm.stderr.read()[-2000:]
        store = CFEStore(tmp_path / ".cache" / "cfe.sqlite")
        before = len(store)

        victim = cfe_cli(tmp_path, data, srv, 32)
        deadline = time.time() + 120
        while len(store) < before + 4 and time.time() < deadline:  # let it store some CFEs
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        stored = len(store)
        assert stored >= before + 4 and store.integrity_check() in (True, "ok")
        calls_at_kill = srv.requests

        a, b = cfe_cli(tmp_path, data, srv, 32), cfe_cli(tmp_path, data, srv, 32)  # resume, twice at once
        assert a.wait(240) == 0, a.stderr.read()[-2000:]
        assert b.wait(240) == 0, b.stderr.read()[-2000:]
        ids = [r["sample_id"] for r in store.all()]
        assert len(ids) == len(set(ids))  # each original paid once
        new_calls = srv.requests - calls_at_kill
        assert new_calls <= 2 * (len(store) - stored) + 4  # no CFE stored before the kill was paid again


def test_hybrid_repairs_llm_proposals_with_the_search(sentiment_cfg):
    def lazy_llm(prompt_text, request_json):  # edits a neutral word: never flips the teacher
        return extract_target_sentence(prompt_text).replace("the ", "a ", 1)

    with FakeOpenAIServer(responder=lazy_llm) as srv:
        cfg = sentiment_cfg("stage=cfe", "k=8", "cfe=hybrid", "cfe.gguf=null", "cfe.max_attempts=1",
                            *openai_overrides(srv)[1:])
        q = run(cfg)["cfe"]
    assert q["generator"] == "hybrid" and q["n_valid"] == 4 and q["llm_calls"] >= 4


def test_hybrid_never_stores_a_repair_of_a_call_that_failed_in_transit(sentiment_cfg):
    """A dead endpoint (500 to every request): the search could repair every original, but no
    record behind a failed call is stored, so a later run against a working endpoint asks the LLM."""
    cfg = sentiment_cfg("stage=cfe", "k=8", "cfe=hybrid", "cfe.gguf=null", "cfe.max_attempts=1")
    with FakeOpenAIServer() as srv:
        srv.faults.extend([("status", 500, {})] * 200)
        dead = sentiment_cfg("stage=cfe", "k=8", "cfe=hybrid", "cfe.gguf=null", "cfe.max_attempts=1",
                             *openai_overrides(srv, "cfe.runtime.backoff_base_s=0.01")[1:])
        with pytest.raises(ConfigError, match="failed all"):
            run(dead)
    assert len(CFEStore(os.path.join(cfg.paths.cache_dir, "cfe.sqlite"))) == 0
    with FakeOpenAIServer() as srv:
        live = sentiment_cfg("stage=cfe", "k=8", "cfe=hybrid", "cfe.gguf=null", "cfe.max_attempts=1",
                             *openai_overrides(srv)[1:])
        q = run(live)["cfe"]
    assert q["llm_calls_this_run"] >= 4 and q["cache"].get("cache_hits", 0) == 0


def test_llm_token_usage_and_cost_are_recorded(sentiment_cfg):
    with FakeOpenAIServer() as srv:
        cfg = sentiment_cfg("stage=cfe", "k=8", *openai_overrides(srv, "cfe.runtime.usd_per_mtok=[2.5,10]"))
        q = run(cfg)["cfe"]
        served = [r["usage"] for r in srv.records if "usage" in r]
    assert q["llm_prompt_tokens"] > 0 and q["llm_completion_tokens"] > 0
    assert q["llm_prompt_tokens"] == sum(u["prompt_tokens"] for u in served)  # every answer, retries' included
    assert q["llm_completion_tokens"] == sum(u["completion_tokens"] for u in served)
    assert q["llm_cost_usd"] == pytest.approx((q["llm_prompt_tokens"] * 2.5 + q["llm_completion_tokens"] * 10) / 1e6,
                                              abs=1e-6)


def test_gguf_from_a_package_glob_or_assemble(tmp_path, monkeypatch):
    """cfe.gguf names a path, a package:glob, or a chunked package whose assemble() joins it."""
    from cod_pipeline.counterfactuals.generators import LocalLLMGenerator

    pkg = tmp_path / "chunky_gguf"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pathlib import Path\n\ndef assemble():\n"
                                     "    p = Path(__file__).parent.parent / 'joined.gguf'\n"
                                     "    p.write_bytes(b'GGUF')\n    return p\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    make = lambda spec: LocalLLMGenerator("sentiment", {"model": "m", "mode": "completion"}, spec)  # noqa: E731
    assert make("chunky_gguf").model_path() == str(tmp_path / "joined.gguf")
    (pkg / "bundled.gguf").write_bytes(b"GGUF")
    assert make("chunky_gguf:*.gguf").model_path() == str(pkg / "bundled.gguf")
    with pytest.raises(ConfigError, match="no GGUF model found"):
        make("no_such_package_xyz").model_path()


def test_a_crashed_local_server_is_one_line(tmp_path):
    from cod_pipeline.counterfactuals.generators import _server_died

    log = tmp_path / "server.log"
    log.write_text("llama_decode: starting\nllama_decode: last words\n")
    proc = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    proc.wait(30)
    with pytest.raises(ConfigError, match=r"crashed \(segfault\): llama_decode: last words .*kept"):
        _server_died(proc, str(log))
