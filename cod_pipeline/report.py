"""Aggregate per-run ``result.json`` files into the paper's results table.

Usage::

    python -m cod_pipeline.report <multirun dir or glob> [more ...] \
        [--out DIR] [--metric accuracy|macro_f1|mcc|agreement|auto]

Layout (markdown / LaTeX): one row per dataset x variant (plus a gain row
``Δ <variant>`` under every augmented variant), one column per k, cells
``mean ± std`` over seeds in percentage points (x100, sample std, ddof=1).
Missing cells are ``—``.  The teacher score per dataset is a separate column.

``table.csv`` is long format with one row per (dataset, variant, k) of the
full grid (missing cells have mean/std NaN and n=0).  ``mean``, ``std``,
``gain`` and ``teacher`` are in percentage points (x100).

Public API: :func:`collect`, :func:`aggregate`, :func:`render_markdown`,
:func:`render_latex`, :func:`plot`, :func:`main`.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

METRICS = ("accuracy", "macro_f1", "mcc", "agreement")
METHOD_ORDER = {"finetune": 0, "kd": 1, "lwd": 2}
AUGMENT_ORDER = {"none": 0, "cod": 1}
MISSING = "—"
MINUS = "−"

AGG_COLUMNS = [
    "dataset", "variant", "method", "augment", "alpha", "k", "mean", "std", "n",
    "metric", "gain", "baseline", "teacher", "teacher_n", "teacher_metric",
]


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------
# collection
# --------------------------------------------------------------------------
def _has_glob(p: str) -> bool:
    return any(c in p for c in "*?[")


def _expand(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every ``result.json`` under each dir / glob (recursive), deduplicated."""
    found: dict[str, Path] = {}
    for raw in paths:
        raw = str(raw)
        matches = sorted(glob.glob(raw, recursive=True)) if _has_glob(raw) else [raw]
        for m in matches:
            p = Path(m)
            if p.is_dir():
                cands = p.rglob("result.json")
            elif p.is_file() and p.name == "result.json":
                cands = [p]
            else:
                cands = []
            for c in cands:
                if c.is_file():
                    found.setdefault(str(c.resolve()), c)
    return sorted(found.values(), key=str)


def _metrics_dict(d) -> dict:
    if not isinstance(d, dict):
        return {}
    out = {}
    for m in METRICS:
        v = d.get(m)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[m] = float(v)
    return out


