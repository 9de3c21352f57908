"""End to end: wall time and peak RSS of `python run.py` (the default job: teacher, KD, KD(k/2) and
KD+CoD students at k=16), cold (empty cache: teacher trained) and warm (teacher and CFEs cached)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, md_table, write


def run(cache: str, out: str) -> tuple[float, float, int]:
    env = {**os.environ, "COD_CACHE": cache}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "run.py", "trainer.enable_progress_bar=false", "resume=false",
                             f"hydra.run.dir={out}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def scores(out: str) -> str:
    """The seed-0 test accuracies the run printed, from its result.json (teacher, then each variant)."""
    r = json.loads((Path(out) / "result.json").read_text())
    acc = lambda x: f"{100 * x['accuracy']:.1f}"  # noqa: E731
    parts = [f"teacher {acc(r['teacher']['test'])}", f"{r['method']} {acc(r['student']['test'])}"]
    parts += [f"{c['method']}+{c['augment']} {acc(c['student']['test'])}"  # each compare arm writes its own
              for c in (json.loads(p.read_text()) for p in sorted(Path(out).glob("compare/*/result.json")))]
    return ", ".join(parts)


def main():
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for i, name in enumerate(("cold (teacher trained, CFEs generated)", "warm (teacher and CFEs cached)")):
            out = str(Path(cache) / f"run{i}")
            wall, rss, code = run(cache, out)
            rows.append({"run": name, "wall s": f"{wall:.1f}", "peak RSS MiB": f"{rss:.0f}", "exit": code,
                         "test accuracy (seed 0)": scores(out) if code == 0 else "—"})
    body = ("`python run.py` (rotten_tomatoes, minilm, KD, KD(k/2) and KD+CoD with cfe=lm_reader, the default at k=16, seed 0) "
            "in a fresh cache folder, then again (`resume=false`: the students train both times).\n\n"
            f"{md_table(rows)}\n\nTargets: cold ≤ 10 min, warm ≤ 2 min.\n")
    write("bench_e2e", "End-to-end wall time and memory", body)


if __name__ == "__main__":
    main()
