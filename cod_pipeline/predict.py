"""Label texts with an exported student (``student/``), from Python or the command line.

    python -m cod_pipeline.predict STUDENT_DIR INPUT [--out FILE] [--text-column text]

INPUT is a .tsv, .csv or .jsonl file with a text column, a plain text file (one text per line),
or ``-`` for stdin lines. Each output row keeps the input's fields and adds ``label`` and one
``p_<class>`` per class; FILE's extension (.tsv, .csv, .jsonl) picks the format, stdout is JSONL.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cod_pipeline import ConfigError


class Student:
    """An exported student and its tokenizer; ``predict`` labels texts in length-sorted batches."""

    def __init__(self, model, tokenizer):
        from cod_pipeline.models.hf_classifier import HFClassifier

        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        # the pipeline's own batched inference (length-sorted, input order restored) runs it
        self._scorer = HFClassifier(model, tokenizer, list(range(len(self.labels))), model.config.max_seq_length)

    def predict_proba(self, texts, batch_size: int = 64, progress: bool = False):
        from cod_pipeline.models.backbone import predict

        logits, _ = predict(self._scorer, [str(t) for t in texts], batch_size, progress="predict" if progress else None)
        return logits.float().softmax(-1).numpy()

    def predict(self, texts, batch_size: int = 64, progress: bool = False) -> list[dict]:
        """One ``{"label": name, "probs": {name: p}}`` per text."""
        probs = self.predict_proba(texts, batch_size, progress)
        return [{"label": self.labels[int(p.argmax())], "probs": {n: float(x) for n, x in zip(self.labels, p)}}
                for p in probs]


def load_student(path: str | Path) -> Student:
    """The folder ``save_student=true`` wrote, loaded through transformers' Auto classes."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: not an exported student (no config.json); "
                          "run with save_student=true or python -m cod_pipeline.export RUN_DIR")
    model = AutoModelForSequenceClassification.from_pretrained(str(path), trust_remote_code=True)
    return Student(model, AutoTokenizer.from_pretrained(str(path), trust_remote_code=True))


def read_inputs(src: str, column: str) -> list[dict]:
    """Rows with a ``column`` field, from a table, JSONL, plain lines or stdin (``-``)."""
    import pandas as pd

    if src == "-":
        return [{column: line.rstrip("\n")} for line in sys.stdin if line.strip()]
    path = Path(src)
    if not path.is_file():
        raise ConfigError(f"{src}: no such file")
    ext = path.suffix.lower()
    try:
        if ext in (".tsv", ".csv"):
            df = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",", dtype=str, keep_default_na=False)
        elif ext == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            return [{column: line.rstrip("\n")} for line in path.read_text().splitlines() if line.strip()]
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ConfigError(f"{src}: cannot be read as {ext[1:]}: {str(e).splitlines()[0]}") from None
    if column not in df.columns:
        raise ConfigError(f"{src}: no {column!r} column (columns: {', '.join(map(str, df.columns))}); "
                          "set --text-column")
    if not all(isinstance(t, str) for t in df[column]):
        raise ConfigError(f"{src}: column {column!r} holds values that are not text")
    return df.to_dict("records")


def write_outputs(rows: list[dict], out: Path | None) -> None:
    import pandas as pd

    if out is None or out.suffix.lower() == ".jsonl":
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        sys.stdout.write(lines) if out is None else out.write_text(lines)
        return
    pd.DataFrame(rows).to_csv(out, sep="\t" if out.suffix.lower() == ".tsv" else ",", index=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cod_pipeline.predict", description=__doc__.splitlines()[0])
    ap.add_argument("student_dir")
    ap.add_argument("input", help=".tsv/.csv/.jsonl with a text column, a text file of lines, or - for stdin")
    ap.add_argument("--out", type=Path, default=None, help=".tsv, .csv or .jsonl (default: JSONL on stdout)")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    try:
        rows = read_inputs(args.input, args.text_column)
        student = load_student(args.student_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    probs = student.predict_proba([r[args.text_column] for r in rows], args.batch_size, progress=True)
    for r, p in zip(rows, probs):
        r["label"] = student.labels[int(p.argmax())]
        r.update({f"p_{n}": round(float(x), 6) for n, x in zip(student.labels, p)})
    write_outputs(rows, args.out)
    if args.out is not None:
        print(f"{len(rows)} rows: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
