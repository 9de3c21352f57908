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
        "empty.tsv": "",
        "header_only.tsv": "sentence\tlabel\n",
        "long_field.tsv": "sentence\tlabel\n" + "word " * 30_000 + "\t1\n" + "".join(f"film {i}\t{i % 2}\n" for i in range(40)),
        "twice.tsv": ("sentence\tlabel\n" + "".join(f"film {i}\t{i % 2}\n" for i in range(40))) * 2,
    }
    for name, text in out.items():
        (d / name).write_text(text)
    (d / "latin1.tsv").write_bytes(b"sentence\tlabel\n" + "caf\xe9 tr\xe8s bon\t1\n".encode("latin-1"))
    import pandas as pd

    pd.DataFrame({"sentence": [f"s {i}" for i in range(40)], "label": [[i % 2] for i in range(40)]}).to_parquet(
        d / "list_label.parquet")
    (d / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"a film {i}\t{i % 2}\n" for i in range(200)))
    (d / "test3.tsv").write_text("sentence\tlabel\n" + "".join(f"film {i}\t{i % 3}\n" for i in range(30)))
    return {name: str(d / name) for name in [*out, "latin1.tsv", "list_label.parquet"]} | {
        "_train": str(d / "train.tsv"), "_test3": str(d / "test3.tsv")}


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
            ("an unquoted non-ASCII value", ["dataset.label_names=[négatif,positif]"], None),
            ("a damaged cfe.sqlite", TINY + ["augment=cod"], "damaged"),
            ("non-finite student (one step at lr=1e20)",
             TINY + ["model.student_training.lr=1e20", "model.student_training.head_lr=1e20",
                     "model.student_training.max_steps=1", "model.student_training.min_steps=1",
                     "model.student_training.selection=last"], None),
            ("non-finite teacher (lr=1e20)", TINY + ["stage=teacher", "model.teacher_training.lr=1e20",
                                                     "model.teacher_training.train_cap=32",
                                                     "model.teacher_training.batch_size=32"], None),
            ("compare given as a string", TINY + ["compare=half"], None),
            ("k not divisible by the classes", TINY + ["k=7"], None),
            ("k too small for CoD's k/2", TINY + ["k=2", "augment=cod"], None),
            ("task_name outside the output root", TINY + ["task_name=../../escape"], None),
            ("duplicate label names", TINY + ["dataset.label_names=[a,a]"], None),
            ("a near-miss task name", TINY + ["dataset.task=sentimnet"], None),
            ("an LLM endpoint nobody answers at", TINY + ["cfe=openai", "augment=cod",
                                                          "cfe.runtime.base_url=http://127.0.0.1:9/v1"], None),
            ("a sweep whose last job is bad", ["-m", *TINY, "k=8,1"], None),
            ("missing data file", TINY + ["dataset=local", "dataset.source.path=/no/such/file.tsv"], None),
            *[(f"data file: {name}", TINY + ["dataset=local", f"dataset.source.path={path}", "dataset.val_size=10",
                                             "dataset.test_size=10"], None)
              for name, path in files.items() if not name.startswith("_")],
            ("test file with a class train lacks", TINY + ["dataset=local", f"dataset.source.path={files['_train']}",
                                                           f"dataset.source.test_path={files['_test3']}"], None),
            ("test file that is the train file", TINY + ["dataset=local", f"dataset.source.path={files['_train']}",
                                                         f"dataset.source.test_path={files['_train']}"], None),
            ("CFE export of a missing store", None, "cfe-missing"),
            ("CFE export of a 0-byte store", None, "cfe-empty"),
        ]
        for name, args, setup in cases:
            root = tmp / f"root{len(rows)}"
            root.mkdir()
            if setup == "damaged":
                (root / ".cache").mkdir()
                (root / ".cache" / "cfe.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x13" * 4096)
            if setup == "cfe-empty":
                (root / ".cache").mkdir()
                (root / ".cache" / "cfe.sqlite").write_bytes(b"")
            cmd = ([sys.executable, "-m", "cod_pipeline.cfe", "export", "--cache", str(root / ".cache")]
                   if setup and setup.startswith("cfe-") else [sys.executable, str(ROOT / "run.py"), *args])
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root,
                                  env={**os.environ, "COD_ROOT": str(root), "PYTHONPATH": str(ROOT)}, timeout=600)
            seconds = time.time() - t0
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
            rows.append({"case": name, "exit": proc.returncode, "s": f"{seconds:.1f}",
                         "error lines": len(errors), "traceback": "yes" if "Traceback" in proc.stderr else "no",
                         "the line": md_cell(errors[0] if errors else proc.stderr.strip().splitlines()[-1:][0]
                                             if proc.stderr.strip() else "", 170),
                         "cache afterwards": _cache_state(root)})
            print(rows[-1], flush=True)
    ok = sum(r["exit"] == 2 and r["error lines"] == 1 and r["traceback"] == "no" for r in rows)
    # long_field.tsv is valid (a field past the csv module's default limit used to be a traceback): it trains
    body = (f"{ok} of {len(rows)} cases exit 2 with one `error:` line and no traceback. "
            "Each case runs `python run.py` (or the CFE CLI) with tiny models in its own fresh root (`COD_ROOT`); seconds "
            "include Python's start (about 2 s). `cache afterwards`: published teachers, cached results and CFE "
            "records a later run would reuse.\n\n" + md_table(rows) + "\n\nCovered by tests instead (a real "
            "local server, tmpfs, read-only bind mounts, kill -9): a dead endpoint under hybrid (test_cod), int, "
            "list, empty and 5 MB LLM answers, trickle and Retry-After deadlines (test_llm_backend, test_faults), "
            "a full disk under the CFE store (test_cfe_store), a read-only store (test_cfe_export) and report "
            "folder (test_report), a results entry that is a folder (test_faults), runs on other local files as "
            "other report cells (test_report).\n")
    write("bench_faults", "Bad input: one line, exit 2, nothing cached", body)


if __name__ == "__main__":
    main()
