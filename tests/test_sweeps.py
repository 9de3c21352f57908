"""A real Hydra multirun on tiny models, its report, resume, and W&B offline."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from cod_pipeline.pipeline import run
from tests.conftest import ROOT


def hydra_run(*args, env=None, timeout=300):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_multirun_report_and_resume(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]", "k=4,8",
            "method=kd,finetune",
            f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    first = hydra_run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    results = sorted(sweep.rglob("result.json"))
    assert len(results) == 4
    # job folders are named by their coordinates (conf/hydra/default.yaml), not numbered
    assert {str(p.parent.relative_to(sweep)) for p in results} == {
        f"rotten_tomatoes/tiny/{m}+none/k{k}/seed0" for m in ("kd", "finetune") for k in (4, 8)}
    combos = {(r["method"], r["k"]) for r in map(lambda p: json.loads(p.read_text()), results)}
    assert combos == {("kd", 4), ("kd", 8), ("finetune", 4), ("finetune", 8)}

    rep = subprocess.run([sys.executable, "-m", "cod_pipeline.report", str(sweep), "--out", str(tmp_path / "rep")],
                         cwd=ROOT, capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert set(table["variant"]) == {"kd", "finetune"} and set(table["k"]) == {4, 8}
    assert (table["n"] == 1).all()
    assert (tmp_path / "rep" / "table.md").exists() and list((tmp_path / "rep").glob("*.png"))

    again = hydra_run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("skip: a result for this config exists") == 4


def test_wandb_offline_writes_run_and_no_secret(tiny_cfg):
    secret = "sk-test-SECRET-do-not-leak-42"
    os.environ["OPENAI_API_KEY"] = secret
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    try:
        cfg = tiny_cfg("logger=wandb", "k=4")
        run(cfg)
    finally:
        os.environ.pop("OPENAI_API_KEY")
    out = Path(cfg.paths.output_dir)
    runs = list(out.rglob("offline-run-*"))
    assert runs, list(out.rglob("*"))[:20]
    for f in Path(cfg.paths.root_dir).rglob("*"):
        if f.is_file() and f.stat().st_size < 50_000_000:
            assert secret.encode() not in f.read_bytes(), f
