"""Quality on real data: GLUE SST-2 from local TSVs (../shared/data/sst2 or $SST2_DIR) with the
embedded minilm pair: teacher test accuracy (872 sentences), student accuracy and agreement
for KD and KD+CoD at k ∈ {8,16,32,64}, 5 seeds, mean ± std, CoD − KD per k. The figure
(results/bench_sst2_plot.png + .svg) is drawn from the same aggregated tables as the md.

    python benchmarks/bench_sst2.py                  # train (cached jobs are reused), table + figure
    python benchmarks/bench_sst2.py --report-only    # re-read logs/bench_sst2_<model>: no training
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import RESULTS, ROOT, write

AUGMENTS = ("none", "cod")


def plot(tables: dict[str, object], stem: Path) -> list[Path]:
    """One panel per metric table (``report.aggregate`` frames, the ones the md renders): score vs
    k (log2 x, only the ks that ran), one colour per variant, error bars = std over seeds, offset
    along x per variant so they do not overlap. Written as ``<stem>.png`` and ``<stem>.svg``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cod_pipeline.report import _draw_panel

    variants = list(dict.fromkeys(v for t in tables.values() for v in t["variant"]))
    cmap = plt.get_cmap("tab10")
    colour = {v: cmap(i % cmap.N) for i, v in enumerate(variants)}
    step = min(0.06, 0.4 / max(len(variants), 1))  # log2 units between neighbouring variants
    offset = {v: 2.0 ** ((i - (len(variants) - 1) / 2.0) * step) for i, v in enumerate(variants)}
    styles = {"none": "--", "cod": "-"}
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.8), squeeze=False)
    for ax, (metric, t) in zip(axes.flat, tables.items()):
        if metric != "accuracy":
            t = t.assign(teacher=float("nan"))  # the teacher line is its accuracy: only on that panel
        _draw_panel(ax, t, colour, styles, offset, show_paper=False)
        ax.set_title(f"{t['dataset'].iloc[0]}: {metric}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = []
    for ext, kw in (("png", {"dpi": 120}), ("svg", {})):
        p = stem.with_suffix("." + ext)
        fig.savefig(p, **kw)
        out.append(p)
    plt.close(fig)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ks", default="8,16,32,64")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--report-only", action="store_true",
                    help="no training: table and figure from the result.json files already in the sweep folder")
    args = ap.parse_args()
    data = Path(os.environ.get("SST2_DIR", ROOT.parent / "shared" / "data" / "sst2"))
    sweep = ROOT / "logs" / f"bench_sst2_{args.model}"
    if not args.report_only:
        if not (data / "train.tsv").exists():
            sys.exit(f"error: SST-2 TSVs not found in {data} (set SST2_DIR)")
        cmd = [sys.executable, "run.py", "-m", "dataset=sst2_local", f"model={args.model}", f"k={args.ks}",
               f"seed={args.seeds}", f"augment={','.join(AUGMENTS)}", "compare=[]", "logger=none",
               "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"]
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "SST2_DIR": str(data)})
    from cod_pipeline.report import aggregate, collect, render_markdown

    ks = [int(k) for k in args.ks.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    df = collect([str(sweep)]) if sweep.is_dir() else collect([])
    stu = df["stage"] == "student"
    df = df[~stu | (df["k"].isin(ks) & df["seed"].isin(seeds))]  # the cells this run's arguments name
    have = {(r.augment, int(r.k), int(r.seed)) for r in df[df["stage"] == "student"].itertuples()}
    missing = [(a, k, s) for a in AUGMENTS for k in ks for s in seeds if (a, k, s) not in have]
    if missing:  # never a table or a figure from part of the grid
        sys.exit(f"error: {len(missing)} of {len(AUGMENTS) * len(ks) * len(seeds)} runs have no result.json in "
                 f"{sweep} (first: augment={missing[0][0]} k={missing[0][1]} seed={missing[0][2]}); run "
                 f"without --report-only (jobs in the results cache are reused, not retrained)")
    acc = aggregate(df, "accuracy")
    agr = aggregate(df, "agreement")
    teacher = df["teacher_accuracy"].dropna().mean() if len(df) else None
    body = (f"Local SST-2 ({data}), model={args.model}; test = GLUE validation (872). Each cell: mean ± std "
            f"over seeds {args.seeds}.\n\n## Accuracy\n\n{render_markdown(acc)}\n\n## Agreement with the teacher"
            f"\n\n{render_markdown(agr)}\n")
    if teacher is not None and teacher == teacher:
        body = f"Teacher test accuracy: {100 * teacher:.1f}\n\n" + body
    name = f"bench_sst2_{args.model}" if args.model != "minilm" else "bench_sst2"
    write(name, "Quality on SST-2", body)
    for p in plot({"accuracy": acc, "agreement": agr}, RESULTS / f"{name}_plot"):
        print(f"written: {p}")


if __name__ == "__main__":
    main()