def _parse(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        _warn(f"skipping {path}: cannot parse JSON ({e.__class__.__name__}: {e})")
        return None
    if not isinstance(r, dict):
        _warn(f"skipping {path}: top level is not an object")
        return None
    stage = r.get("stage", "student")
    dataset = r.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        _warn(f"skipping {path}: missing field 'dataset'")
        return None
    teacher = _metrics_dict((r.get("teacher") or {}).get("test") if isinstance(r.get("teacher"), dict) else None)
    row = {
        "path": str(path),
        "mtime": path.stat().st_mtime,
        "stage": stage,
        "dataset": dataset,
        "model": r.get("model"),
        "run_hash": r.get("run_hash"),
        "primary_metric": r.get("primary_metric") or ("mcc" if dataset == "cola" else "accuracy"),
    }
    for m in METRICS:
        row[f"teacher_{m}"] = teacher.get(m, np.nan)
    if stage != "student":
        if not teacher:
            return None  # e.g. a cfe-stage result: nothing for the table
        row.update(method=None, augment=None, alpha=np.nan, k=np.nan, seed=np.nan)
        for m in METRICS:
            row[f"student_{m}"] = np.nan
        return row

    missing = [f for f in ("method", "augment", "k", "seed") if r.get(f) is None]
    student = r.get("student")
    s_test = student.get("test") if isinstance(student, dict) else None
    if not isinstance(s_test, dict):
        missing.append("student.test")
    if missing:
        _warn(f"skipping {path}: missing field(s) {', '.join(missing)}")
        return None
    try:
        k = int(r["k"])
        seed = int(r["seed"])
        alpha = float(r["alpha"]) if r.get("alpha") is not None else np.nan
    except (TypeError, ValueError) as e:
        _warn(f"skipping {path}: bad k/seed/alpha ({e})")
        return None
    s = _metrics_dict(s_test)
    if not s:
        _warn(f"skipping {path}: student.test has no known metric")
        return None
    row.update(method=str(r["method"]), augment=str(r["augment"]), alpha=alpha, k=k, seed=seed)
    for m in METRICS:
        row[f"student_{m}"] = s.get(m, np.nan)
    return row


def _fmt_alpha(a: float) -> str:
    return f"{a:g}"


def _label_variants(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``alpha_key`` / ``variant`` columns to the student rows."""
    stu = df["stage"] == "student"
    # finetune has no KD term: its alpha is meaningless, ignore it
    alpha_key = df["alpha"].where(df["method"] != "finetune")
    nonzero = sorted(set(alpha_key[stu & alpha_key.notna() & (alpha_key != 0)]))
    many = len(nonzero) > 1
    models = df.loc[stu, "model"].dropna().unique()
    multi_model = len(models) > 1

    def label(r) -> str | None:
        if r["stage"] != "student":
            return None
        v = r["method"] if r["augment"] == "none" else f"{r['method']}+{r['augment']}"
        a = r["alpha_key"]
        if not (isinstance(a, float) and math.isnan(a)):
            if a == 0:
                v += " (α=0)"
            elif many:
                v += f" (α={_fmt_alpha(a)})"
        if multi_model:
            v = f"{r['model']}/{v}"
        return v

    df = df.copy()
    df["alpha_key"] = alpha_key
    df["variant"] = df.apply(label, axis=1) if len(df) else pd.Series(dtype=object)
    return df


def collect(paths) -> pd.DataFrame:
    """Read every ``result.json`` under ``paths`` (dirs or globs, recursive).

    Returns one row per valid file with columns path, mtime, stage, dataset,
    model, method, augment, alpha, alpha_key, k, seed, primary_metric,
    teacher_<metric>, student_<metric>, variant.  Invalid files are skipped
    with a warning on stderr.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = [r for r in (_parse(p) for p in _expand(paths)) if r is not None]
    cols = ["path", "mtime", "stage", "dataset", "model", "run_hash", "primary_metric",
            "method", "augment", "alpha", "k", "seed"] + \
        [f"teacher_{m}" for m in METRICS] + [f"student_{m}" for m in METRICS]
    df = pd.DataFrame(rows, columns=cols)
    df["alpha"] = df["alpha"].astype(float)
    return _label_variants(df)


# --------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------
def _variant_sort_key(method, alpha_key, augment, model):
    a = alpha_key
    a_rank = (2, 0.0) if a == 0 else ((0, 0.0) if (a is None or (isinstance(a, float) and math.isnan(a))) else (1, float(a)))
    return (str(model or ""), METHOD_ORDER.get(method, 99), str(method), a_rank,
            AUGMENT_ORDER.get(augment, 2), str(augment))


def _dedupe(stu: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    key = ["dataset", "variant", "k", "seed"]
    before = len(stu)
    stu = stu.sort_values("mtime", kind="stable").drop_duplicates(key, keep="last")
    return stu, before - len(stu)


def aggregate(df: pd.DataFrame, metric: str = "auto") -> pd.DataFrame:
    """Long table over the full grid datasets x variants x ks.

    Columns: see ``AGG_COLUMNS``.  ``mean``/``std``/``gain``/``teacher`` are in
    percentage points; ``std`` is the sample std (NaN with one seed); missing
    cells have NaN mean and n=0.  ``gain`` = mean(variant) - mean(baseline) for
    augmented variants, where the baseline is the same method/alpha with
    augment=none.  ``agg.attrs['duplicates_dropped']`` counts runs dropped as
    duplicates of (dataset, variant, k, seed) (newest file kept).
    """
    if metric not in METRICS + ("auto",):
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS + ('auto',)}")
    if "variant" not in df.columns:
        df = _label_variants(df)

    stu = df[df["stage"] == "student"].copy()
    stu, ndup = _dedupe(stu)
    if ndup:
        _warn(f"dropped {ndup} duplicate run(s) sharing (dataset, variant, k, seed); kept the newest by mtime")

    def pick(r, prefix):
        m = r["primary_metric"] if metric == "auto" else metric
        if prefix == "teacher" and m == "agreement":
            m = r["primary_metric"]  # agreement is undefined for the teacher
        return m, r.get(f"{prefix}_{m}", np.nan)

    if len(stu):
        picked = stu.apply(lambda r: pick(r, "student"), axis=1)
        stu["metric"] = [p[0] for p in picked]
        stu["score"] = [p[1] * 100.0 for p in picked]
        nan = stu["score"].isna()
        if nan.any():
            _warn(f"{int(nan.sum())} run(s) lack the requested metric; ignored")
            stu = stu[~nan]
    else:
        stu["metric"] = pd.Series(dtype=object)
        stu["score"] = pd.Series(dtype=float)

    # teacher score per dataset: mean over unique teachers
    tcols = [f"teacher_{m}" for m in METRICS]
    teach = {}
    for ds, g in df.groupby("dataset", sort=False):
        g = g.dropna(subset=tcols, how="all").drop_duplicates(subset=tcols)
        vals, tmetric = [], None
        for _, r in g.iterrows():
            tmetric, v = pick(r, "teacher")
            if not pd.isna(v):
                vals.append(v * 100.0)
        teach[ds] = (float(np.mean(vals)) if vals else np.nan, len(vals), tmetric)

    # grid
    datasets = sorted(set(stu["dataset"]) | set(teach))
    vinfo = (stu.drop_duplicates("variant")[["variant", "method", "augment", "alpha_key", "model"]]
             if len(stu) else pd.DataFrame(columns=["variant", "method", "augment", "alpha_key", "model"]))
    vinfo = sorted(vinfo.itertuples(index=False),
                   key=lambda v: _variant_sort_key(v.method, v.alpha_key, v.augment, v.model))
    ks = sorted(stu["k"].astype(int).unique().tolist()) if len(stu) else []

    # dataset metric label (for 'auto' it can differ per dataset)
    ds_metric = {}
    for ds in datasets:
        ms = stu.loc[stu["dataset"] == ds, "metric"].unique().tolist()
        if ms:
            ds_metric[ds] = "/".join(sorted(ms))
        else:
            ds_metric[ds] = metric if metric != "auto" else ("mcc" if ds == "cola" else "accuracy")

    g = stu.groupby(["dataset", "variant", "k"])["score"]
    stats = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})
    rows = []
    for ds in datasets:
        t, tn, tm = teach.get(ds, (np.nan, 0, None))
        for v in vinfo:
            for k in ks:
                key = (ds, v.variant, k)
                if key in stats.index:
                    s = stats.loc[key]
                    mean, std, n = float(s["mean"]), float(s["std"]), int(s["n"])
                else:
                    mean, std, n = np.nan, np.nan, 0
                rows.append(dict(dataset=ds, variant=v.variant, method=v.method, augment=v.augment,
                                 alpha=v.alpha_key, k=int(k), mean=mean, std=std, n=n,
                                 metric=ds_metric[ds], teacher=t, teacher_n=tn,
                                 teacher_metric=tm or ds_metric[ds], _model=v.model))
    agg = pd.DataFrame(rows, columns=AGG_COLUMNS[:9] + ["metric", "teacher", "teacher_n", "teacher_metric", "_model"])

    # gain vs. baseline (same model, method, alpha, augment=none)
    base_of = {}
    for v in vinfo:
        if v.augment == "none":
            continue
        cands = [b for b in vinfo if b.augment == "none" and b.method == v.method and b.model == v.model
                 and ((pd.isna(b.alpha_key) and pd.isna(v.alpha_key)) or b.alpha_key == v.alpha_key)]
        base_of[v.variant] = cands[0].variant if cands else None
    means = agg.set_index(["dataset", "variant", "k"])["mean"]
    gains, bases = [], []
    for r in agg.itertuples(index=False):
        b = base_of.get(r.variant)
        bases.append(b)
        if b is None:
            gains.append(np.nan)
        else:
            gains.append(r.mean - means.get((r.dataset, b, r.k), np.nan))
    agg["gain"] = gains
    agg["baseline"] = bases
    agg = agg.drop(columns="_model")[AGG_COLUMNS]
    agg.attrs["duplicates_dropped"] = ndup
    agg.attrs["ks"] = ks
    agg.attrs["metric"] = metric
    return agg


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _fmt_cell(mean, std, n, with_n: bool) -> str:
    if n == 0 or pd.isna(mean):
        return MISSING
    s = f"{mean:.1f} ± " + ("–" if pd.isna(std) else f"{std:.1f}")
    s = s.replace("-", MINUS) if mean < 0 else s
    return f"{s} (n={n})" if with_n else s


