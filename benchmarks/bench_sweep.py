"""Where a sweep's seconds go, per job: process start and imports (paid once per process, so once
per job under a SLURM launcher), then each job's data, teacher and CFE loading, student build,
teacher-output caching, fit and evaluation, against the job's wall time. The sweep runs twice in
a fresh cache: cold (teacher trained, CFEs generated) and warm (both cached, students retrained)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, md_table, write

SWEEP = ["k=8,16", "seed=0,1", "augment=cod"]
PARTS = ("data", "teacher", "cfe", "build", "teacher_outputs", "fit", "evaluate")


def seconds(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def sweep(env: dict, out: Path) -> tuple[float, list[dict]]:
    """Wall time of one multirun (basic launcher: one process) and its jobs' results, in job order."""
    cmd = [sys.executable, "run.py", "-m", *SWEEP, "compare=[]", "logger=none", "resume=false",
           "trainer.enable_progress_bar=false", f"hydra.sweep.dir={out}"]
    t0 = time.time()
    wall = seconds(cmd, env)
    jobs = sorted(out.rglob("result.json"), key=lambda p: p.stat().st_mtime)
    results, last = [], t0
    for p in jobs:
        r = json.loads(p.read_text())
        r["wall_s"], last = p.stat().st_mtime - last, p.stat().st_mtime  # from the previous job's end
        results.append(r)
    return wall, results


def job_row(run: str, r: dict, first: bool) -> dict:
    t = {**r["timings_s"], **r["student"].get("seconds", {})}
    parts = {p: t.get(p, 0.0) for p in PARTS}
    student_rest = t["student"] - sum(parts[p] for p in ("build", "teacher_outputs", "fit"))
    accounted = sum(parts.values()) + student_rest
    return {"run": run, "job": f"k={r['k']} seed={r['seed']}", **{p: f"{v:.1f}" for p, v in parts.items()},
            "other (logging, writing)": f"{r['wall_s'] - accounted:.1f}" + (" (+ process start)" if first else ""),
            "job wall s": f"{r['wall_s']:.1f}", "fit share": f"{parts['fit'] / r['wall_s']:.0%}"}


def main():
    rows, walls = [], []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "COD_CACHE": cache}
        python_s = seconds([sys.executable, "-c", "pass"], env)
        import_s = seconds([sys.executable, "-c", "import run, cod_pipeline.pipeline, cod_pipeline.counterfactuals."
                            "pairing, pytorch_lightning, transformers"], env)
        for run in ("cold", "warm"):
            wall, results = sweep(env, Path(cache) / f"sweep-{run}")
            fit_s = sum(r["student"]["seconds"]["fit"] for r in results)
            walls.append({"run": run, "jobs": len(results), "sweep wall s": f"{wall:.1f}", "Σ fit s": f"{fit_s:.1f}",
                          "fit share": f"{fit_s / wall:.0%}"})
            rows += [job_row(run, r, i == 0) for i, r in enumerate(results)]
    cmd = " ".join(["python run.py -m", *SWEEP, "compare=[]"])
    body = (f"`{cmd}` (rotten_tomatoes, minilm, KD+CoD with cfe=lm_search), one process (Hydra's basic launcher), in "
            "a fresh cache: cold, then warm (`resume=false`: the students train again).\n\n"
            f"Process start: Python {python_s:.2f} s; Python + the pipeline's imports (torch, Lightning, "
            f"transformers) {import_s:.1f} s. A SLURM launcher (one process per job) pays this, and the loads "
            "below, once per job; the basic launcher once per sweep.\n\n"
            f"{md_table(walls)}\n\nPer job, seconds (`timings_s` and `student.seconds` of each result.json; "
            "`teacher` and `cfe` are cache reads once warm; job wall = time since the previous job's result):\n\n"
            f"{md_table(rows)}\n")
    write("bench_sweep", "A sweep's cost per job: start, loads and caching against training", body)


if __name__ == "__main__":
    main()
