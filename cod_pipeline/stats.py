"""Paired statistics over seeds, shared by the report and the benchmark scripts.

A gain such as CoD − KD is measured on the *same* seeds (same k-shot draw,
same student init), so it is a paired difference: ``d_i = treatment_i -
baseline_i`` for every seed ``i`` that ran both.  :func:`paired_gain` returns
the mean difference, a confidence interval and win counts::

    >>> g = paired_gain([72, 75, 71], [70, 70, 72])
    >>> round(g["mean"], 3), g["wins"], g["n"], g["ci_method"]
    (2.0, 2, 3, 't')

CI methods:

* ``"t"``: Student t interval with n − 1 degrees of freedom,
  ``mean ± t_{1-(1-level)/2, n-1} · sd / sqrt(n)`` (sd: sample std, ddof=1);
* ``"bootstrap"``: percentile bootstrap of the mean difference, ``n_boot``
  resamples of the n pairs with replacement (seeded, so reproducible).

With a single pair the interval is undefined (NaN); with none everything is
NaN and the counts are 0.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

CI_METHODS = ("t", "bootstrap")
TIE_TOL = 1e-9


def ci_label(ci: str = "t", level: float = 0.95, n_boot: int = 10_000) -> str:
    """Human-readable name of a CI method, e.g. ``95% CI, Student t (n−1 df)``."""
    pct = f"{100 * level:g}%"
    if ci == "t":
        return f"{pct} CI, Student t (n−1 df)"
    if ci == "bootstrap":
        return f"{pct} CI, percentile bootstrap ({n_boot} resamples)"
    raise ValueError(f"unknown ci {ci!r}; choose from {CI_METHODS}")


def paired_gain(treatment: Sequence[float], baseline: Sequence[float], ci: str = "t", *,
                level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Paired difference ``treatment − baseline`` (aligned sequences, one entry per seed).

    Returns a dict with ``mean`` (mean difference), ``lo`` / ``hi`` (CI bounds),
    ``std`` (sample std of the differences), ``n`` (pairs), ``wins`` / ``ties`` /
    ``losses`` (pairs where treatment is above / equal to within 1e-9 / below
    the baseline), ``ci_method`` (``"t"`` or ``"bootstrap"``) and ``level``.
    Pairs with a NaN on either side are dropped.
    """
    if ci not in CI_METHODS:
        raise ValueError(f"unknown ci {ci!r}; choose from {CI_METHODS}")
    t = np.asarray(list(treatment), dtype=float)
    b = np.asarray(list(baseline), dtype=float)
    if t.shape != b.shape:
        raise ValueError(f"treatment and baseline must be aligned (got {t.size} and {b.size} values)")
    d = t - b
    d = d[~np.isnan(d)]
    n = int(d.size)
    out = dict(mean=math.nan, lo=math.nan, hi=math.nan, std=math.nan, n=n, wins=0, ties=0, losses=0,
               ci_method=ci, level=level)
    if n == 0:
        return out
    out["wins"] = int((d > TIE_TOL).sum())
    out["losses"] = int((d < -TIE_TOL).sum())
    out["ties"] = n - out["wins"] - out["losses"]
    mean = float(d.mean())
    out["mean"] = mean
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["std"] = sd
    alpha = 1.0 - level
    if ci == "t":
        from scipy.stats import t as student_t

        half = float(student_t.ppf(1.0 - alpha / 2.0, n - 1)) * sd / math.sqrt(n)
        out["lo"], out["hi"] = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1)
        lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
        out["lo"], out["hi"] = float(lo), float(hi)
    return out


def pair_by_seed(treatment: Mapping, baseline: Mapping) -> tuple[list[float], list[float], list]:
    """Align two ``{seed: score}`` maps on their common seeds (sorted)."""
    seeds = sorted(set(treatment) & set(baseline))
    return [float(treatment[s]) for s in seeds], [float(baseline[s]) for s in seeds], seeds


def paired_gain_by_seed(treatment: Mapping, baseline: Mapping, ci: str = "t", **kw) -> dict:
    """:func:`paired_gain` over the seeds both maps have; adds ``seeds`` to the dict."""
    t, b, seeds = pair_by_seed(treatment, baseline)
    out = paired_gain(t, b, ci, **kw)
    out["seeds"] = seeds
    return out
