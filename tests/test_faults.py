"""Bad input and faults (issue #13): one clear line, exit 2, no wasted work, no poisoned cache."""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from cod_pipeline import ConfigError
from cod_pipeline.cli import config_error, run_job
from cod_pipeline.counterfactuals.generate import CFEGeneration, Gate
from cod_pipeline.counterfactuals.generators import OpenAIGenerator
from cod_pipeline.counterfactuals.llm import EndpointFailed, LLMConfig, OpenAIProposer, PromptItem, task_prompt
from cod_pipeline.counterfactuals.store import CFEStore
from cod_pipeline.data.splits import make_splits
from cod_pipeline.validation import RULES, check_budget, check_rules, num_classes
from tests.conftest import CONF, ROOT, make_cfg, write_sentiment_tsv
from tests.openai_server import FakeOpenAIServer

KEY_ENV = "COD_TEST_FAULTS_KEY"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fails_with(capsys, cfg, code: int = 2) -> str:
    """run_job exits with ``code`` and prints exactly one error line (and no traceback); returns it.
    (Progress bars also write to stderr.)"""
    with pytest.raises(SystemExit) as ei:
        run_job(cfg)
    assert ei.value.code == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith(("error:", "interrupted"))]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------------------------
# 1. LLM transport failures are never stored as a verdict on the original
# ------------------------------------------------------------------------------------------------
WORDS = {"good": 1, "great": 1, "love": 1, "bad": 0, "terrible": 0, "hate": 0}


def word_scorer(texts):
    """A teacher stand-in: positive iff the last sentiment word is positive."""
    out = []
    for t in texts:
        hits = [WORDS[w] for w in t.lower().replace(".", " ").split() if w in WORDS]
        p = 0.9 if (hits and hits[-1]) else 0.1
        out.append([1 - p, p])
    return np.array(out)


def originals(n: int) -> tuple[list[str], list[str]]:
    texts = [f"the film number {i} was {'good' if i % 2 else 'bad'} ." for i in range(n)]
    return [f"id{i}" for i in range(n)], texts


def generation(store_path: Path, url: str, scorer=word_scorer, **kw) -> CFEGeneration:
    llm = {"model": "fake-model", "base_url": url, "api_key_env": KEY_ENV, "max_retries": 1,
           "backoff_base_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 2.0, "max_in_flight": 4,
           **kw.pop("llm", {})}
    return CFEGeneration(CFEStore(store_path), OpenAIGenerator("sentiment", llm), Gate(0.4), "faults", "teacher-x",
                         scorer, ["negative", "positive"], **{"max_attempts": 3, "chunk_size": 4, **kw})


