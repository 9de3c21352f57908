"""End to end: wall time and peak RSS of `python run.py` (the default job: teacher, KD and
KD+CoD students at k=16), cold (empty cache: teacher trained) and warm (teacher and CFEs cached)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, md_table, write


def run(cache: str) -> tuple[float, float, int]:
    env = {**os.environ, "COD_CACHE": cache}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "run.py", "trainer.enable_progress_bar=false", "resume=false"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main():
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in ("cold (teacher trained, CFEs generated)", "warm (teacher and CFEs cached)"):
            wall, rss, code = run(cache)
            rows.append({"run": name, "wall s": f"{wall:.1f}", "peak RSS MiB": f"{rss:.0f}", "exit": code})
    body = ("`python run.py` (rotten_tomatoes, minilm, kd and kd+CoD at k=16, seed 0) in a fresh cache folder, "
            f"then again.\n\n{md_table(rows)}\n\nTargets: cold ≤ 10 min, warm ≤ 2 min.\n")
    write("bench_e2e", "End-to-end wall time and memory", body)


if __name__ == "__main__":
    main()
