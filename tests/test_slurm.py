"""A real SLURM cluster on this machine (cluster/slurm_local.sh): a staged multirun of tiny jobs
through hydra/launcher=slurm_cpu (submitit), one task killed mid-run with scancel, a relaunch
that skips the finished jobs, and the report. Skipped, with the reason, where SLURM cannot start."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
SCRIPT = ROOT / "cluster" / "slurm_local.sh"
NICE = ["nice", "-n", "19"]


def _log(msg):
    print(f"[slurm-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if sys.platform != "linux" or not shutil.which("bash"):
        pytest.skip("SLURM test needs Linux and bash")
    d = Path(os.environ.get("COD_SLURM_TEST_DIR", "/tmp/cod-slurm-test"))
    env = {**os.environ, "COD_SLURM_DIR": str(d), "COD_SLURM_PORT": os.environ.get("COD_SLURM_PORT", "6827")}
    try:
        start = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("SLURM cannot start here: cluster/slurm_local.sh start timed out")
    if start.returncode != 0:
        pytest.skip(f"SLURM cannot start here: {(start.stderr or start.stdout).strip().splitlines()[-1:]}")
    _log(start.stdout.strip())
    env["SLURM_CONF"] = str(d / "slurm.conf")
    # no slurmdbd here: cluster/bin/sacct answers submitit's state queries from slurmctld
    env["PATH"] = f"{ROOT / 'cluster' / 'bin'}:{env['PATH']}"
    yield env
    stop = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=120)
    _log(stop.stdout.strip())


def _job_env(slurm):
    # sbatch exports the submitting environment to the tasks (--export=ALL): one thread each
    return {**slurm, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "WANDB_MODE": "offline", "WANDB_SILENT": "true", "COD_SHARED_FS": "auto",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), slurm.get("PYTHONPATH")]))}


def _squeue(env):
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def _submitit_logs(sweep: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    out = {}
    for d in sorted((sweep / ".submitit").glob("*")):
        if d.name in skip:
            continue
        out[d.name] = "".join(p.read_text(errors="replace") for p in sorted(d.glob("*_log.*")))
    return out


def _finished_tasks(sweep: Path) -> set[str]:
    """Array tasks (``<jobid>_<index>``) whose submitit result exists, i.e. that completed."""
    return {p.parent.name for p in (sweep / ".submitit").glob("*_*/*_result.pkl")}


def _results(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.rglob("result.json") if "compare" not in p.parts and ".submitit" not in p.parts)


def test_slurm_multirun_kill_relaunch_report(slurm, tmp_path):
    env = _job_env(slurm)
    sweep = tmp_path / "sweep"
    common = ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]",
              f"paths.root_dir={tmp_path}", "hydra/launcher=slurm_cpu", "hydra.launcher.partition=debug",
              "hydra.launcher.timeout_min=10", "hydra.launcher.array_parallelism=2",
              "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
    python = [*NICE, sys.executable, "run.py", "-m"]

    # stage 1: the teacher, once, as its own SLURM job (the students then only read the cache)
    t0 = time.time()
    teach = subprocess.run([*python, *common, "stage=teacher", f"hydra.sweep.dir={tmp_path / 'teacher'}"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert teach.returncode == 0, teach.stderr[-3000:]
    tlog = "".join(_submitit_logs(tmp_path / "teacher").values())
    assert tlog.count("training teacher") == 1, tlog[-3000:]
    _log(f"stage=teacher: 1 SLURM job, teacher trained once ({time.time() - t0:.0f} s)")

    # stage 2: 4 students (k × method) as one array; the first task to start is held (a Hydra
    # callback from tests/slurm_hold.py) and killed with scancel while it runs
    hold = tmp_path / "hold"
    students = [*python, *common, "k=4,8", "method=kd,finetune", f"hydra.sweep.dir={sweep}"]
    held = [*students, "+hydra.callbacks.hold._target_=tests.slurm_hold.HoldFirstJob",
            f"+hydra.callbacks.hold.hold_dir={hold}"]
    t0 = time.time()
    first = subprocess.Popen(held, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 600
    while killed is None and time.time() < deadline and first.poll() is None:
        if (hold / "held").exists():
            jid = (hold / "held").read_text()
            if [jid, "RUNNING"] in _squeue(env):
                done = _finished_tasks(sweep)
                subprocess.run(["scancel", jid], env=env, check=True)
                killed = jid
                _log(f"scancel {jid} while running (held at job start); finished before: {sorted(done)}")
        time.sleep(0.2)
    out, err = first.communicate(timeout=600)
    assert killed is not None, "no task was running after a first job finished: " + err[-2000:]
    assert first.returncode != 0, "the launcher should report the cancelled task"
    finished = _finished_tasks(sweep)
    assert killed not in finished
    assert len(_results(sweep)) == len(finished) < 4
    _log(f"first launch: rc={first.returncode} (launcher reports the cancelled task), {len(finished)}/4 "
         f"finished {sorted(finished)}, {time.time() - t0:.0f} s")

    # relaunch the same command: finished jobs are skipped, the killed one (and any not started) run
    before = set(_submitit_logs(sweep))
    results_before = {p.name: p.stat().st_mtime for p in (tmp_path / "cache" / "results").glob("*.json")}
    t0 = time.time()
    again = subprocess.run(students, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    logs = _submitit_logs(sweep, skip=before)
    text = "".join(logs.values())
    skips = text.count("skip: a result for this config exists")
    assert skips == len(finished), (skips, finished, text[-3000:])
    assert "training teacher" not in text  # students read the staged teacher
    assert len(_results(sweep)) == 4
    for name, mtime in results_before.items():  # finished results untouched
        assert (tmp_path / "cache" / "results" / name).stat().st_mtime == mtime
    _log(f"relaunch: rc=0, {skips} skipped (finished before), {4 - skips} run, {time.time() - t0:.0f} s")

    rep = subprocess.run([*NICE, sys.executable, "-m", "cod_pipeline.report", str(sweep), "--out",
                          str(tmp_path / "rep")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    import pandas as pd

    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert set(table["variant"]) == {"kd", "finetune"} and set(table["k"]) == {4, 8}
    _log(f"report: {len(table)} cells in {tmp_path / 'rep' / 'table.csv'}")
    results = [json.loads(p.read_text()) for p in _results(sweep)]
    assert {(r["method"], r["k"]) for r in results} == {("kd", 4), ("kd", 8), ("finetune", 4), ("finetune", 8)}
