"""Aggregate per-run ``result.json`` files into the paper's results tables.

Usage::

    python -m cod_pipeline.report <multirun dir or glob> [more ...] \
        [--out DIR] [--metric accuracy|macro_f1|mcc|agreement|auto] \
        [--group-by KEY[,KEY...]] [--ci t|bootstrap] [--n-boot N] [--no-paper]

Cells.  A cell is (dataset, variant, k).  The variant is method+augment
(``kd``, ``kd+half``, ``kd+cod``; ``(α=…)`` when alphas differ, ``model/`` when
models do) plus every *other* resolved-config key that differs between runs of
the same (dataset, model, method, augment, alpha, k), shown as
``[cfe.name=openai]``.  Configs are flattened (``cfe.name``,
``model.student_training.lr``); paths, output dirs, logger, hydra, trainer,
threads, resume, compare, task_name and seed are ignored, and so are ``cfe.*``
for unpaired augments and the cfe runtime settings (``cfe.runtime.*``, and where
older results hold them, ``cfe.chunk_size``, ``cfe.llm.max_in_flight``, …), as in
the pipeline's run hash.  ``--group-by`` names the
config keys allowed to split cells (the table axes dataset, model, method,
augment, alpha and k always do); any other key that still differs inside a
cell is reported in one loud warning, never dropped silently.  Runs with the
same config *and* seed are duplicates: the newest file is kept, with a warning.

Layout (markdown / LaTeX): one table per dataset with that dataset's own k
columns; one row per variant, cells ``mean ± std`` over seeds in percentage
points (x100, sample std, ddof=1); for MCC datasets (CoLA) the accuracy is
shown in the same cell; ``paper`` rows (Tables 5/6 of arXiv 2510.21631) under
every reproduced deberta_v3 / qwen2_5 variant; ``Δ`` rows with the paired gain
over seeds (``+2.3 [−0.9, +5.5] 4/5``: mean difference, 95% CI, seeds won)
against the same method without augmentation and against ``half`` (KD on the
k/2 originals CoD uses) when present.  Missing cells are ``—``.

Files written by :func:`main`: ``table.csv`` (long format, one row per
(dataset, variant, k) of the full grid; scores x100), ``runs.csv`` (one row per
run, with its status and the config keys that vary), ``table.md``,
``table.tex``, ``plot_<dataset>.{png,pdf}`` and ``plot_all.{png,pdf}``.

Public API: :func:`collect`, :func:`flatten_config`, :func:`prepare_runs`,
:func:`aggregate`, :func:`build`, :func:`paper_table`, :func:`render_markdown`,
:func:`render_latex`, :func:`plot`, :func:`main`; the statistics live in
:mod:`cod_pipeline.stats`.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from cod_pipeline.stats import CI_METHODS, ci_label, paired_gain_by_seed

METRICS = ("accuracy", "macro_f1", "mcc", "agreement")
METHOD_ORDER = {"finetune": 0, "kd": 1, "lwd": 2}
AUGMENT_ORDER = {"none": 0, "half": 1, "cod": 2}
MISSING = "—"
MINUS = "−"
#: augments that are baselines of the CoD-style variants (no Δ row of their own)
BASELINE_AUGMENTS = ("none", "half")

AGG_COLUMNS = [
    "dataset", "variant", "method", "augment", "alpha", "k", "mean", "std", "n",
    "metric", "gain", "baseline", "teacher", "teacher_n", "teacher_metric", "teacher_acc",
    "acc_mean", "acc_std",
    "gain_mean", "gain_lo", "gain_hi", "gain_std", "wins", "ties", "n_pairs", "ci_method",
    "baseline_half", "gain_half", "gain_half_mean", "gain_half_lo", "gain_half_hi", "gain_half_std",
    "wins_half", "ties_half", "n_pairs_half",
    "paper_mean", "paper_std", "paper_source", "majority",
]

#: top-level config keys that never define a cell
IGNORED_CONFIG = ("paths", "logger", "hydra", "trainer", "threads", "resume", "compare", "task_name",
                  "seed", "stage")
#: short names accepted by --group-by for the table's own axes
GROUP_ALIASES = {"dataset": "dataset.name", "model": "model.name", "method": "method.name",
                 "augment": "augment.name", "alpha": "method.alpha", "k": "k"}

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
PAPER_CSV = REFERENCE_DIR / "cod_paper_tables.csv"
#: our model config name -> (paper table, the student of that table's pair)
PAPER_PAIRS = {"deberta_v3": ("Table 5", "deberta-v3-xsmall"), "qwen2_5": ("Table 6", "qwen2.5-0.5b")}
PAPER_METHODS = ("kd", "lwd")
PAPER_AUGMENTS = ("none", "cod")


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


def _number(v) -> float:
    """A JSON number as a float (NaN for anything else: a bool, a string, a list, None)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


def _metrics_dict(d) -> dict:
    if not isinstance(d, dict):
        return {}
    values = {m: _number(d.get(m)) for m in METRICS}
    return {m: v for m, v in values.items() if not np.isnan(v)}


def _finite(d: dict) -> dict:
    return {m: v for m, v in d.items() if math.isfinite(v)}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if v:
                out.update(_flatten(v, key + "."))
            else:
                out[key] = "{}"
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v, sort_keys=True, default=str)
        else:
            out[key] = v
    return out


def _is_path_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return last in ("path", "dir") or last.endswith("_dir") or last.endswith("_path")


def flatten_config(config) -> dict:
    """The cell-relevant part of a resolved config, as ``{"dotted.key": value}``.

    Drops the top-level keys in ``IGNORED_CONFIG``, every ``*path`` / ``*dir``
    leaf, ``cfe.*`` when the augment is unpaired (no CFEs are used), the cfe
    runtime settings (how fast CFEs came, not which; old results hold them at
    their places before ``cfe.runtime``) and ``method.alpha`` for finetune.
    Lists become JSON strings.
    """
    from cod_pipeline.counterfactuals.generators import moved_runtime

    if not isinstance(config, dict):
        return {}
    c = {k: v for k, v in config.items() if k not in IGNORED_CONFIG}
    aug = c.get("augment")
    if isinstance(aug, dict):
        paired = aug.get("paired", aug.get("name") not in BASELINE_AUGMENTS)
        if not paired:
            c.pop("cfe", None)
    old_runtime = {f"cfe.{k}" for k in moved_runtime()}
    flat = {k: v for k, v in _flatten(c).items() if not k.startswith("cfe.runtime.") and k not in old_runtime}
    if flat.get("method.name") == "finetune":
        flat.pop("method.alpha", None)
    return {k: v for k, v in flat.items() if not _is_path_key(k)}


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
    teacher = _finite(_metrics_dict((r.get("teacher") or {}).get("test") if isinstance(r.get("teacher"), dict)
                                    else None))
    row = {
        "path": str(path),
        "mtime": path.stat().st_mtime,
        "stage": stage,
        "dataset": dataset,
        "model": r.get("model"),
        "run_hash": r.get("run_hash"),
        "primary_metric": r.get("primary_metric") or "accuracy",  # every result since schema 1 names it
        "config": flatten_config(r.get("config")),
    }
    if isinstance(r.get("data"), str):  # local files, by name and content: runs on other data are another cell
        row["config"]["data"] = r["data"]
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
    if k < 1:
        _warn(f"skipping {path}: k={k} (a run trains on at least one example)")
        return None
    s = _metrics_dict(s_test)
    if not s:
        _warn(f"skipping {path}: student.test has no known metric")
        return None
    if bad := [m for m, v in s.items() if not math.isfinite(v)]:
        _warn(f"skipping {path}: student.test {', '.join(f'{m}={s[m]}' for m in bad)} is not a finite number")
        return None
    row.update(method=str(r["method"]), augment=str(r["augment"]), alpha=alpha, k=k, seed=seed)
    for m in METRICS:
        row[f"student_{m}"] = s.get(m, np.nan)
    cfe = r.get("cfe") if isinstance(r.get("cfe"), dict) else {}
    for key in CFE_COLUMNS:  # the CFE set's quality, faithfulness under the judge included
        row[f"cfe_{key}"] = _number(cfe.get(key))
    row["cfe_judge"] = cfe["judge"].get("family") if isinstance(cfe.get("judge"), dict) else None
    row["cfe_generator"] = cfe.get("generator")
    row["cfe_samples"] = cfe.get("samples") if isinstance(cfe.get("samples"), list) else None
    names = ((r.get("config") or {}).get("dataset") or {}).get("label_names")
    row["label_names"] = list(names) if isinstance(names, list) else None
    row["majority"] = _number(s_test.get("majority"))
    return row


