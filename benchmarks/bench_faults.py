"""Bad input, as a user types it: each case through ``python run.py`` in a fresh root, with its one
error line, exit code, seconds to fail, and what the cache holds afterwards (a teacher published,
a result cached, CFE records stored). The LLM-endpoint cases need the test suite's local server and
are covered by tests/test_llm_backend.py and tests/test_cod.py.

    python benchmarks/bench_faults.py
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, md_cell, md_table, write

TINY = ["model=tiny", "logger=none", "compare=[]", "cfe=search", "trainer.enable_progress_bar=false"]


def _files(d: Path) -> dict[str, str]:
    rows = [json.dumps({"sentence": f"a fine film number {i}", "label": i % 2}) for i in range(40)]
    out = {
        "malformed.jsonl": "\n".join(rows[:7] + ['{"sentence": "broken", "label": '] + rows[7:]) + "\n",
        "list_label.jsonl": "\n".join(json.dumps({"sentence": f"s {i}", "label": [i % 2] if i == 3 else i % 2})
                                      for i in range(40)),
        "dict_text.jsonl": "\n".join(json.dumps({"sentence": {"t": i} if i == 5 else f"s {i}", "label": i % 2})
                                     for i in range(40)),
        "tab.tsv": "sentence\tlabel\n" + "".join(f"film {i}\t{i % 2}\n" for i in range(40)) + "a\tstray tab\t1\n",
        "quote.csv": "sentence,label\n" + "".join(f"film {i},{i % 2}\n" for i in range(40)) + '"unterminated,1\n',
        "dup.csv": "sentence,label,label\n" + "".join(f"film {i},{i % 2},1\n" for i in range(40)),
        "text.parquet": "this is not parquet\n",
    }
    for name, text in out.items():
        (d / name).write_text(text)
    return {name: str(d / name) for name in out}


def _cache_state(root: Path) -> str:
    cache = root / ".cache"
    teachers = [p for p in (cache / "teacher").glob("*/*") if (p / "DONE").exists()] if (cache / "teacher").exists() else []
    results = list((cache / "results").glob("*.json")) if (cache / "results").exists() else []
    stored = 0
    if (cache / "cfe.sqlite").is_file():
        try:
            with sqlite3.connect(cache / "cfe.sqlite") as c:
                stored = c.execute("SELECT count(*) FROM cfe").fetchone()[0]
        except sqlite3.DatabaseError:
            stored = "unreadable"
    return f"teachers {len(teachers)}, results {len(results)}, CFE records {stored}"


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = _files(tmp)
        cases = [
            ("label_template with another field", TINY + ["dataset.label_template='a {} {x}'"], None),
            ("batch_size=1 with a paired augment", TINY + ["augment=cod", "model.student_training.batch_size=1"], None),
            ("seed >= 2^32", TINY + ["seed=4294967296"], None),
            ("lr=3e38", TINY + ["model.student_training.lr=3e38"], None),
            ("a key inside base_url", TINY + ["cfe=openai", "augment=cod",
                                              "cfe.runtime.base_url='http://me:sk-x@127.0.0.1:9/v1'"], None),
            ("misspelt + key", TINY + ["+method.alph=0"], None),
            ("misspelt group", ["metod=kd"], None),
            ("a sweep without -m", ["k=8,16"], None),
            ("a damaged cfe.sqlite", TINY + ["augment=cod"], "damaged"),
            ("non-finite student (one step at lr=1e20)",
             TINY + ["model.student_training.lr=1e20", "model.student_training.head_lr=1e20",
                     "model.student_training.max_steps=1", "model.student_training.min_steps=1",
                     "model.student_training.selection=last"], None),
            ("non-finite teacher (lr=1e20)", TINY + ["stage=teacher", "model.teacher_training.lr=1e20",
                                                     "model.teacher_training.train_cap=32",
                                                     "model.teacher_training.batch_size=32"], None),
            *[(f"data file: {name}", TINY + ["dataset=local", f"dataset.source.path={path}"], None)
              for name, path in files.items()],
        ]
        for name, args, setup in cases:
            root = tmp / f"root{len(rows)}"
            root.mkdir()
            if setup == "damaged":
                (root / ".cache").mkdir()
                (root / ".cache" / "cfe.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x13" * 4096)
            t0 = time.time()
            proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                                  cwd=root, env={**os.environ, "COD_ROOT": str(root)}, timeout=600)
            seconds = time.time() - t0
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
            rows.append({"case": name, "exit": proc.returncode, "s": f"{seconds:.1f}",
                         "error lines": len(errors), "traceback": "yes" if "Traceback" in proc.stderr else "no",
                         "the line": md_cell(errors[0] if errors else proc.stderr.strip().splitlines()[-1:][0]
                                             if proc.stderr.strip() else "", 170),
                         "cache afterwards": _cache_state(root)})
            print(rows[-1], flush=True)
    body = ("Each case runs `python run.py` with tiny models in its own fresh root (`COD_ROOT`); seconds "
            "include Python's start (about 2 s). `cache afterwards`: published teachers, cached results and CFE "
            "records a later run would reuse.\n\n" + md_table(rows) + "\n")
    write("bench_faults", "Bad input: one line, exit 2, nothing cached", body)


if __name__ == "__main__":
    main()
