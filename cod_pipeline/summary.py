"""The small table a run prints when it ends."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(result: dict, path, unfinished: str | None = None) -> None:
    """The table of what finished, also appended to the run's ``run.log``; ``unfinished`` names a
    compare arm that failed (its error follows)."""
    from pathlib import Path

    console = Console(record=True)
    table = Table(title=f"{result['dataset']} · {result['model']} · k={result['k']} · seed={result['seed']}")
    for col in ("model", "accuracy", "macro-F1", "MCC", "agreement", "majority"):
        table.add_column(col, justify="right" if col != "model" else "left")

    def row(name, m):
        fmt = lambda key: f"{100 * m[key]:.1f}" if m.get(key) is not None else "–"  # noqa: E731
        table.add_row(name, fmt("accuracy"), fmt("macro_f1"), fmt("mcc"), fmt("agreement"), fmt("majority"))

    if result.get("cfe") and not result.get("student"):  # a CFE job's own line (a CoD student's CFEs: its result.json)
        q = result["cfe"]
        r2 = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731 (None: no valid CFE)
        fl = f", fluency drop {r2(q['fluency_drop_mean'])}" if q.get("fluency_drop_mean") is not None else ""
        console.print(f"CFEs ({q['generator']}): validity {r2(q['validity'])}, mean edit distance "
                      f"{r2(q['edit_distance_mean'])}, edited words {r2(q['edited_words_mean'])}, teacher margin "
                      f"original {r2(q['margin_original_mean'])} → CFE {r2(q['margin_cfe_mean'])}{fl}, LLM calls "
                      f"{q['llm_calls']}, {q['seconds']:.1f} s; samples: {q['samples_file']}")
    if result.get("teacher"):
        row("teacher", result["teacher"]["test"])
    variants = [(_variant(result), result)] + list(result.get("compare", {}).items())
    for name, res in variants:
        if res.get("student"):
            row(f"student {name}", res["student"]["test"])
    console.print(table)
    for name, res in variants:
        times = ", ".join(f"{k}={v:.1f}" for k, v in res.get("timings_s", {}).items())
        console.print(f"timings (s){'' if len(variants) == 1 else ' ' + name}: {times}")
    console.print(f"result: {path}")
    if unfinished:
        console.print(f"student {unfinished} did not finish (the error follows); the rows above are complete")
    log = Path(path).parent / "run.log"
    if log.parent.exists():
        with log.open("a") as f:
            f.write(console.export_text())


def _variant(result: dict) -> str:
    return result["method"] + ("" if result["augment"] == "none" else "+" + result["augment"])


def print_stage_output(stage, result: dict, out_dir) -> None:
    """What a finished job prints: the mechanism stages their Markdown tables, the others the
    summary table (``stage``: a ``stages.Stage``)."""
    from pathlib import Path

    out_dir = Path(out_dir)
    if stage.prints_tables:
        for md in sorted(out_dir.glob("*.md")):
            print(f"\n## {md.name}\n{md.read_text()}")
        print(f"written to {out_dir}")
    else:
        print_summary(result, out_dir / "result.json")
