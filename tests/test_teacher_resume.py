"""A teacher fit killed mid-way (SLURM time limit, SIGKILL, preemption) resumes from its last
checkpoint when the job is requeued, instead of starting over from step 0; an uninterrupted fit
publishes the same key and folder layout as before resuming existed."""
from __future__ import annotations

import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cod_pipeline.cache import config_hash
from cod_pipeline.teacher import teacher_key
from cod_pipeline.training import last_checkpoint
from tests.conftest import ROOT, SENTIMENT_TEACHER, make_cfg, write_sentiment_tsv

EVAL_EVERY = 20
# long enough (520 steps, a few seconds) to be killed after its first checkpoint, at step 20
TRAINING = [o for o in SENTIMENT_TEACHER if not o.startswith("model.teacher_training.epochs=")] + [
    "model.teacher_training.epochs=40", f"model.teacher_training.eval_every={EVAL_EVERY}"]
PUBLISHED = {"DONE", "key.json", "meta.json", "model.pt", "probs.pt", "logs"}
# recorded before resuming existed: the teacher's key must not move (a moved key retrains every teacher)
KEYS = {"model=tiny": "9b68778fd1592891", "model=minilm": "af4ae8322b03d949"}


def overrides(tsv: Path) -> list[str]:
    return ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]", "cfe=search",
            "dataset=local", f"dataset.source.path={tsv}", "dataset.label_names=[negative,positive]",
            "dataset.val_size=100", "dataset.test_size=200", *TRAINING]


def command(tsv: Path, root: Path, extra=()) -> list[str]:
    return ["nice", "-n", "19", sys.executable, "run.py", "stage=teacher", *overrides(tsv), *extra,
            f"paths.root_dir={root}", f"hydra.run.dir={root / 'run'}"]


def env() -> dict:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for var in ("COD_CACHE", "COD_ROOT"):  # the teacher is trained into root/.cache
        e.pop(var, None)
    return e