def _fmt_gain(g) -> str:
    if pd.isna(g):
        return MISSING
    g = round(float(g), 1)
    if g == 0:
        return "±0.0"
    return f"+{g:.1f}" if g > 0 else f"{MINUS}{abs(g):.1f}"


def _fmt_teacher(t) -> str:
    return MISSING if pd.isna(t) else f"{t:.1f}"


def _layout(agg: pd.DataFrame):
    """Rows of the paper layout: (dataset_label, teacher, variant_label, cells, is_gain, new_block)."""
    ks = sorted(agg["k"].unique().tolist())
    filled = agg[agg["n"] > 0]["n"]
    with_n = filled.nunique() > 1
    note = (f"n = {int(filled.iloc[0])} seed(s) per cell" if len(filled) and not with_n
            else "cells: mean ± std over seeds (n = number of seeds)")
    out = []
    order = list(dict.fromkeys(agg["dataset"]))
    for ds in order:
        d = agg[agg["dataset"] == ds]
        first = True
        metric = d["metric"].iloc[0]
        tm = d["teacher_metric"].iloc[0]
        t_label = _fmt_teacher(d["teacher"].iloc[0])
        if tm != metric and t_label != MISSING:
            t_label += f" ({tm})"
        for var in dict.fromkeys(d["variant"]):
            dv = d[d["variant"] == var].set_index("k")
            cells = [_fmt_cell(dv.at[k, "mean"], dv.at[k, "std"], int(dv.at[k, "n"]), with_n) for k in ks]
            out.append((f"{ds} ({metric})" if first else "", t_label if first else "", var, cells, False, first))
            first = False
            if dv["augment"].iloc[0] != "none":
                base = dv["baseline"].iloc[0]
                lab = f"Δ {var} vs {base}" if base else f"Δ {var} (no baseline)"
                out.append(("", "", lab, [_fmt_gain(dv.at[k, "gain"]) for k in ks], True, False))
    return ks, out, note