CFE_COLUMNS = ("validity", "faithfulness", "judge_test_accuracy", "judge_teacher_agreement", "edited_words_mean",
               "fluency_drop_mean")


def _markdown_frame(df: pd.DataFrame) -> str:
    cell = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)])


def cfe_quality_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, variant and k: the mean quality of its CFE sets over seeds (runs with none left out)."""
    cols = [f"cfe_{c}" for c in CFE_COLUMNS]
    have = runs[runs["cfe_validity"].notna()] if "cfe_validity" in runs else runs.iloc[:0]
    if have.empty:
        return pd.DataFrame()
    g = have.groupby(["dataset", "variant", "k", "cfe_generator", "cfe_judge"], dropna=False)
    out = g[cols].mean().reset_index()
    out.insert(5, "seeds", g.size().to_numpy())
    return out.rename(columns={c: c[4:] for c in cols + ["cfe_generator", "cfe_judge"]})


def cfe_examples(runs: pd.DataFrame, per_set: int = 5) -> pd.DataFrame:
    """Up to ``per_set`` example CFEs per dataset and generator, from the runs' saved samples (lowest
    seed and k first): original, CFE, the teacher's class on each, and the judge's on the CFE."""
    cols = ["dataset", "generator", "original", "cfe", "teacher_original", "teacher_cfe", "judge"]
    if "cfe_samples" not in runs:
        return pd.DataFrame(columns=cols)
    have = runs[runs["kept"] & runs["cfe_samples"].map(lambda x: isinstance(x, list) and len(x) > 0)]
    rows, seen = [], {}
    for _, r in have.sort_values(["dataset", "seed", "k"], kind="stable").iterrows():
        names = r["label_names"] if isinstance(r["label_names"], list) else None
        name = lambda p: (names[int(np.argmax(p))] if names else str(int(np.argmax(p))))  # noqa: E731
        done = seen.setdefault((r["dataset"], r["cfe_generator"]), set())
        for smp in r["cfe_samples"]:
            if len(done) >= per_set or smp.get("original") in done:
                continue
            done.add(smp.get("original"))
            rows.append(dict(dataset=r["dataset"], generator=r["cfe_generator"], original=smp["original"],
                             cfe=smp["cfe"], teacher_original=name(smp["orig_probs"]),
                             teacher_cfe=name(smp["cfe_probs"]), judge=smp.get("judge_label")))
    return pd.DataFrame(rows, columns=cols)


def render_cfe_latex(ex: pd.DataFrame, max_chars: int = 160) -> str:
    """One LaTeX ``table`` of example CFEs per dataset (booktabs, edits in bold, deletions struck
    with ``\\sout`` from ulem), the teacher's class change and the judge's class beside each."""
    from cod_pipeline.counterfactuals.textclean import diff_markdown

    if ex.empty:
        return "% no CFE samples in these results\n"
    cut = lambda t: t if len(t) <= max_chars else t[:max_chars - 1] + "…"  # noqa: E731

    def marked(a: str, b: str) -> str:  # split on the diff's marks first: escaping would eat the ~~
        parts = re.split(r"(\*\*.+?\*\*|~~.+?~~)", diff_markdown(cut(a), cut(b)))
        return "".join(r"\textbf{" + _tex(p[2:-2]) + "}" if p.startswith("**") else
                       r"\sout{" + _tex(p[2:-2]) + "}" if p.startswith("~~") else _tex(p) for p in parts if p)

    out = [r"% requires \usepackage{booktabs} and \usepackage[normalem]{ulem}"]
    for ds, g in ex.groupby("dataset", sort=False):
        judged = g["judge"].notna().any()
        head = r"Original & Counterfactual & Teacher" + (r" & Judge" if judged else "") + r" \\"
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 r"\begin{tabular}{p{0.36\linewidth}p{0.36\linewidth}l" + ("l" if judged else "") + "}",
                 r"\toprule", head, r"\midrule"]
        for _, e in g.iterrows():
            cells = [_tex(cut(e["original"])), marked(e["original"], e["cfe"]),
                     _tex(f"{e['teacher_original']} → {e['teacher_cfe']}")]
            if judged:
                cells.append(_tex(e["judge"]) if isinstance(e["judge"], str) else "--")
            lines.append(" & ".join(cells) + r" \\")
        gens = ", ".join(str(x) for x in dict.fromkeys(g["generator"]))
        lines += [r"\bottomrule", r"\end{tabular}",
                  r"\caption{" + _tex(f"{ds}: example counterfactuals ({gens}); edits in bold, deletions struck; "
                                       "teacher: its class on the original and on the CFE; judge: the independent "
                                       "judge's class on the CFE.") + "}",
                  r"\label{tab:cfe-" + "".join(c if c.isalnum() else "-" for c in str(ds)) + "}", r"\end{table}", ""]
        out += lines
    return "\n".join(out)


def _fmt_alpha(a: float) -> str:
    return f"{a:g}"


def _label_variants(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``alpha_key`` / ``variant`` columns to the student rows (no config keys yet)."""
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
    model, run_hash, primary_metric, method, augment, alpha, k, seed,
    teacher_<metric>, student_<metric>, config (the :func:`flatten_config`
    dict), alpha_key, variant.  Invalid files are skipped with a warning on
    stderr.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = [r for r in (_parse(p) for p in _expand(paths)) if r is not None]
    cols = ["path", "mtime", "stage", "dataset", "model", "run_hash", "primary_metric",
            "method", "augment", "alpha", "k", "seed"] + \
        [f"teacher_{m}" for m in METRICS] + [f"student_{m}" for m in METRICS] + ["config"] + \
        [f"cfe_{c}" for c in CFE_COLUMNS] + ["cfe_judge", "cfe_generator", "cfe_samples", "label_names", "majority"]
    df = pd.DataFrame(rows, columns=cols)
    df["alpha"] = df["alpha"].astype(float)
    return _label_variants(df)