def test_closed_port_stops_in_one_line_and_stores_nothing(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    gen = generation(tmp_path / "cfe.sqlite", url)
    ids, texts = originals(8)
    t0 = time.time()
    with pytest.raises(EndpointFailed) as ei:
        gen.records(ids, texts)
    assert time.time() - t0 < 10
    msg = str(ei.value)
    assert url in msg and "connection" in msg and "\n" not in msg
    assert len(CFEStore(tmp_path / "cfe.sqlite")) == 0  # old code: 8 records {"valid": false, "error:connection"}
    # after a chunk failed entirely, feedback attempts do not pay the retries again
    assert gen.gen.proposer().stats["calls"] <= 4 * (1 + 1) + 4 * 2


def test_server_refusing_halfway_keeps_what_finished_and_retries_the_rest(tmp_path):
    ids, texts = originals(8)
    store = tmp_path / "cfe.sqlite"
    with FakeOpenAIServer() as srv:
        chunks = []

        def scorer(batch):
            if set(batch) <= set(texts):  # the originals of a new chunk
                chunks.append(batch)
                if len(chunks) == 2:
                    srv.stop()  # from now on: connection refused
            return word_scorer(batch)

        url = srv.base_url
        with pytest.raises(EndpointFailed, match=url.replace(".", r"\.")):
            generation(store, url, scorer).records(ids, texts)
    recs = CFEStore(store).all()
    assert len(recs) == 4 and all(r["valid"] for r in recs)  # the first chunk, nothing of the second
    assert not any(str(r.get("reason") or "").startswith("error:") for r in recs)

    with FakeOpenAIServer() as srv2:  # a working server later: the lost half is asked again
        gen = generation(store, srv2.base_url)
        out = gen.records(ids, texts)
        assert srv2.requests == 4 and gen.stats["cache_hits"] == 4
    assert len(out) == 8 and all(r["valid"] for r in out.values())
    assert len(CFEStore(store)) == 8


def test_partial_5xx_is_used_once_not_stored(tmp_path):
    ids, texts = originals(4)
    with FakeOpenAIServer() as srv:
        srv.faults.append(("status", 503, {}))  # the first request, with no retries left
        gen = generation(tmp_path / "cfe.sqlite", srv.base_url, max_attempts=1,
                         llm={"max_in_flight": 1, "max_retries": 0})
        out = gen.records(ids, texts)
    assert len(out) == 4
    failed = [i for i, r in out.items() if "error:http_503" in r["rejections"]]
    assert len(failed) == 1 and gen.stats["transport_failures"] == 1
    stored = CFEStore(tmp_path / "cfe.sqlite").all()
    assert len(stored) == 3 and all(r["sample_id"] != failed[0] for r in stored)


def test_run_py_against_a_closed_port_exits_2_before_the_teacher(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    t0 = time.time()
    p = subprocess.run([sys.executable, "run.py", "stage=cfe", "k=16", "cfe=openai", f"cfe.runtime.base_url={url}",
                        "model=tiny", "logger=none", f"paths.root_dir={tmp_path}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    took = time.time() - t0
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and url in errors[0] and "Traceback" not in p.stderr
    assert "training teacher" not in p.stdout + p.stderr
    assert not (tmp_path / ".cache" / "cfe.sqlite").exists() and not (tmp_path / ".cache" / "teacher").exists()
    assert took < 30  # ~6 s here, most of it imports; was 400 s


def test_ctrl_c_in_llm_generation_is_not_a_chain_of_tracebacks():
    import os
    import signal

    with FakeOpenAIServer(latency_s=30.0) as srv:
        cfg = LLMConfig(model="fake-model", base_url=srv.base_url, api_key_env=KEY_ENV, timeout_s=60)
        proposer = OpenAIProposer(cfg, task_prompt("sentiment"))
        done = threading.Event()

        def interrupt_once_in_flight():  # a real SIGINT (Ctrl-C) while a request waits at the server
            deadline = time.time() + 30
            while not done.is_set() and time.time() < deadline:
                if srv.in_flight:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.01)

        # Python's own Ctrl-C handler, which asyncio.run replaces by its task-cancelling one. A
        # pytest started in the background (`make test &`) inherits SIGINT ignored, and then
        # asyncio.run installs nothing and the signal is dropped
        handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        watcher = threading.Thread(target=interrupt_once_in_flight, daemon=True)
        watcher.start()
        try:
            with pytest.raises(KeyboardInterrupt) as ei:
                out = proposer.propose([PromptItem("it was good .", "positive", "negative")] * 2)
                pytest.fail(f"propose returned without the interrupt: {[p.rejection for p in out]}; "
                            f"SIGINT handler before the test: {handler!r}")
        finally:
            done.set()
            watcher.join(5)
            signal.signal(signal.SIGINT, handler)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__


def test_ctrl_c_is_one_line(tiny_cfg, capsys, monkeypatch):
    import cod_pipeline.pipeline as pipeline

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    assert fails_with(capsys, tiny_cfg(), code=130).startswith("interrupted")


# ------------------------------------------------------------------------------------------------
# 2, 3, 6. Impossible numbers, declared once and rejected before anything loads
# ------------------------------------------------------------------------------------------------
BAD = [
    ("method.temperature=0", "method.temperature must be a number > 0, got 0"),
    ("method.temperature=-2", "method.temperature"),
    ("method.alpha=-1", "method.alpha must be a number >= 0"),
    ("method.beta=-0.5", "method.beta must be a number >= 0"),
    ("model.student_training.lr=0", "model.student_training.lr must be a number in (0, 1e+30]"),
    ("model.teacher_training.lr=-1e-3", "model.teacher_training.lr"),
    ("cfe.max_edit_distance=-1", "cfe.max_edit_distance must be a number in (0, 1], got -1"),
    ("cfe.max_edit_distance=0", "cfe.max_edit_distance"),
    ("cfe.max_edit_distance=1.5", "cfe.max_edit_distance"),
    ("cfe.free_edit_words=-1", "cfe.free_edit_words must be an integer >= 0, got -1"),
    ("cfe.search.screen_dtype=int8", "cfe.search.screen_dtype must be one of float32, bfloat16, float16"),
    ("k=0", "k must be an integer >= 1, got 0"),
    ("k=-8", "k must be an integer"),
    ("seed=abc", "seed must be an integer in [0, 4294967295], got 'abc'"),
    ("seed=-1", "seed must be an integer in [0, 4294967295], got -1"),
    ("seed=1.5", "seed must be an integer"),
    ("model.student_training.selection=bogus", "model.student_training.selection must be one of val, last, agreement"),
    ("k=7", "k=7 is not divisible by the 2 classes; use k=6 or 8"),
]


@pytest.mark.parametrize("override,expected", BAD, ids=[b[0] for b in BAD])
def test_impossible_numbers_fail_before_anything_loads(tiny_cfg, capsys, tmp_path, override, expected):
    cfg = tiny_cfg(override)
    t0 = time.time()
    line = fails_with(capsys, cfg)
    assert line.startswith("error: ") and expected in line
    assert time.time() - t0 < 5
    assert not (tmp_path / "cache").exists()  # no data cached, no teacher, no result


@pytest.mark.parametrize("overrides,expected", [
    (["augment=cod", "k=10"], "k=10 with augment=cod needs k/2=5 divisible by 2 classes; use k=8 or 12"),
    (["compare=[cod]", "k=10"], "k=10 with augment=cod (compare) needs k/2=5 divisible by 2 classes; use k=8 or 12"),
    (["stage=cfe", "k=6"], "k=6 with stage=cfe needs k/2=3 divisible by 2 classes; use k=4 or 8"),
    (["augment=cod", "k=2"], "use k=4"),
    (["compare=[bogus]"], "compare: no augment option 'bogus'"),
])
def test_budget_in_the_numbers_the_user_typed(tiny_cfg, capsys, tmp_path, overrides, expected):
    line = fails_with(capsys, tiny_cfg(*overrides))
    assert expected in line
    assert not (tmp_path / "cache").exists()


def test_every_shipped_option_passes_the_rules():
    conf = Path(CONF)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        for group in ("dataset", "model", "method", "augment", "cfe", "trainer", "logger", "experiment"):
            for f in sorted((conf / group).glob("*.yaml")):
                cfg = compose(config_name="config", overrides=[f"{group}={f.stem}"])
                c = num_classes(cfg) or 2
                if cfg.k % (2 * c):  # a 3-class dataset at the default k=16: at the k its classes allow
                    cfg = compose(config_name="config", overrides=[f"{group}={f.stem}", f"k={4 * c}"])
                check_rules(cfg)
                check_budget(cfg)


def test_non_finite_student_loss_stops_and_caches_nothing(tiny_cfg, capsys, tmp_path):
    line = fails_with(capsys, tiny_cfg("method.alpha=1e39"))  # finite in the config, inf in float32
    assert "student training loss became" in line and "nothing was cached" in line
    assert not list((tmp_path / "cache").glob("results/*.json"))
    assert not (tmp_path / "out" / "result.json").exists()
    assert (tmp_path / "cache" / "teacher").exists()  # the teacher itself was fine and stays cached


def test_non_finite_teacher_loss_leaves_no_teacher(tiny_cfg, capsys, tmp_path):
    line = fails_with(capsys, tiny_cfg("stage=teacher", "model.teacher_training.lr=1e30"))
    assert "teacher training loss became" in line
    assert not [p for p in (tmp_path / "cache" / "teacher").glob("*") if (p / "DONE").exists()]


def test_a_finite_loss_with_nan_weights_is_no_student(tiny_cfg, capsys, tmp_path):
    """One step at lr=1e20: the loss it logged was finite, the weights after it are not."""
    line = fails_with(capsys, tiny_cfg("model.student_training.lr=1e20", "model.student_training.head_lr=1e20",
                                       "model.student_training.max_steps=1", "model.student_training.min_steps=1",
                                       "model.student_training.selection=last"))
    assert line.startswith("error: student:") and "not finite after training" in line and "nothing was cached" in line
    assert not list((tmp_path / "cache").glob("results/*.json"))
    assert not (tmp_path / "out" / "result.json").exists() and not (tmp_path / "out" / "predictions.csv").exists()


def test_a_teacher_with_nan_weights_is_never_published(tiny_cfg, capsys, tmp_path):
    line = fails_with(capsys, tiny_cfg("stage=teacher", "model.teacher_training.lr=1e20",
                                       "model.teacher_training.train_cap=32", "model.teacher_training.batch_size=32"))
    assert line.startswith("error: teacher") and "nothing was cached" in line
    assert not [p for p in (tmp_path / "cache" / "teacher").glob("*") if (p / "DONE").exists()]


# ------------------------------------------------------------------------------------------------
# 3, 4. Data errors are one line; blank cells are not classes; duplicates are reported
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    good = write_sentiment_tsv(d / "good.tsv", 200)
    (d / "empty.tsv").write_text("")
    (d / "header.tsv").write_text("sentence\tlabel\n")
    (d / "latin1.tsv").write_bytes(good.read_bytes() + "caf\xe9 tr\xe8s bon\t1\n".encode("latin-1"))
    (d / "cols.jsonl").write_text("\n".join(json.dumps({"sentence": f"s {i}", "y": i % 2}) for i in range(20)))
    rows = [json.dumps({"sentence": f"a fine film number {i}", "label": i % 2}) for i in range(20)]
    (d / "malformed.jsonl").write_text("\n".join(rows[:7] + ['{"sentence": "broken", "label": '] + rows[7:]) + "\n")
    (d / "list_label.jsonl").write_text("\n".join(
        json.dumps({"sentence": f"s {i}", "label": [i % 2] if i == 3 else i % 2}) for i in range(20)))
    (d / "dict_text.jsonl").write_text("\n".join(
        json.dumps({"sentence": {"t": i} if i == 5 else f"s {i}", "label": i % 2}) for i in range(20)))
    (d / "tab.tsv").write_text("sentence\tlabel\n" + "".join(f"film {i}\t{i % 2}\n" for i in range(10))
                               + "a\tstray tab\t1\n")
    (d / "quote.csv").write_text("sentence,label\n" + "".join(f"film {i},{i % 2}\n" for i in range(10))
                                 + '"an unterminated quote,1\n')
    (d / "dup.csv").write_text("sentence,label,label\n" + "".join(f"film {i},{i % 2},1\n" for i in range(10)))
    (d / "text.parquet").write_text("this is not parquet\n")
    import pandas as pd

    pd.DataFrame({"sentence": [f"s {i}" for i in range(20)], "label": [[i % 2] for i in range(20)]}).to_parquet(
        d / "list_label.parquet")
    (d / "twice.tsv").write_text(good.read_text() + good.read_text())  # two files concatenated, headers and all
    (d / "test3.tsv").write_text("sentence\tlabel\n" + "".join(f"film {i}\t{i % 3}\n" for i in range(30)))
    long = "word " * 30_000  # 150,000 characters: past the csv module's default field limit
    (d / "long.tsv").write_text("sentence\tlabel\n" + "".join(f"{long if i == 0 else 'film'} {i}\t{i % 2}\n"
                                                               for i in range(200)))
    return d


@pytest.mark.parametrize("path,extra,expected", [
    ("missing.tsv", [], "missing.tsv: file not found"),
    ("empty.tsv", [], "empty.tsv is empty"),
    ("header.tsv", [], "has no data rows"),
    ("latin1.tsv", [], "is not UTF-8 (byte 0xe9"),
    ("good.tsv", ["dataset.source.text_column=text"], "no column 'text'"),
    ("good.tsv", ["dataset.source.label_column=y"], "no column 'y'"),
    ("cols.jsonl", [], "no column 'label'"),  # raised inside hydra.utils.instantiate: unwrapped
    ("malformed.jsonl", [], "cannot be read as jsonl (line 8)"),
    ("list_label.jsonl", [], "row 4 of column 'label' is a list, not a label"),
    ("dict_text.jsonl", [], "row 6 of column 'sentence' is a dict, not a text"),
    ("tab.tsv", [], "cannot be read as tsv"),
    ("quote.csv", [], "cannot be read as csv"),
    ("dup.csv", [], "names column(s) 'label' twice"),
    ("text.parquet", [], "text.parquet: cannot be read as parquet"),
    ("list_label.parquet", [], "of column 'label' is a"),
    ("twice.tsv", [], "twice.tsv: data row 201 repeats the header ('sentence', 'label')"),
    ("good.tsv", ["dataset.source.test_path=TEST3"], "test3.tsv: label(s) 2 never occur in"),
])
def test_data_errors_are_one_line(tiny_cfg, capsys, data_dir, path, extra, expected):
    """Each bad file ends in one error line naming it (and the line, where known), before any model."""
    extra = [x.replace("TEST3", str(data_dir / "test3.tsv")) for x in extra]
    cfg = tiny_cfg("dataset=local", f"dataset.source.path={data_dir / path}", *extra)
    t0 = time.time()
    line = fails_with(capsys, cfg)
    assert line.startswith("error: ") and expected in line
    assert time.time() - t0 < 10


def test_unset_local_path_is_one_line(tiny_cfg, capsys):
    assert "dataset.source.path is not set" in fails_with(capsys, tiny_cfg("dataset=local"))


def test_config_error_is_found_inside_hydra_instantiate():
    import hydra

    with pytest.raises(Exception) as ei:
        hydra.utils.instantiate({"_target_": "cod_pipeline.data.sources.read_table", "path": "/no/such/file.tsv"})
    assert not isinstance(ei.value, ConfigError)  # Hydra wraps it
    assert "not found" in str(config_error(ei.value))


def frame(rows):
    return pd.DataFrame(rows, columns=["text", "label"])


def test_blank_label_is_dropped_not_a_class(caplog):
    rows = [(f"text {i}", "positive" if i % 2 else "negative") for i in range(40)]
    rows += [("no label here", ""), ("", "positive"), ("   ", "negative"), ("blank label too", "  ")]
    with caplog.at_level(logging.WARNING):
        splits = make_splits(frame(rows), None, val_size=5, test_size=5)
    assert splits.label_names == ["negative", "positive"]  # old code: ['', 'negative', 'positive']
    warnings = [r.getMessage() for r in caplog.records if "empty text or label" in r.getMessage()]
    assert warnings == ["data: dropped 4 of 44 rows with an empty text or label"]


def test_duplicates_and_conflicts_are_counted_on_one_line(caplog):
    rows = [(f"text {i}", i % 2) for i in range(40)]
    rows += [("text 1", 1), ("text 1", 1), ("text 2", 1), ("text 3", 1)]  # 2 duplicates, 1 conflict ("text 2")
    with caplog.at_level(logging.WARNING):
        splits = make_splits(frame(rows), ["a", "b"], val_size=5, test_size=5)
    assert sum(len(x) for x in (splits.train, splits.validation, splits.test)) == 40
    lines = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(lines) == 1
    assert "3 duplicate rows" in lines[0] and "1 texts with conflicting labels" in lines[0] and "'text 2'" in lines[0]


# ------------------------------------------------------------------------------------------------
# 5. A damaged result cache entry is reported and recomputed
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["{\"schema\": 2, \"stu", "", "[1, 2]", "\xff\xfe"])
def test_damaged_result_cache_is_recomputed(tiny_cfg, caplog, damage):
    from cod_pipeline.pipeline import run_hash, run_one

    cfg = tiny_cfg()
    done = Path(cfg.paths.cache_dir) / "results" / f"{run_hash(cfg)}.json"
    done.parent.mkdir(parents=True)
    done.write_bytes(damage.encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        result = run_one(cfg)
    assert result["stage"] == "student" and "student" in result
    assert json.loads(done.read_text())["run_hash"] == run_hash(cfg)  # overwritten with a good entry
    assert any(str(done) in r.getMessage() and "recomputing" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------------
# 7. A failing compare arm does not lose the finished arm's summary
# ------------------------------------------------------------------------------------------------
def test_failed_compare_arm_summary_on_stdout(tiny_cfg, capsys, monkeypatch):
    import cod_pipeline.pipeline as pipeline

    student = pipeline.TASKS["student"]

    def stage(cfg):
        if cfg.augment.name == "cod":
            raise ConfigError("injected compare failure")
        return student(cfg)

    monkeypatch.setitem(pipeline.TASKS, "student", stage)
    with pytest.raises(SystemExit) as ei:
        run_job(tiny_cfg("compare=[cod]"))
    assert ei.value.code == 2
    cap = capsys.readouterr()
    assert "student kd " in cap.out and "kd+cod did not finish" in cap.out  # old code: no table at all
    assert [ln for ln in cap.err.splitlines() if ln.startswith("error")] == ["error: injected compare failure"]
    assert cap.out.index("did not finish") > cap.out.index("student kd ")


# ------------------------------------------------------------------------------------------------
# 8. Noise
# ------------------------------------------------------------------------------------------------
def test_fit_gives_lightning_a_real_epoch_count_and_logging_interval(tiny_cfg, monkeypatch, recwarn, caplog):
    import cod_pipeline.training as training

    seen = []
    real = training.hydra.utils.instantiate

    def spy(cfg, *a, **kw):
        if "max_steps" in kw:  # the Trainer
            seen.append(kw)
        return real(cfg, *a, **kw)

    monkeypatch.setattr(training.hydra.utils, "instantiate", spy)
    with caplog.at_level(logging.INFO):
        run_job(tiny_cfg())
    assert seen and all(kw["max_epochs"] >= 1 for kw in seen)  # old: -1, shown as "Epoch 0/-2"
    assert all(kw["log_every_n_steps"] <= kw["max_steps"] for kw in seen)
    texts = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    for noise in ("litlogger", "LeafSpec", "logging interval", "TPU available"):
        assert not any(noise in t for t in texts), noise


def test_rules_render_their_ranges():
    assert RULES["cfe.max_edit_distance"].describe() == "a number in (0, 1]"
    assert not RULES["seed"].ok(True) and not RULES["method.temperature"].ok(math.nan)


@pytest.mark.parametrize("url", ["http://me:sk-secret@127.0.0.1:9/v1", "http://127.0.0.1:9/v1?api_key=sk-secret"])
def test_a_key_inside_base_url_is_refused_before_it_reaches_a_file(tiny_cfg, capsys, tmp_path, url):
    line = fails_with(capsys, tiny_cfg("cfe=openai", "augment=cod", f"cfe.runtime.base_url='{url}'"))
    assert "carries credentials" in line and "$OPENAI_API_KEY" in line and "sk-secret" not in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_a_field_past_the_csv_modules_limit_is_read_not_refused(tiny_cfg, data_dir):
    from cod_pipeline.data import load_splits
    from cod_pipeline.validation import validate

    cfg = tiny_cfg("dataset=local", f"dataset.source.path={data_dir / 'long.tsv'}", "dataset.val_size=20",
                   "dataset.test_size=20")
    validate(cfg)
    splits = load_splits(cfg.dataset)
    texts = [*splits.train["text"], *splits.validation["text"], *splits.test["text"]]
    assert max(map(len, texts)) > 131_072


@pytest.mark.parametrize("overrides,expected", [
    (["dataset.label_template='a {} {x}'"], "one {} for the class name"),
    (["augment=cod", "model.student_training.batch_size=1"], "batch_size must be at least 2"),
    (["seed=4294967296"], "seed"),
    (["model.student_training.lr=3e38"], "model.student_training.lr"),
    (["task_name=../../escape"], "task_name='../../escape' names a folder of the run"),
    (["dataset.name=/abs"], "dataset.name='/abs' names a folder"),
    (["dataset.label_names=[neg,neg]"], "'neg' named twice"),
])
def test_inputs_that_used_to_fail_after_work_fail_up_front(tiny_cfg, capsys, tmp_path, overrides, expected):
    t0 = time.time()
    line = fails_with(capsys, tiny_cfg(*overrides))
    assert expected in line and time.time() - t0 < 10
    assert not (tmp_path / "cache" / "teacher").exists()  # nothing trained


def test_a_damaged_cfe_store_or_a_result_that_is_a_folder_is_one_line_before_the_teacher(tiny_cfg, capsys, tmp_path):
    from cod_pipeline.jobs import result_path

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cfe.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x13" * 4096)
    line = fails_with(capsys, tiny_cfg("augment=cod"))
    assert "cfe.sqlite is damaged" in line and not (cache / "teacher").exists()
    (cache / "cfe.sqlite").unlink()
    cfg = tiny_cfg("k=8")
    result_path(cfg).mkdir(parents=True)
    line = fails_with(capsys, cfg)
    assert "is not a file" in line and not (cache / "teacher").exists()


def _cli_error(tmp_path, *args) -> str:
    """``run.py ARGS`` in a fresh root: exit 2 with exactly one error line, and nothing trained."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "run.py"), *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "COD_ROOT": str(tmp_path)})
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert not (tmp_path / ".cache" / "teacher").exists()
    return lines[0]


def test_a_misspelt_plus_key_is_refused_not_trained_at_the_defaults(tmp_path):
    assert "did you mean method.alpha?" in _cli_error(tmp_path, "model=tiny", "logger=none", "+method.alph=0")


@pytest.mark.parametrize("arg,expected", [("metod=kd", "did you mean method?"), ("k=8,16", "add -m"),
                                          ("dataset.label_names=[négatif,positif]",
                                           """write 'dataset.label_names=["négatif","positif"]'"""),
                                          ("dataset.label_template=café {}", """write 'dataset.label_template="café {}"'""")])
def test_hydra_parse_errors_are_one_line_with_the_fix(tmp_path, arg, expected):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "run.py"), arg], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "COD_ROOT": str(tmp_path)})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr[-2000:]
    if "write '" in expected:  # the fix it names is an override Hydra parses
        from cod_pipeline.validation import _unparsable

        assert _unparsable(expected.split("write '", 1)[1].rstrip("'")) is None


def test_compare_given_as_a_string_is_one_line_naming_the_list_syntax(tmp_path):
    assert "write compare=[half]" in _cli_error(tmp_path, "model=tiny", "logger=none", "compare=half")


def test_a_5_mb_answer_is_neither_stored_nor_sent_back(tmp_path):
    ids, texts = originals(2)
    huge = "the film was terrible " * 240_000  # ~5 MB on one line
    with FakeOpenAIServer() as srv:
        srv.faults.extend([("text", huge)] * 2)  # the first attempt of each original
        out = generation(tmp_path / "cfe.sqlite", srv.base_url).records(ids, texts)
        assert all(r["valid"] for r in out.values())  # the next attempt answered normally
        assert max(len(r["raw"]) for r in srv.records) < 10_000  # no feedback prompt carries the 5 MB back
    for rec in CFEStore(tmp_path / "cfe.sqlite").all():
        assert rec["rejections"] == {"too_long": 1} and len(json.dumps(rec)) < 10_000


def test_a_multirun_checks_every_job_before_the_first_starts(tmp_path):
    """k=8 would train (a teacher, a student) before k=1 failed; the sweep is refused whole instead."""
    line = _cli_error(tmp_path, "-m", "model=tiny", "logger=none", "k=8,1")
    assert line.startswith("error: job 2 of 2 (") and "k=1" in line and "no job was started" in line
    assert not list(tmp_path.rglob("result.json"))


def test_a_sweep_files_params_are_expanded_for_the_check(tmp_path):
    """table_cpu sweeps k × augment × seed (18 jobs per dataset) from hydra.sweeper.params: the
    first job of the dataset without a data file is the 19th of 36."""
    root = Path(__file__).resolve().parents[1]
    line = _cli_error(tmp_path, "-m", "--config-dir", str(root / "multirun_sweeps"), "--config-name", "table_cpu",
                      "dataset=rotten_tomatoes,local")
    assert line.startswith("error: job 19 of 36 (dataset=local") and "dataset.source.path" in line


@pytest.mark.parametrize("augment,asks", [("cod", True), ("cod_full", True), ("cod_unvalidated", True),
                                          ("random_edit", False), ("retrieved", False), ("none", False)])
def test_the_endpoint_is_checked_up_front_only_for_augments_that_ask_the_generator(tmp_path, augment, asks):
    """Each augment class says whether it asks ``cfe`` (no list of names): a random_edit or retrieved
    run with cfe=openai needs no endpoint; a cod run does."""
    from cod_pipeline.validation import needs_llm

    assert needs_llm(make_cfg(tmp_path, ["cfe=openai", f"augment={augment}"])) is asks
    assert not needs_llm(make_cfg(tmp_path, ["cfe=search", f"augment={augment}"]))


def test_a_test_file_whose_texts_occur_in_train_stays_the_test_split(tmp_path, caplog):
    """Deduplication keeps a text once: a test file of 40 rows copied from a 200-row train file used
    to vanish into train, and a test split be carved from train in its place."""
    from cod_pipeline.data.sources import local

    train = write_sentiment_tsv(tmp_path / "train.tsv", 200)
    lines = train.read_text().splitlines()
    (tmp_path / "test.tsv").write_text("\n".join(lines[:1] + lines[1:41]) + "\n")
    with caplog.at_level(logging.WARNING):
        splits = make_splits(local(str(train), test_path=str(tmp_path / "test.tsv")), None, val_size=20,
                             test_size=50)
    test_texts = set(splits.test["text"])
    assert len(test_texts) == len({ln.split("\t")[0].strip() for ln in lines[1:41]})
    assert not test_texts & set(splits.train["text"]) and not test_texts & set(splits.validation["text"])
    assert any("also occur in" in r.getMessage() and "dropped from train" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("test_rows,expected", [("same", "every text also occurs in"),
                                                ("blank", "no test rows")])
def test_a_test_file_that_leaves_no_train_or_no_test_is_one_line(tiny_cfg, capsys, tmp_path, test_rows, expected):
    train = write_sentiment_tsv(tmp_path / "train.tsv", 200)
    test = tmp_path / "test.tsv"
    test.write_text(train.read_text() if test_rows == "same" else "sentence\tlabel\n \t1\n \t0\n")
    cfg = tiny_cfg("dataset=local", f"dataset.source.path={train}", f"dataset.source.test_path={test}")
    assert expected in fails_with(capsys, cfg)


@pytest.mark.parametrize("task,ok", [("sentimnet", False), ("acceptabilty", False), ("stance", True),
                                     ("topic", True), ("SST2", True)])
def test_a_near_miss_of_a_known_task_is_one_line(tmp_path, task, ok):
    """A task name no entry has gets the generic edits (stance, topic); a near miss of a known one
    would quietly drop the sentiment edits."""
    from cod_pipeline.validation import check_task

    cfg = make_cfg(tmp_path, [f"dataset.task={task}"])
    if ok:
        check_task(cfg)
    else:
        with pytest.raises(ConfigError, match="did you mean"):
            check_task(cfg)