def render_markdown(agg: pd.DataFrame) -> str:
    """Paper-layout markdown table (plus a one-line note on seeds / units)."""
    if agg.empty:
        return "_no results_\n"
    ks, rows, note = _layout(agg)
    header = ["Dataset (metric)", "Teacher", "Variant"] + [f"k={k}" for k in ks]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---", "---:", ":---"] + ["---:"] * len(ks)) + "|"]
    for ds, t, var, cells, is_gain, _ in rows:
        if is_gain:
            var = f"*{var}*"
            cells = [f"*{c}*" if c != MISSING else c for c in cells]
        lines.append("| " + " | ".join([ds, t, var.replace("|", "\\|")] + cells) + " |")
    extra = ""
    nd = agg.attrs.get("duplicates_dropped", 0)
    if nd:
        extra = f"; {nd} duplicate run(s) dropped (newest kept)"
    lines.append("")
    lines.append(f"Scores ×100; {note}; {MISSING} = missing cell; Δ = gain over the same method without augmentation{extra}.")
    return "\n".join(lines) + "\n"


_TEX_MAP = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "α": r"$\alpha$", "Δ": r"$\Delta$", MINUS: r"$-$", MISSING: "--", "–": "--",
    "×": r"$\times$",
}


def _tex(s: str) -> str:
    return "".join(_TEX_MAP.get(c, c) for c in str(s))


def render_latex(agg: pd.DataFrame) -> str:
    """LaTeX ``tabular`` (booktabs rules) of the same layout as the markdown."""
    if agg.empty:
        return "% no results\n"
    ks, rows, note = _layout(agg)
    lines = [r"% requires \usepackage{booktabs}",
             r"\begin{tabular}{ll l" + "r" * len(ks) + "}", r"\toprule",
             " & ".join(["Dataset", "Teacher", "Variant"] + [f"$k={k}$" for k in ks]) + r" \\",
             r"\midrule"]
    started = False
    for ds, t, var, cells, is_gain, new_block in rows:
        if new_block and started:
            lines.append(r"\midrule")
        started = True
        v = _tex(var)
        cs = [_tex(c) for c in cells]
        if is_gain:
            v = r"\textit{" + v + "}"
            cs = [r"\textit{" + c + "}" if c != "--" else c for c in cs]
        lines.append(" & ".join([_tex(ds), _tex(t), v] + cs) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "% " + _tex(f"Scores ×100; {note}")]
    return "\n".join(lines) + "\n"


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s))