# --------------------------------------------------------------------------
# per-run preparation: cells from config keys, duplicates, scores
# --------------------------------------------------------------------------
_ABSENT = "<absent>"


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _fmt_val(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _nan_none(v):
    return None if (v is None or (isinstance(v, float) and math.isnan(v))) else v


def _splitting_keys(canon: pd.DataFrame, by: list[str], candidates: list[str]) -> list[str]:
    """Candidates that take more than one value inside some group of ``by``."""
    if not candidates or canon.empty:
        return []
    g = canon.groupby(by, sort=False)
    return [k for k in candidates if int(g[k].nunique().max()) > 1]


def _student_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The student rows, each with a config dict and ``_std``: its cell on the table axes."""
    stu = df[df["stage"] == "student"].copy()
    if "config" not in stu.columns:
        stu["config"] = [{} for _ in range(len(stu))]
    stu["config"] = [c if isinstance(c, dict) else {} for c in stu["config"]]
    stu["_std"] = [repr((r.dataset, r.model, r.method, r.augment, _nan_none(r.alpha_key), int(r.k)))
                   for r in stu.itertuples(index=False)]
    return stu


def _config_frame(stu: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Every config key, and one canonical-JSON column per key (``_ABSENT`` where a run
    lacks it) plus ``_std``: what the cell-splitting tests group and compare."""
    all_keys = sorted(set().union(*stu["config"])) if len(stu) else []
    canon = pd.DataFrame({k: [_canon(c.get(k, _ABSENT)) for c in stu["config"]] for k in all_keys},
                         index=stu.index)
    canon["_std"] = stu["_std"]
    return all_keys, canon


def _wanted_splits(extras: list[str], all_keys: list[str], group_by: Sequence[str] | None,
                   have_runs: bool) -> list[str]:
    """The keys that split cells: all of ``extras``, or those ``group_by`` names."""
    if group_by is None:
        return extras
    wanted = [GROUP_ALIASES.get(k, k) for k in group_by]
    unknown = [k for k, w in zip(group_by, wanted) if w not in all_keys and k not in GROUP_ALIASES]
    if unknown and have_runs:
        _warn(f"--group-by key(s) not in any run's config: {', '.join(unknown)}")
    return [k for k in extras if k in wanted]


def _warn_merged(configs: Iterable[dict], merged: list[str]) -> None:
    """Pooling runs that differ in config is allowed but never silent."""
    configs = list(configs)
    vals = []
    for k in merged:
        vs = sorted({_fmt_val(c[k]) for c in configs if k in c})
        vals.append(f"{k} ({', '.join(vs[:4])}{', …' if len(vs) > 4 else ''})")
    _warn("MERGED CONFIGS: some cells pool runs whose config differs in " + "; ".join(vals)
          + " — these keys are not in --group-by; add them to split the cells")


def _split_label(c: dict, split: list[str]) -> str:
    parts = [f"{k}={_fmt_val(c[k])}" for k in split if k in c]
    return f" [{', '.join(parts)}]" if parts else ""


def _mark_duplicates(stu: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Runs sorted by mtime and the mask of true duplicates (same cell, config and seed;
    the newest file wins)."""
    stu["_cfg"] = [_canon(c) for c in stu["config"]]
    stu = stu.sort_values("mtime", kind="stable")
    dup = stu.duplicated(["_std", "seed", "_cfg"], keep="last") if len(stu) else pd.Series(dtype=bool)
    ndup = int(dup.sum())
    if ndup:
        _warn(f"dropped {ndup} duplicate run(s) with the same config and seed; kept the newest by mtime")
    return stu, dup


def _run_metric(r, metric: str) -> str:
    return r["primary_metric"] if metric == "auto" else metric


def _student_score(r, metric: str):
    m = _run_metric(r, metric)
    return m, r.get(f"student_{m}", np.nan)


def _add_scores(stu: pd.DataFrame, metric: str) -> None:
    """``metric``, ``score`` and ``acc`` (x100) columns, in place."""
    if len(stu):
        picked = [_student_score(r, metric) for _, r in stu.iterrows()]
        stu["metric"] = [p[0] for p in picked]
        stu["score"] = [p[1] * 100.0 for p in picked]
        stu["acc"] = stu["student_accuracy"] * 100.0
    else:
        for c, t in (("metric", object), ("score", float), ("acc", float)):
            stu[c] = pd.Series(dtype=t)


def _add_status(stu: pd.DataFrame, dup: pd.Series) -> None:
    """``status`` (kept / duplicate / no metric) and ``kept`` columns, in place."""
    nan = stu["score"].isna() & ~dup
    if nan.any():
        _warn(f"{int(nan.sum())} run(s) lack the requested metric; ignored")
    stu["status"] = np.where(dup, "duplicate", np.where(stu["score"].isna(), "no metric", "kept"))
    stu["kept"] = stu["status"] == "kept"


def prepare_runs(df: pd.DataFrame, metric: str = "auto", group_by: Sequence[str] | None = None) -> pd.DataFrame:
    """Student runs with their final cell label, score and status.

    ``group_by``: config keys (flattened, e.g. ``cfe.name``; the aliases
    ``dataset model method augment alpha k`` are accepted) that may split
    cells; ``None`` = every key that differs between runs of the same
    (dataset, model, method, augment, alpha, k).  Keys that differ inside a
    cell but are not in ``group_by`` are merged with one warning.

    Adds columns ``variant`` (with ``[key=value]`` for the splitting keys),
    ``metric``, ``score`` and ``acc`` (x100), ``kept`` and ``status`` (``kept``,
    ``duplicate`` = an older run with the same config and seed, ``no metric``).
    ``attrs``: ``split_keys``, ``merged_keys``, ``varying_keys``,
    ``duplicates_dropped``, ``metric``.
    """
    if metric not in METRICS + ("auto",):
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS + ('auto',)}")
    if "variant" not in df.columns:
        df = _label_variants(df)
    stu = _student_rows(df)
    all_keys, canon = _config_frame(stu)
    varying = [k for k in all_keys if canon[k].nunique() > 1]
    extras = _splitting_keys(canon, ["_std"], varying)
    split = _wanted_splits(extras, all_keys, group_by, bool(len(stu)))
    merged = _splitting_keys(canon, ["_std"] + split, [k for k in varying if k not in split])
    if merged:
        _warn_merged(stu["config"], merged)
    stu["variant"] = [v + _split_label(c, split) for v, c in zip(stu["variant"], stu["config"])]
    stu["_extras"] = [{k: _canon(c[k]) for k in split if k in c} for c in stu["config"]]
    stu, dup = _mark_duplicates(stu)
    _add_scores(stu, metric)
    _add_status(stu, dup)
    stu.attrs.update(split_keys=list(split), merged_keys=list(merged), varying_keys=list(varying),
                     duplicates_dropped=int(dup.sum()), metric=metric)
    return stu


RUN_COLUMNS = ["dataset", "model", "variant", "method", "augment", "alpha", "k", "seed", "metric", "score",
               "acc", "status", "cfe_validity", "cfe_faithfulness", "path", "run_hash"]


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run for ``runs.csv``: scores x100, every student / teacher
    metric (x100), status and a ``config.<key>`` column per varying config key."""
    out = runs[[c for c in RUN_COLUMNS if c in runs.columns]].copy()
    for m in METRICS:
        out[f"student_{m}"] = runs[f"student_{m}"] * 100.0
    for m in METRICS:
        out[f"teacher_{m}"] = runs[f"teacher_{m}"] * 100.0
    for k in runs.attrs.get("varying_keys", []):
        out[f"config.{k}"] = [c.get(k) for c in runs["config"]]
    return out.sort_values(["dataset", "variant", "k", "seed"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------
# paper reference (arXiv 2510.21631, Tables 5 and 6)
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def paper_table(path: str | None = None) -> pd.DataFrame:
    """The paper's published figures shipped in ``cod_pipeline/reference/``
    (columns source, pair, dataset, method, k, accuracy_mean, accuracy_std;
    fractions, not x100).  See ``cod_pipeline/reference/README.md``."""
    return pd.read_csv(path or PAPER_CSV)


def _paper_lookup(model, student_name, dataset, method, augment, alpha_key):
    """{k: (mean x100, std x100)} and the source, or (None, None) when the paper has no such row."""
    if model not in PAPER_PAIRS or method not in PAPER_METHODS or augment not in PAPER_AUGMENTS:
        return None, None
    if alpha_key == 0:
        return None, None  # an ablation; the paper's KD weight is 20
    table, student = PAPER_PAIRS[model]
    if student_name is not None and str(student_name).lower() != student:
        return None, None  # another student than the paper's pair
    try:
        ref = paper_table()
    except OSError as e:  # pragma: no cover - the CSV ships with the package
        _warn(f"paper reference unavailable ({e})")
        return None, None
    name = method if augment == "none" else f"{method}+{augment}"
    sel = ref[ref["source"].str.contains(table, regex=False) & (ref["dataset"] == dataset) & (ref["method"] == name)]
    if sel.empty:
        return None, None
    vals = {int(r.k): (100.0 * r.accuracy_mean, 100.0 * r.accuracy_std) for r in sel.itertuples(index=False)}
    return vals, str(sel["source"].iloc[0])


# --------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------
def _variant_sort_key(method, alpha_key, augment, model, extras=""):
    a = alpha_key
    a_rank = (2, 0.0) if a == 0 else ((0, 0.0) if (a is None or (isinstance(a, float) and math.isnan(a))) else (1, float(a)))
    return (str(model or ""), METHOD_ORDER.get(method, 99), str(method), a_rank,
            AUGMENT_ORDER.get(augment, 3), str(augment), str(extras))


def _same_alpha(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b


def _teacher_score(r, metric: str):
    """The teacher's metric and score in one row; agreement is undefined for a teacher."""
    m = _run_metric(r, metric)
    if m == "agreement":
        m = r["primary_metric"]
    return m, r.get(f"teacher_{m}", np.nan)


def _teacher_scores(df: pd.DataFrame, metric: str) -> dict:
    """Per dataset ``(score x100, n, metric, accuracy x100)``: the mean over unique teachers."""
    tcols = [f"teacher_{m}" for m in METRICS]
    teach = {}
    for ds, g in df.groupby("dataset", sort=False):
        g = g.dropna(subset=tcols, how="all").drop_duplicates(subset=tcols)
        vals, tmetric = [], None
        for _, r in g.iterrows():
            tmetric, v = _teacher_score(r, metric)
            if not pd.isna(v):
                vals.append(v * 100.0)
        accs = g["teacher_accuracy"].dropna() * 100.0
        teach[ds] = (float(np.mean(vals)) if vals else np.nan, len(vals), tmetric,
                     float(accs.mean()) if len(accs) else np.nan)
    return teach


def majority_score(share: float, num_classes: int | None, metric: str) -> float:
    """What always answering the most frequent test class scores (x100): the floor a student must
    clear. Its macro-F1 is the majority class's F1, 2p/(1+p), over the classes; its MCC is 0."""
    if pd.isna(share):
        return np.nan
    if metric == "accuracy":
        return 100.0 * share
    if metric == "mcc":
        return 0.0
    if metric == "macro_f1" and num_classes:
        return 100.0 * (2 * share / (1 + share)) / num_classes
    return np.nan


def _majority_scores(kept: pd.DataFrame) -> dict:
    """Per dataset and metric: the majority-class score over its kept runs' test sets (x100)."""
    out = {}
    for (ds, metric), g in kept.groupby(["dataset", "metric"], sort=False):
        shares = g["majority"].dropna() if "majority" in g else []
        names = next((n for n in g.get("label_names", []) if isinstance(n, list)), None)
        if len(shares):
            out[(ds, metric)] = majority_score(float(shares.mean()), len(names) if names else None, metric)
    return out


def _variant_infos(kept: pd.DataFrame) -> list[dict]:
    """One dict per variant (from its first kept run), in table order."""
    vinfo = [dict(variant=r["variant"], method=r["method"], augment=r["augment"], alpha_key=r["alpha_key"],
                  model=r["model"], extras=r["_extras"], student=r["config"].get("model.student.name"),
                  raw={k: r["config"][k] for k in r["_extras"]})
             for _, r in kept.drop_duplicates("variant").iterrows()] if len(kept) else []
    vinfo.sort(key=lambda v: _variant_sort_key(v["method"], v["alpha_key"], v["augment"], v["model"],
                                               _canon(v["extras"])))
    return vinfo


def _dataset_metric(df: pd.DataFrame, kept: pd.DataFrame, ds, metric: str) -> str:
    """The metric a dataset's table reports: that of its kept runs, else the requested one,
    else (``auto``, nothing kept) the primary metric its records name."""
    ms = kept.loc[kept["dataset"] == ds, "metric"].unique().tolist()
    if ms:
        return "/".join(sorted(ms))
    if metric != "auto":
        return metric
    return "/".join(sorted(set(df.loc[df["dataset"] == ds, "primary_metric"].dropna()))) or "accuracy"


def _find_baseline(v: dict, vinfo: list[dict], augment: str) -> str | None:
    """The variant ``v`` is compared with: same model/method/alpha with ``augment``, and the
    most of ``v``'s splitting config values."""
    cands = [b for b in vinfo if b["augment"] == augment and b["method"] == v["method"] and b["model"] == v["model"]
             and _same_alpha(b["alpha_key"], v["alpha_key"])
             and all(v["extras"].get(key) == val for key, val in b["extras"].items())]
    return max(cands, key=lambda b: len(b["extras"]))["variant"] if cands else None


_NO_GAIN = dict(gain=np.nan, mean=np.nan, lo=np.nan, hi=np.nan, std=np.nan, wins=0, ties=0, n=0)
_NO_CELL = dict(mean=np.nan, std=np.nan, n=0, acc_mean=np.nan, acc_std=np.nan)


class _Cells:
    """Cell statistics of the kept runs and the paired gains between cells."""

    def __init__(self, kept: pd.DataFrame, ci: str, level: float, n_boot: int):
        self.ci, self.level, self.n_boot = ci, level, n_boot
        self.stats = kept.groupby(["dataset", "variant", "k"]).agg(
            mean=("score", "mean"), std=("score", "std"), n=("score", "count"),
            acc_mean=("acc", "mean"), acc_std=("acc", "std"))
        # runs pooled in one cell with the same seed are averaged before pairing
        per_seed = kept.groupby(["dataset", "variant", "k", "seed"])["score"].mean()
        self.seed_maps: dict = {}
        for (ds, var, k, seed), v in per_seed.items():
            self.seed_maps.setdefault((ds, var, int(k)), {})[int(seed)] = float(v)

    def cell(self, key) -> dict:
        if key not in self.stats.index:
            return dict(_NO_CELL)
        s = self.stats.loc[key]
        return dict(mean=float(s["mean"]), std=float(s["std"]), n=int(s["n"]),
                    acc_mean=float(s["acc_mean"]), acc_std=float(s["acc_std"]))

    def gain(self, ds, var, base, k, mean) -> dict:
        """Unpaired gain of cell means plus the paired gain over shared seeds vs ``base``."""
        if base is None:
            return dict(_NO_GAIN)
        bkey = (ds, base, k)
        bmean = float(self.stats.loc[bkey, "mean"]) if bkey in self.stats.index else np.nan
        g = paired_gain_by_seed(self.seed_maps.get((ds, var, k), {}), self.seed_maps.get(bkey, {}), self.ci,
                                level=self.level, n_boot=self.n_boot)
        return dict(gain=mean - bmean, mean=g["mean"], lo=g["lo"], hi=g["hi"], std=g["std"],
                    wins=g["wins"], ties=g["ties"], n=g["n"])


def _agg_row(ds, v: dict, k, cells: _Cells, *, teacher, ds_metric: str, base, half, compared: bool,
             paper_ref, ci: str, split_keys: list[str], majority: float = np.nan) -> dict:
    """One row of the long table: a (dataset, variant, k) cell with its gains and paper figure."""
    var = v["variant"]
    c = cells.cell((ds, var, k))
    g1 = cells.gain(ds, var, base, k, c["mean"])
    g2 = cells.gain(ds, var, half, k, c["mean"])
    t, tn, tm, tacc = teacher
    pvals, psrc = paper_ref
    pm, ps = (pvals or {}).get(k, (np.nan, np.nan))
    return dict(
        dataset=ds, variant=var, method=v["method"], augment=v["augment"], alpha=v["alpha_key"],
        k=int(k), mean=c["mean"], std=c["std"], n=c["n"], metric=ds_metric,
        gain=g1["gain"], baseline=base, teacher=t, teacher_n=tn,
        teacher_metric=tm or ds_metric, teacher_acc=tacc, acc_mean=c["acc_mean"], acc_std=c["acc_std"],
        gain_mean=g1["mean"], gain_lo=g1["lo"], gain_hi=g1["hi"], gain_std=g1["std"],
        wins=g1["wins"], ties=g1["ties"], n_pairs=g1["n"],
        ci_method=ci if compared else None,
        baseline_half=half, gain_half=g2["gain"], gain_half_mean=g2["mean"],
        gain_half_lo=g2["lo"], gain_half_hi=g2["hi"], gain_half_std=g2["std"],
        wins_half=g2["wins"], ties_half=g2["ties"], n_pairs_half=g2["n"],
        paper_mean=pm, paper_std=ps, paper_source=psrc if pvals else None, majority=majority,
        **{f"config.{key}": v["raw"].get(key) for key in split_keys})


def build(df: pd.DataFrame, metric: str = "auto", *, group_by: Sequence[str] | None = None, ci: str = "t",
          n_boot: int = 10_000, level: float = 0.95, paper: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(agg, runs)``: the long table of :func:`aggregate` and the per-run
    frame of :func:`prepare_runs` it was computed from."""
    if ci not in CI_METHODS:
        raise ValueError(f"unknown ci {ci!r}; choose from {CI_METHODS}")
    if "variant" not in df.columns:
        df = _label_variants(df)
    runs = prepare_runs(df, metric, group_by)
    kept = runs[runs["kept"]]
    split_keys = runs.attrs.get("split_keys", [])
    teach = _teacher_scores(df, metric)
    datasets = sorted(set(kept["dataset"]) | set(teach))
    vinfo = _variant_infos(kept)
    ks = sorted(kept["k"].astype(int).unique().tolist()) if len(kept) else []
    compared = [v for v in vinfo if v["augment"] not in BASELINE_AUGMENTS]
    base_of = {v["variant"]: _find_baseline(v, vinfo, "none") for v in compared}
    half_of = {v["variant"]: _find_baseline(v, vinfo, "half") for v in compared}
    cells = _Cells(kept, ci, level, n_boot)
    majority = _majority_scores(kept)

    rows = []
    for ds in datasets:
        ds_metric = _dataset_metric(df, kept, ds, metric)
        teacher = teach.get(ds, (np.nan, 0, None, np.nan))
        for v in vinfo:
            var = v["variant"]
            paper_ref = (_paper_lookup(v["model"], v["student"], ds, v["method"], v["augment"], v["alpha_key"])
                         if paper else (None, None))
            rows += [_agg_row(ds, v, k, cells, teacher=teacher, ds_metric=ds_metric, base=base_of.get(var),
                              half=half_of.get(var), compared=var in base_of, paper_ref=paper_ref, ci=ci,
                              split_keys=split_keys, majority=majority.get((ds, ds_metric), np.nan))
                     for k in ks]
    agg = pd.DataFrame(rows, columns=AGG_COLUMNS + [f"config.{key}" for key in split_keys])
    agg.attrs.update(duplicates_dropped=runs.attrs.get("duplicates_dropped", 0), ks=ks, metric=metric, ci=ci,
                     ci_label=ci_label(ci, level, n_boot), level=level, n_boot=n_boot,
                     split_keys=runs.attrs.get("split_keys", []), merged_keys=runs.attrs.get("merged_keys", []))
    return agg, runs


def aggregate(df: pd.DataFrame, metric: str = "auto", *, group_by: Sequence[str] | None = None, ci: str = "t",
              n_boot: int = 10_000, level: float = 0.95, paper: bool = True) -> pd.DataFrame:
    """Long table over the full grid datasets x variants x ks (columns: ``AGG_COLUMNS``).

    ``mean``/``std``/``acc_*``/``gain*``/``teacher``/``paper_*`` are in
    percentage points; ``std`` is the sample std (NaN with one seed); missing
    cells have NaN mean and n=0.  ``gain`` = mean(variant) − mean(baseline)
    (cell means); ``gain_mean``/``gain_lo``/``gain_hi`` = paired difference
    over the seeds both cells ran (runs pooled in one cell with the same seed
    are averaged first), with its CI (``ci_method``), ``wins`` /
    ``ties`` / ``n_pairs`` = seeds where the variant is above / equal / all
    pairs.  The baseline is the same model/method/alpha with augment=none;
    ``*_half`` columns compare with augment=half (KD on k/2 originals).
    ``paper_*``: the paper's accuracy for deberta_v3 / qwen2_5 variants;
    ``config.<key>``: the value of each config key that splits cells.
    ``agg.attrs``: duplicates_dropped, ks, metric, ci, ci_label, split_keys,
    merged_keys.  See :func:`prepare_runs` for ``group_by``.
    """
    return build(df, metric, group_by=group_by, ci=ci, n_boot=n_boot, level=level, paper=paper)[0]


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _signed(x: float) -> str:
    x = round(float(x), 1)
    if x == 0:
        return "±0.0"
    return f"+{x:.1f}" if x > 0 else f"{MINUS}{abs(x):.1f}"


def _bound(x: float) -> str:
    return "0.0" if round(float(x), 1) == 0 else _signed(x)


def _fmt_ms(mean, std) -> str:
    s = f"{mean:.1f} ± " + ("–" if pd.isna(std) else f"{std:.1f}")
    return s.replace("-", MINUS)


def _fmt_cell(mean, std, n, with_n: bool, acc=None) -> str:
    if n == 0 or pd.isna(mean):
        return MISSING
    s = _fmt_ms(mean, std)
    if acc is not None and not pd.isna(acc[0]):
        s += f" (acc {_fmt_ms(*acc)})"
    return f"{s} (n={n})" if with_n else s


def _fmt_paired(mean, lo, hi, wins, n, unpaired) -> str:
    if not n:
        return MISSING if pd.isna(unpaired) else f"{_signed(unpaired)} (unpaired)"
    ci = "[–]" if pd.isna(lo) else f"[{_bound(lo)}, {_bound(hi)}]"
    return f"{_signed(mean)} {ci} {int(wins)}/{int(n)}"


def _fmt_teacher(t) -> str:
    return MISSING if pd.isna(t) else f"{t:.1f}"


def _ks_of(d: pd.DataFrame) -> list[int]:
    """The k values that ran for this dataset (all grid ks when none did)."""
    ran = sorted(d.loc[d["n"] > 0, "k"].astype(int).unique().tolist())
    return ran or sorted(d["k"].astype(int).unique().tolist())


def _blocks(agg: pd.DataFrame):
    """Per dataset: dict(dataset, label, teacher, ks, rows) with rows (label, cells, kind, means)
    where kind is variant / paper / gain and means are the cell means (for bolding)."""
    filled = agg[agg["n"] > 0]["n"]
    with_n = filled.nunique() > 1
    out = []
    for ds in dict.fromkeys(agg["dataset"]):
        d = agg[agg["dataset"] == ds]
        ks = _ks_of(d)
        metric = d["metric"].iloc[0]
        show_acc = "mcc" in str(metric)
        tm = d["teacher_metric"].iloc[0]
        t_label = _fmt_teacher(d["teacher"].iloc[0])
        if tm != metric and t_label != MISSING:
            t_label += f" ({tm})"
        if show_acc and t_label != MISSING and not pd.isna(d["teacher_acc"].iloc[0]):
            t_label += f" (acc {d['teacher_acc'].iloc[0]:.1f})"
        rows, papers = [], set()
        for var in dict.fromkeys(d["variant"]):
            dv = d[d["variant"] == var].set_index("k")
            cells = [_fmt_cell(dv.at[k, "mean"], dv.at[k, "std"], int(dv.at[k, "n"]), with_n,
                               (dv.at[k, "acc_mean"], dv.at[k, "acc_std"]) if show_acc else None) for k in ks]
            rows.append((var, cells, "variant", [dv.at[k, "mean"] for k in ks]))
            src = dv["paper_source"].dropna()
            name = var.split(" [", 1)[0]  # the paper has one generator: no config suffix
            if len(src) and (name, src.iloc[0]) not in papers:
                papers.add((name, src.iloc[0]))
                pre = "acc " if metric != "accuracy" else ""
                pc = [MISSING if pd.isna(dv.at[k, "paper_mean"]) else pre + _fmt_ms(dv.at[k, "paper_mean"],
                                                                                     dv.at[k, "paper_std"])
                      for k in ks]
                table = src.iloc[0][src.iloc[0].find("Table"):] if "Table" in src.iloc[0] else "paper"
                rows.append((f"paper {name} ({table})", pc, "paper", None))
            if dv["augment"].iloc[0] not in BASELINE_AUGMENTS:
                base = dv["baseline"].iloc[0]
                lab = f"Δ {var} vs {base}" if base else f"Δ {var} (no baseline)"
                rows.append((lab, [_fmt_paired(dv.at[k, "gain_mean"], dv.at[k, "gain_lo"], dv.at[k, "gain_hi"],
                                               dv.at[k, "wins"], dv.at[k, "n_pairs"], dv.at[k, "gain"]) for k in ks],
                             "gain", None))
                half = dv["baseline_half"].iloc[0]
                if half:
                    rows.append((f"Δ {var} vs {half}",
                                 [_fmt_paired(dv.at[k, "gain_half_mean"], dv.at[k, "gain_half_lo"],
                                              dv.at[k, "gain_half_hi"], dv.at[k, "wins_half"],
                                              dv.at[k, "n_pairs_half"], dv.at[k, "gain_half"]) for k in ks],
                                 "gain", None))
        out.append(dict(dataset=ds, label=f"{ds} ({metric})", metric=metric, teacher=t_label, ks=ks, rows=rows,
                        show_acc=show_acc, half=bool((d["augment"] == "half").any()),
                        papers=sorted(set(d["paper_source"].dropna()))))
    return out, with_n


def _best(rows, ncols) -> list[set]:
    """Per column, the indices of the variant rows with the highest (rounded) mean."""
    best = []
    for j in range(ncols):
        vals = {i: round(float(r[3][j]), 1) for i, r in enumerate(rows)
                if r[2] == "variant" and not pd.isna(r[3][j])}
        top = max(vals.values()) if vals else None
        best.append({i for i, v in vals.items() if v == top} if len(vals) > 1 else set())
    return best


def _notes(agg: pd.DataFrame, with_n: bool, blocks) -> list[str]:
    """Legend lines for the given blocks (all datasets for markdown, one for a LaTeX caption)."""
    filled = agg[agg["n"] > 0]["n"]
    if len(filled) and not with_n:
        n = int(filled.iloc[0])
        cells = f"Cells: mean ± std over {n} seed{'s' if n != 1 else ''} (sample std, ddof = 1); scores ×100."
    else:
        cells = "Cells: mean ± std over n seeds (sample std, ddof = 1; n in each cell); scores ×100."
    notes = [cells]
    if any(b["show_acc"] for b in blocks):
        notes.append("MCC datasets: MCC ± std, with the accuracy ± std of the same runs in parentheses.")
    lab = agg.attrs.get("ci_label", ci_label(agg.attrs.get("ci", "t")))
    notes.append(f"Δ rows: paired difference (variant − baseline) over the seeds both ran: "
                 f"mean [{lab}] seeds won/pairs; \"(unpaired)\" = difference of cell means when no seed is shared.")
    if any(b["half"] for b in blocks):
        notes.append("+half = the same method on only the k/2 originals CoD uses (KD(k/2)).")
    srcs = sorted({s for b in blocks for s in b["papers"]})
    if srcs:
        notes.append(f"paper rows: {', '.join(srcs)}, test accuracy ×100, mean ± std over 5 runs "
                     "(cod_pipeline/reference/README.md).")
    notes.append(f"{MISSING} = missing cell.")
    nd = agg.attrs.get("duplicates_dropped", 0)
    if nd:
        notes.append(f"{nd} duplicate run(s) (same config and seed) dropped, newest kept.")
    mk = agg.attrs.get("merged_keys") or []
    if mk:
        notes.append(f"WARNING: cells pool runs that differ in {', '.join(mk)} (not in --group-by).")
    return notes


def render_markdown(agg: pd.DataFrame) -> str:
    """One markdown table per dataset (its own k columns), then the notes."""
    if agg.empty:
        return "_no results_\n"
    blocks, with_n = _blocks(agg)
    lines = []
    for b in blocks:
        ks = b["ks"]
        lines += [f"### {b['label']}", "",
                  "| " + " | ".join(["Dataset (metric)", "Teacher", "Variant"] + [f"k={k}" for k in ks]) + " |",
                  "|" + "|".join([":---", "---:", ":---"] + ["---:"] * len(ks)) + "|"]
        best = _best(b["rows"], len(ks))
        for i, (var, cells, kind, _) in enumerate(b["rows"]):
            cells = list(cells)
            if kind == "gain":
                var = f"*{var}*"
                cells = [f"*{c}*" if c != MISSING else c for c in cells]
            elif kind == "variant":
                cells = [f"**{c}**" if i in best[j] else c for j, c in enumerate(cells)]
            first = i == 0
            lines.append("| " + " | ".join([b["label"] if first else "", b["teacher"] if first else "",
                                            var.replace("|", "\\|")] + cells) + " |")
        lines.append("")
    lines += _notes(agg, with_n, blocks)
    lines.append("Bold: best reproduced variant per k.")
    return "\n".join(lines) + "\n"


_TEX_MAP = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "α": r"$\alpha$", "Δ": r"$\Delta$", MINUS: r"$-$", MISSING: "--", "–": "--",
    "×": r"$\times$", "…": r"\ldots{}", '"': "''", "→": r"$\rightarrow$",
}


def _tex(s: str) -> str:
    return "".join(_TEX_MAP.get(c, c) for c in str(s))


def render_latex(agg: pd.DataFrame) -> str:
    """One LaTeX ``table`` per dataset through pandas' ``Styler.to_latex`` (booktabs rules,
    caption, label ``tab:cod-<dataset>``), best reproduced cell per k column in bold."""
    if agg.empty:
        return "% no results\n"
    blocks, with_n = _blocks(agg)
    out = [r"% requires \usepackage{booktabs}"]
    for b in blocks:
        notes = " ".join(_notes(agg, with_n, [b])).replace(" (cod_pipeline/reference/README.md)", "")
        ks = b["ks"]
        label = "tab:cod-" + "".join(c if c.isalnum() else "-" for c in str(b["dataset"]))
        caption = (f"{b['dataset']}: student {b['metric']} (×100), teacher {b['teacher']}. {notes} "
                   f"Bold: best reproduced variant per k.")
        best = _best(b["rows"], len(ks))
        body, props = [], []  # cells escaped here (unicode → LaTeX); Styler only adds the markup
        for i, (var, cells, kind, _) in enumerate(b["rows"]):
            cs = [_tex(c) for c in cells]
            lead = r"\quad " if kind == "paper" else r"\addlinespace " if kind == "variant" and i else ""
            body.append([lead + _tex(var)] + cs)  # \addlinespace first in a row: space before each variant
            if kind == "gain":
                props.append(["textit: --rwrap;"] + ["textit: --rwrap;" if c != "--" else "" for c in cs])
            elif kind == "paper":
                props.append(["textit: --rwrap;"] + [""] * len(cs))
            else:
                props.append([""] + ["textbf: --rwrap;" if i in best[j] else "" for j in range(len(cs))])
        frame = pd.DataFrame(body, columns=["Variant"] + [f"$k={k}$" for k in ks])
        styled = frame.style.hide(axis="index").apply(lambda _: pd.DataFrame(props, columns=frame.columns), axis=None)
        out.append(styled.to_latex(caption=_tex(caption), label=label, position="t", position_float="centering",
                                   hrules=True, column_format="l" + "r" * len(ks)))
    return "\n".join(out)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s))


def _draw_panel(ax, d: pd.DataFrame, colour: dict, styles: dict, offset: dict, show_paper: bool) -> None:
    ks = _ks_of(d)
    paper_done, papers = False, set()
    show_paper = show_paper and d["metric"].iloc[0] == "accuracy"  # the paper reports accuracy only
    for var in dict.fromkeys(d["variant"]):
        dv = d[(d["variant"] == var) & (d["n"] > 0) & d["k"].isin(ks)].sort_values("k")
        if dv.empty:
            continue
        aug = dv["augment"].iloc[0]
        x = dv["k"].to_numpy(float) * offset[var]
        ax.errorbar(x, dv["mean"], yerr=dv["std"].fillna(0.0), label=var, color=colour[var],
                    linestyle=styles.get(aug, ":"), marker="o", markersize=4, capsize=3,
                    markerfacecolor="white" if aug in BASELINE_AUGMENTS else None)
        pv = d[(d["variant"] == var) & d["k"].isin(ks) & d["paper_mean"].notna()].sort_values("k")
        name = var.split(" [", 1)[0]
        if show_paper and len(pv) and name not in papers:
            papers.add(name)
            ax.scatter(pv["k"].to_numpy(float) * offset[var], pv["paper_mean"], marker="x", s=28,
                       color=colour[var])
            if not paper_done:  # one legend entry, in black: the markers take their variant's colour
                ax.scatter([], [], marker="x", s=28, color="black", label="paper (accuracy)")
            paper_done = True
    t = d["teacher"].iloc[0]
    if not pd.isna(t):
        ax.axhline(t, color="grey", linewidth=1, linestyle=(0, (2, 2)), label="teacher")
    maj = d["majority"].dropna() if "majority" in d else []
    if len(maj):
        ax.axhline(float(maj.iloc[0]), color="black", linewidth=0.8, linestyle=":", label="majority class")
    _k_axis(ax, ks)
    ax.set_ylabel(f"{d['metric'].iloc[0]} (×100)")
    ax.set_title(str(d["dataset"].iloc[0]))


def _draw_gain(ax, d: pd.DataFrame, colour: dict, offset: dict) -> bool:
    """The paired gain over seeds (variant − its baseline, same draws) with its CI, per k; the
    line at 0 is "no better than the baseline"; each point says how many seeds it won."""
    d = d[d["gain_mean"].notna()]
    if d.empty:
        return False
    for var in dict.fromkeys(d["variant"]):
        dv = d[d["variant"] == var].sort_values("k")
        x = dv["k"].to_numpy(float) * offset[var]
        lo, hi = (dv["gain_mean"] - dv["gain_lo"]).fillna(0.0), (dv["gain_hi"] - dv["gain_mean"]).fillna(0.0)
        ax.errorbar(x, dv["gain_mean"], yerr=[lo.clip(lower=0), hi.clip(lower=0)], color=colour[var], marker="o",
                    markersize=4, capsize=3, label=f"{var} − {dv['baseline'].iloc[0]}")
        for xi, y, w, n in zip(x, dv["gain_mean"], dv["wins"], dv["n_pairs"]):
            ax.annotate(f"{int(w)}/{int(n)}", (xi, y), textcoords="offset points", xytext=(4, 4), fontsize=6,
                        color=colour[var])
    ax.axhline(0.0, color="black", linewidth=0.8)
    _k_axis(ax, sorted(int(k) for k in d["k"].unique()))
    ax.set_ylabel(f"paired gain in {d['metric'].iloc[0]} (×100)")
    ax.set_title(f"{d['dataset'].iloc[0]}: gain over the baseline, seeds won")
    return True


def _k_axis(ax, ks) -> None:
    """Shots on a log2 axis, ticked at the ks that ran; one k gets some room either side."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()
    if len(ks) == 1:
        ax.set_xlim(ks[0] / 1.6, ks[0] * 1.6)
    ax.set_xlabel("k (shots)")
    ax.grid(True, alpha=0.3)


def plot(agg: pd.DataFrame, out_dir) -> list[Path]:
    """Per dataset ``plot_<dataset>.png`` + ``.pdf`` and one multi-panel
    ``plot_all.png`` + ``.pdf``: score vs k (log2 x, only the ks that ran), one
    colour per variant, solid = CoD, dashed = no augmentation, other styles for
    other augments; error bars = std over seeds, offset along x per variant so
    they do not overlap; × = the paper's accuracy; grey line = teacher; dotted black line =
    always answering the most frequent test class. Beside each,
    ``gain_<dataset>.png`` + ``.pdf``: the paired gain over the baseline with its CI
    and the seeds won, the figure a claim rests on."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if agg.empty:
        return written
    styles = {"none": "--", "cod": "-", "half": (0, (3, 1, 1, 1))}
    other_styles = [":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3))]
    for i, a in enumerate(a for a in dict.fromkeys(agg["augment"]) if a not in styles):
        styles[a] = other_styles[i % len(other_styles)]
    variants = list(dict.fromkeys(agg["variant"]))
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    colour = {v: cmap(i % cmap.N) for i, v in enumerate(variants)}
    step = min(0.06, 0.4 / max(len(variants), 1))  # log2 units between neighbouring variants
    offset = {v: 2.0 ** ((i - (len(variants) - 1) / 2.0) * step) for i, v in enumerate(variants)}
    show_paper = agg["paper_mean"].notna().any()

    def save(fig, stem):
        for ext, kw in (("png", {"dpi": 120}), ("pdf", {})):
            p = out_dir / f"{stem}.{ext}"
            fig.savefig(p, **kw)
            written.append(p)
        plt.close(fig)

    datasets = list(dict.fromkeys(agg["dataset"]))
    for ds in datasets:
        fig, ax = plt.subplots(figsize=(6, 4))
        _draw_panel(ax, agg[agg["dataset"] == ds], colour, styles, offset, show_paper)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        fig.tight_layout()
        save(fig, f"plot_{_slug(ds)}")
        fig, ax = plt.subplots(figsize=(6, 4))
        if _draw_gain(ax, agg[agg["dataset"] == ds], colour, offset):
            ax.legend(fontsize=7)
            fig.tight_layout()
            save(fig, f"gain_{_slug(ds)}")
        else:
            plt.close(fig)

    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    handles = {}
    for ax, ds in zip(axes.flat, datasets):
        _draw_panel(ax, agg[agg["dataset"] == ds], colour, styles, offset, show_paper)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    legend_h = 0.15 + 0.2 * math.ceil(len(handles) / 4) if handles else 0.0  # inches
    fig.set_size_inches(4.2 * ncols, 3.3 * nrows + legend_h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", fontsize=7,
                   ncol=min(len(handles), 4), frameon=False)
    fig.tight_layout(rect=(0, legend_h / (3.3 * nrows + legend_h), 1, 1))
    save(fig, "plot_all")
    return written


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
                                 description="Aggregate result.json files into the CoD results tables.")
    ap.add_argument("paths", nargs="+", help="multirun dir(s) or glob(s), searched recursively for result.json")
    ap.add_argument("--out", default=None, help="output dir (default: <first dir>/report)")
    ap.add_argument("--metric", default="auto", choices=list(METRICS) + ["auto"])
    ap.add_argument("--group-by", default=None, metavar="KEY[,KEY...]",
                    help="config keys (flattened, e.g. cfe.name,model.student_training.lr) that may split cells; "
                         "dataset, model, method, augment, alpha and k always do. Default: every key that differs "
                         "between runs; keys left out are pooled with a warning")
    ap.add_argument("--ci", default="t", choices=list(CI_METHODS),
                    help="confidence interval of the paired gains: Student t (default) or percentile bootstrap")
    ap.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples (with --ci bootstrap)")
    ap.add_argument("--no-paper", action="store_true", help="leave out the paper's rows (Tables 5/6)")
    ap.add_argument("--wandb", nargs="?", const="cod-pipeline", default=None, metavar="PROJECT",
                    help="also log the tables (as W&B tables) and every file written (as one artifact) to a "
                         "W&B run of job_type=report; WANDB_MODE decides online/offline")
    args = ap.parse_args(argv)
    if args.n_boot < 1:
        print(f"error: --n-boot {args.n_boot}: at least 1 resample", file=sys.stderr)
        return 2
    group_by = None if args.group_by is None else [k.strip() for k in args.group_by.split(",") if k.strip()]

    files = _expand(args.paths)
    if not files:
        print(f"error: no result.json found under: {' '.join(args.paths)}", file=sys.stderr)
        return 2
    df = collect(args.paths)
    if not (df["stage"] == "student").any():
        print(f"error: none of the {len(files)} result.json file(s) is a valid student result", file=sys.stderr)
        return 2
    agg, runs = build(df, args.metric, group_by=group_by, ci=args.ci, n_boot=args.n_boot, paper=not args.no_paper)
    out = Path(args.out) if args.out else _default_out(args.paths[0])
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").touch()
        (out / ".write-test").unlink()
    except OSError as e:
        print(f"error: cannot write the report to {out} ({e.strerror}): pass --out DIR", file=sys.stderr)
        return 2

    md = render_markdown(agg)
    paths = [out / "table.csv", out / "runs.csv", out / "table.md", out / "table.tex"]
    agg.to_csv(paths[0], index=False, float_format="%.4f")
    runs_table(runs).to_csv(paths[1], index=False, float_format="%.4f")
    paths[2].write_text(md, encoding="utf-8")
    paths[3].write_text(render_latex(agg), encoding="utf-8")
    quality = cfe_quality_table(runs)
    if not quality.empty:
        paths += [out / "cfe_quality.csv", out / "cfe_quality.md"]
        quality.to_csv(paths[-2], index=False, float_format="%.4f")
        paths[-1].write_text("# CFE quality (mean over seeds; faithfulness: the judge gives the CFE's class)\n\n"
                             + _markdown_frame(quality) + "\n", encoding="utf-8")
    examples = cfe_examples(runs)
    if not examples.empty:
        paths.append(out / "cfe_examples.tex")
        paths[-1].write_text(render_cfe_latex(examples), encoding="utf-8")
    paths += plot(agg, out)

    print(md)
    n_stu = int((df["stage"] == "student").sum())
    print(f"{n_stu} student run(s) from {len(files)} file(s); metric={args.metric}; "
          f"gains: {agg.attrs['ci_label']}")
    for p in paths:
        print(f"wrote {p}")
    if args.wandb:
        from cod_pipeline.tracking import log_report

        print(f"W&B: {log_report(args.wandb, paths, {'table': agg, 'cfe_quality': quality})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
