"""The CFE cache from the command line.

    python -m cod_pipeline.cfe export --cache .cache [--dataset X] [--out cfes.jsonl]
    python -m cod_pipeline.cfe purge-failed --cache .cache [--dataset X]

``export`` writes one JSON line per stored record (original, CFE, the teacher's labels and
probabilities on both, generator, edits, valid, reason), to stdout without ``--out``.
``purge-failed`` deletes the failed records (valid=false), so the next run generates them again.
``--cache`` is the cache folder (holding cfe.sqlite) or the SQLite file itself.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cod_pipeline import ConfigError
from cod_pipeline.counterfactuals.store import CFEStore, damage


def store_path(cache: str | Path) -> Path:
    p = Path(cache)
    return p if p.is_file() or p.suffix == ".sqlite" else p / "cfe.sqlite"


def open_store(cache: str | Path, read_only: bool = False) -> CFEStore:
    """The store at ``cache``, checked first: a missing, empty or damaged file is one line (a
    ConfigError), never a new database made in its place."""
    path = store_path(cache)
    if not path.is_file():
        raise ConfigError(f"no CFE store at {path} (--cache is the cache folder or its cfe.sqlite)")
    if not path.stat().st_size:
        raise ConfigError(f"{path} is empty (0 bytes): not a CFE store")
    if verdict := damage(path):
        raise ConfigError(f"{path} is damaged ({verdict}); sqlite3 .recover may save its records")
    if not read_only and not (os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)):
        raise ConfigError(f"{path} is read-only: purge-failed deletes records, so copy the store somewhere writable")
    return CFEStore(path, read_only=read_only)


def export(cache: str | Path, out: str | Path | None = None, dataset: str | None = None) -> int:
    filters = {"dataset": dataset} if dataset else {}
    with open_store(cache, read_only=True) as store:
        rows = store.export_rows(**filters)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out is None or str(out) == "-":
        sys.stdout.write(lines)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(lines, encoding="utf-8")
    return len(rows)


def purge_failed(cache: str | Path, dataset: str | None = None) -> int:
    filters = {"dataset": dataset} if dataset else {}
    with open_store(cache) as store:
        return store.purge_failed(**filters)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cod_pipeline.cfe", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the stored CFEs as JSONL")
    e.add_argument("--cache", required=True, help="cache folder (with cfe.sqlite) or the .sqlite file")
    e.add_argument("--dataset", help="only this dataset")
    e.add_argument("--out", help="JSONL file (default: stdout)")
    p = sub.add_parser("purge-failed", help="delete failed records (valid=false) so they are generated again")
    p.add_argument("--cache", required=True, help="cache folder (with cfe.sqlite) or the .sqlite file")
    p.add_argument("--dataset", help="only this dataset")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.cmd == "export":
        n = export(args.cache, args.out, args.dataset)
        if args.out and args.out != "-":
            print(f"{n} CFE records written to {args.out}", file=sys.stderr)
    else:
        n = purge_failed(args.cache, args.dataset)
        print(f"{n} failed CFE records deleted from {store_path(args.cache)}; the next run generates them again",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