def plot(agg: pd.DataFrame, out_dir) -> list[Path]:
    """One PNG per dataset: score vs k (log2 x), one colour per method/alpha,
    solid = CoD, dashed = no augmentation, dotted/dash-dot = other augments,
    error bars = std; teacher as a grey horizontal line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    styles = {"none": "--", "cod": "-"}
    other_styles = [":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3))]
    augs = [a for a in dict.fromkeys(agg["augment"]) if a not in styles]
    for i, a in enumerate(augs):
        styles[a] = other_styles[i % len(other_styles)]
    cmap = plt.get_cmap("tab10")
    base_names = list(dict.fromkeys(_base_name(v, a) for v, a in zip(agg["variant"], agg["augment"])))
    colour = {b: cmap(i % 10) for i, b in enumerate(base_names)}

    for ds in dict.fromkeys(agg["dataset"]):
        d = agg[agg["dataset"] == ds]
        fig, ax = plt.subplots(figsize=(6, 4))
        for var in dict.fromkeys(d["variant"]):
            dv = d[(d["variant"] == var) & (d["n"] > 0)].sort_values("k")
            if dv.empty:
                continue
            aug = dv["augment"].iloc[0]
            ax.errorbar(dv["k"], dv["mean"], yerr=dv["std"].fillna(0.0), label=var,
                        color=colour[_base_name(var, aug)], linestyle=styles.get(aug, ":"),
                        marker="o", markersize=4, capsize=3,
                        markerfacecolor="white" if aug == "none" else None)
        t = d["teacher"].iloc[0]
        if not pd.isna(t):
            ax.axhline(t, color="grey", linewidth=1, linestyle=(0, (2, 2)), label="teacher")
        ax.set_xscale("log", base=2)
        ks = sorted(d["k"].unique())
        if ks:
            ax.set_xticks(ks)
            ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("k (shots)")
        ax.set_ylabel(f"{d['metric'].iloc[0]} (×100)")
        ax.set_title(str(ds))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / f"plot_{_slug(ds)}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    return written


def _base_name(variant: str, augment: str) -> str:
    """Variant label with the augmentation removed (colour key: method/alpha)."""
    return variant if augment == "none" else variant.replace(f"+{augment}", "", 1)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _default_out(first: str) -> Path:
    """``<first dir>/report``; for a glob, the directory before its first wildcard."""
    if _has_glob(first):
        parts = Path(first).parts
        i = next(i for i, part in enumerate(parts) if _has_glob(part))
        base = Path(*parts[:i]) if i else Path(".")
        return base / "report"
    p = Path(first)
    return (p if p.is_dir() or not p.exists() else p.parent) / "report"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cod_pipeline.report",
                                 description="Aggregate result.json files into the CoD results table.")
    ap.add_argument("paths", nargs="+", help="multirun dir(s) or glob(s), searched recursively for result.json")
    ap.add_argument("--out", default=None, help="output dir (default: <first dir>/report)")
    ap.add_argument("--metric", default="auto", choices=list(METRICS) + ["auto"])
    args = ap.parse_args(argv)

    files = _expand(args.paths)
    if not files:
        print(f"error: no result.json found under: {' '.join(args.paths)}", file=sys.stderr)
        return 2
    df = collect(args.paths)
    if not (df["stage"] == "student").any():
        print(f"error: none of the {len(files)} result.json file(s) is a valid student result", file=sys.stderr)
        return 2
    agg = aggregate(df, args.metric)
    out = Path(args.out) if args.out else _default_out(args.paths[0])
    out.mkdir(parents=True, exist_ok=True)

    md = render_markdown(agg)
    paths = [out / "table.csv", out / "table.md", out / "table.tex"]
    agg.to_csv(paths[0], index=False, float_format="%.4f")
    paths[1].write_text(md, encoding="utf-8")
    paths[2].write_text(render_latex(agg), encoding="utf-8")
    paths += plot(agg, out)

    print(md)
    n_stu = int((df["stage"] == "student").sum())
    print(f"{n_stu} student run(s) from {len(files)} file(s); metric={args.metric}")
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