def run(tsv: Path, root: Path, extra=()) -> str:
    p = subprocess.run(command(tsv, root, extra), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr  # Hydra's console log (run.log repeats it)
    assert p.returncode == 0, out[-4000:]
    return out


def kill_after_first_checkpoint(tsv: Path, root: Path, extra=()) -> Path:
    """Start the teacher stage and SIGKILL it (its whole process group) once a last checkpoint exists."""
    p = subprocess.Popen(command(tsv, root, extra), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    teachers, t0 = root / ".cache" / "teacher", time.monotonic()
    try:
        while not (found := list(teachers.glob("*.partial/checkpoints/last.ckpt"))):
            assert p.poll() is None, f"the fit ended before its first checkpoint:\n{p.stderr.read()[-3000:]}"
            assert time.monotonic() - t0 < 240, "no checkpoint within 240 s"
            time.sleep(0.02)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, p.returncode
    return found[0]


def layout(folder: Path) -> set[str]:
    return {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}


def val_scores(metrics_csv: Path) -> list[float]:
    with metrics_csv.open() as f:
        return [float(r["val/score"]) for r in csv.DictReader(f) if r.get("val/score")]


@pytest.fixture(scope="module")
def tsv(tmp_path_factory) -> Path:
    """One data file for every run here: the teacher's key holds its path, size and mtime."""
    return write_sentiment_tsv(tmp_path_factory.mktemp("data") / "easy.tsv")


def test_killed_teacher_fit_resumes_from_its_last_checkpoint(tsv, tmp_path):
    root = tmp_path / "job"
    last = kill_after_first_checkpoint(tsv, root)
    teachers = last.parents[2]
    key = last.parents[1].name.removesuffix(".partial")
    state = torch.load(last, map_location="cpu", weights_only=False)
    step = state["global_step"]
    assert step > 0 and step % EVAL_EVERY == 0  # written after a validation, never between
    best = next(s for s in state["callbacks"].values() if s["monitor"] == "val/score")
    assert not (teachers / key / "DONE").exists() and not list(teachers.glob(".tmp-*"))

    out = run(tsv, root)  # the requeued job: same config, same key, finds the checkpoint
    assert re.findall(r"resuming teacher (\w+) from step (\d+)", out) == [(key, str(step))], out[-3000:]
    assert "training teacher" in out
    teacher = teachers / key
    assert (teacher / "DONE").exists()
    assert sorted(p.name for p in teachers.iterdir() if p.is_dir()) == [key], list(teachers.iterdir())
    assert not (teachers / f"{key}.partial").exists()
    assert {p.name for p in teacher.iterdir()} == PUBLISHED
    meta = json.loads((teacher / "meta.json").read_text())
    training = meta["training"]
    assert training["resumed_from_step"] == step and training["steps"] == 520

    # the selection spans both parts: the best up to the kill (restored from the checkpoint), then
    # every validation after it, each once (a strictly better score replaces the best, as Lightning does)
    versions = sorted((teacher / "logs").glob("version_*"), key=lambda d: int(d.name.split("_")[1]))
    assert len(versions) == 2, versions  # the killed part's log, then the resumed part's
    later = val_scores(versions[-1] / "metrics.csv")
    val_steps = list(range(step + EVAL_EVERY, training["steps"] + 1, EVAL_EVERY))
    assert len(later) == len(val_steps), (later, val_steps)
    best_score, best_step = float(best["best_model_score"]), int(re.search(r"step=(\d+)", best["best_model_path"])[1])
    for s, v in zip(val_steps, later):
        if v > best_score:
            best_score, best_step = v, s
    assert training["best_step"] == best_step and training["best_val_score"] == pytest.approx(best_score, abs=1e-6)


def test_uninterrupted_teacher_publishes_as_before(tsv, tmp_path):
    root = tmp_path / "plain"
    out = run(tsv, root)
    assert "resuming teacher" not in out
    teachers = root / ".cache" / "teacher"
    key = config_hash(teacher_key(make_cfg(root, overrides(tsv))))
    assert sorted(p.name for p in teachers.iterdir() if p.is_dir()) == [key]  # no .partial, no .tmp- left
    teacher = teachers / key
    assert layout(teacher) == {"DONE", "key.json", "meta.json", "model.pt", "probs.pt",
                               "logs/version_0/metrics.csv"}
    meta = json.loads((teacher / "meta.json").read_text())
    assert set(meta["training"]) == {"steps", "selection", "fit_s", "best_val_score", "best_step"}
    assert meta["training"]["steps"] == 520 and meta["training"]["best_step"] % EVAL_EVERY == 0
    scores = val_scores(teacher / "logs" / "version_0" / "metrics.csv")
    assert len(scores) == 520 // EVAL_EVERY
    assert meta["training"]["best_step"] == EVAL_EVERY * (scores.index(max(scores)) + 1)


@pytest.mark.parametrize("model", list(KEYS))
def test_teacher_keys_did_not_move(tmp_path, model):
    assert config_hash(teacher_key(make_cfg(tmp_path, [model]))) == KEYS[model]


def test_unreadable_last_checkpoint_means_starting_over(tmp_path, caplog):
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 killed while writing")
    with caplog.at_level(logging.WARNING):
        assert last_checkpoint(tmp_path) is None
    assert any("cannot be read" in r.getMessage() and "starts over" in r.getMessage() for r in caplog.records)
    assert last_checkpoint(tmp_path / "none") is None


@pytest.mark.slow
def test_killed_ddp_teacher_fit_resumes_on_every_rank(tsv, tmp_path):
    """trainer=ddp on CPU (2 processes, gloo): both ranks resume from rank 0's last checkpoint (the
    same step, else they would train different step counts and hang), and rank 0 publishes."""
    from tests.test_ddp import DDP_CPU

    root = tmp_path / "ddp"
    last = kill_after_first_checkpoint(tsv, root, DDP_CPU)
    key, step = last.parents[1].name.removesuffix(".partial"), torch.load(last, weights_only=False)["global_step"]
    run(tsv, root, DDP_CPU)
    logs = [(root / "run" / name).read_text() for name in ("run.log", "train_ddp_process_1.log")]
    for log in logs:
        assert re.findall(r"resuming teacher (\w+) from step (\d+)", log) == [(key, str(step))], log[-3000:]
    assert "rank 1: the teacher's fit is done" in logs[1]
    teachers = root / ".cache" / "teacher"
    assert sorted(p.name for p in teachers.iterdir() if p.is_dir()) == [key]
    assert {p.name for p in (teachers / key).iterdir()} == PUBLISHED
    assert json.loads((teachers / key / "meta.json").read_text())["training"]["resumed_from_step"] == step
