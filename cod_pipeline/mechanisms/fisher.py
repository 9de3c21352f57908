"""Theorem 1 toy: logistic-regression distillation and Fisher information.

A logistic teacher ``p_t(x) = sigmoid(w_t . x + b_t)`` with ``x ~ N(0, I_d)``.
A logistic student is fitted by soft-label cross-entropy (Newton/IRLS with ridge) on

* ``standard``: ``k`` i.i.d. inputs, or
* ``cod``: ``k/2`` i.i.d. inputs plus their minimal counterfactuals (same budget ``k``).

We record the squared parameter error ``||w_s - w_t||^2`` and the trace and minimum
eigenvalue of the Fisher information ``I = sum_i p_i (1 - p_i) x_i x_i^T`` of the
training design evaluated under the teacher.

Label models (``labels``):

* ``"soft"``: the student sees the teacher's probabilities ``sigmoid(w_t.x + b_t + eps)``
  with ``eps ~ N(0, logit_noise^2)``. With ``logit_noise=0`` the soft-label MLE is
  exactly ``w_t`` whenever the design spans R^d, so the error is then only the ridge
  bias plus the unidentified null-space component (useful but degenerate).
* ``"bernoulli"``: hard labels ``y ~ Bernoulli(p_t(x))`` -- the classical setting in
  which the MLE covariance is asymptotically ``I^{-1}`` (Cramer-Rao).
"""

from __future__ import annotations

import contextlib

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "sigmoid",
    "minimal_cfe",
    "fisher_information",
    "fit_soft_logistic",
    "make_teacher",
    "run_fisher",
]

DEFAULT_KS = (8, 16, 32, 64, 128, 256, 512)
DEFAULT_DIMS = (2, 8, 32)


def sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def minimal_cfe(X: np.ndarray, w: np.ndarray, b: float = 0.0, margin: float = 0.1) -> np.ndarray:
    """Minimal (L2) counterfactuals for the linear classifier ``sign(w.x + b)``.

    Each row is projected orthogonally onto the hyperplane ``w.x + b = 0`` and then
    moved ``margin`` further along the normal, onto the other side::

        x_cfe = x - ((w.x + b) / ||w||^2) w - margin * sign(w.x + b) * w / ||w||

    so that the signed distance ``(w.x_cfe + b)/||w||`` equals ``-margin * sign(w.x + b)``.
    Points exactly on the boundary (``w.x + b == 0``) are treated as positive.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    w = np.asarray(w, dtype=np.float64).ravel()
    nw2 = float(w @ w)
    if nw2 == 0.0:
        raise ValueError("minimal_cfe: w must be non-zero")
    nw = np.sqrt(nw2)
    z = X @ w + b
    s = np.where(z >= 0, 1.0, -1.0)
    return X - np.outer(z / nw2, w) - np.outer(margin * s / nw, w)


def fisher_information(
    X: np.ndarray, w: np.ndarray, b: float = 0.0, include_bias: bool = False
) -> np.ndarray:
    """Fisher information ``sum_i p_i (1 - p_i) x_i x_i^T`` with ``p_i = sigmoid(w.x_i + b)``.

    With ``include_bias=True`` each ``x_i`` is augmented with a trailing 1 and the
    returned matrix is ``(d+1) x (d+1)``.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    w = np.asarray(w, dtype=np.float64).ravel()
    p = sigmoid(X @ w + b)
    v = p * (1.0 - p)
    if include_bias:
        X = np.hstack([X, np.ones((X.shape[0], 1))])
    return (X * v[:, None]).T @ X


def _loss(X1, p, theta, ridge, reg_mask):
    z = X1 @ theta
    return float(np.sum(_softplus(z) - p * z) + 0.5 * ridge * np.sum((theta * reg_mask) ** 2))


def fit_soft_logistic(
    X: np.ndarray,
    p: np.ndarray,
    ridge: float = 1e-3,
    fit_intercept: bool = False,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """Logistic regression with soft targets ``p in [0, 1]`` (cross-entropy + ridge).

    Minimises ``sum_i [softplus(z_i) - p_i z_i] + ridge/2 ||w||^2`` with ``z = Xw + b``
    by damped Newton (IRLS with backtracking line search). The intercept, if fitted,
    is not penalised. Returns ``(w, b)`` (``b = 0.0`` when ``fit_intercept=False``).
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    p = np.asarray(p, dtype=np.float64).ravel()
    n, d = X.shape
    if fit_intercept:
        X1 = np.hstack([X, np.ones((n, 1))])
        reg_mask = np.r_[np.ones(d), 0.0]
    else:
        X1 = X
        reg_mask = np.ones(d)
    D = X1.shape[1]
    theta = np.zeros(D)
    # a tiny floor keeps the Hessian invertible for the unpenalised intercept
    R = np.diag(ridge * reg_mask + 1e-12)
    f = _loss(X1, p, theta, ridge, reg_mask)
    for _ in range(max_iter):
        s = sigmoid(X1 @ theta)
        g = X1.T @ (s - p) + ridge * reg_mask * theta
        H = (X1 * (s * (1 - s))[:, None]).T @ X1 + R
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        dec = float(g @ step)
        if dec / 2.0 < tol:
            break
        t = 1.0
        while t > 1e-10:
            new = theta - t * step
            fn = _loss(X1, p, new, ridge, reg_mask)
            if fn <= f - 1e-4 * t * dec:
                break
            t *= 0.5
        theta, f = new, fn
    if fit_intercept:
        return theta[:d], float(theta[d])
    return theta, 0.0


def make_teacher(d: int, w_norm: float, rng: np.random.Generator, bias: float = 0.0):
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    return w_norm * u, float(bias)


def _labels(X, w, b, rng, labels: str, logit_noise: float) -> np.ndarray:
    z = X @ w + b
    if labels == "soft":
        if logit_noise > 0:
            z = z + logit_noise * rng.standard_normal(z.shape)
        return sigmoid(z)
    if labels == "bernoulli":
        return (rng.random(z.shape) < sigmoid(z)).astype(np.float64)
    raise ValueError(f"unknown labels={labels!r} (use 'soft' or 'bernoulli')")


def _one_trial(d, k, seed, margin, w_norm, bias, ridge, labels, logit_noise, fit_intercept):
    rng = np.random.default_rng([seed, d, k])
    w_t, b_t = make_teacher(d, w_norm, rng, bias)
    X_all = rng.standard_normal((k, d))
    designs = {
        "standard": X_all,
        "cod": np.vstack(
            [X_all[: k // 2], minimal_cfe(X_all[: k // 2], w_t, b_t, margin)]
        ),
    }
    rows = []
    for method, X in designs.items():
        # independent label noise per method, same generator stream per (seed, d, k)
        lrng = np.random.default_rng([seed, d, k, 1 if method == "cod" else 0])
        p = _labels(X, w_t, b_t, lrng, labels, logit_noise)
        w_s, b_s = fit_soft_logistic(X, p, ridge=ridge, fit_intercept=fit_intercept)
        I = fisher_information(X, w_t, b_t)
        eig = np.linalg.eigvalsh(I)
        cos = float(w_s @ w_t / (np.linalg.norm(w_s) * np.linalg.norm(w_t) + 1e-300))
        u = w_t / np.linalg.norm(w_t)
        delta = w_s - w_t
        err_par = float((delta @ u) ** 2)
        rows.append(
            dict(
                d=d,
                k=k,
                seed=seed,
                method=method,
                n_train=len(X),
                err=float(np.sum(delta**2)),
                # split of err: along the teacher normal (scale/sharpness) vs orthogonal
                # to it (boundary orientation)
                err_par=err_par,
                err_perp=float(np.sum(delta**2)) - err_par,
                cos=cos,
                fisher_trace=float(eig.sum()),
                # eigenvalues below 1e-12 * trace are round-off of a singular design
                fisher_min_eig=float(eig[0] if eig[0] > 1e-12 * eig.sum() else 0.0),
                # average per-sample curvature p(1-p): CFEs sit where it is maximal
                mean_pq=float(np.mean(sigmoid(X @ w_t + b_t) * (1 - sigmoid(X @ w_t + b_t)))),
            )
        )
    return rows


def _fmt(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "nan"
    a = abs(mean)
    if a != 0 and (a < 1e-3 or a >= 1e4):
        return f"{mean:.2e} ± {std:.1e}"
    return f"{mean:.3f} ± {std:.3f}"


def summarize(
    df: pd.DataFrame,
    metrics=("err", "err_par", "err_perp", "fisher_trace", "fisher_min_eig"),
) -> pd.DataFrame:
    g = df.groupby(["d", "k", "method"])[list(metrics)].agg(["mean", "std"])
    g.columns = [f"{m}_{s}" for m, s in g.columns]
    return g.reset_index()


def _markdown(df: pd.DataFrame, params: dict) -> str:
    s = summarize(df)
    lines = [
        "# Theorem 1 toy: logistic distillation, standard vs CoD",
        "",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()),
        "",
        "Mean ± std over seeds. err = ||w_s - w_t||^2 (lower is better); Fisher information"
        " I = Σ p(1-p) x xᵀ of the training design under the teacher (higher is more"
        " informative). `cod wins err` = fraction of seeds where CoD's error is lower.",
        "",
        "| d | k | err standard | err CoD | cod wins err | tr(I) standard | tr(I) CoD |"
        " λmin(I) standard | λmin(I) CoD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    piv = df.pivot_table(index=["d", "k", "seed"], columns="method", values="err")
    wins = (piv["cod"] < piv["standard"]).groupby(level=["d", "k"]).mean()
    for (d, k), sub in s.groupby(["d", "k"]):
        st = sub[sub.method == "standard"].iloc[0]
        cd = sub[sub.method == "cod"].iloc[0]
        lines.append(
            f"| {d} | {k} | {_fmt(st.err_mean, st.err_std)} | {_fmt(cd.err_mean, cd.err_std)} |"
            f" {wins.loc[(d, k)]:.2f} |"
            f" {_fmt(st.fisher_trace_mean, st.fisher_trace_std)} |"
            f" {_fmt(cd.fisher_trace_mean, cd.fisher_trace_std)} |"
            f" {_fmt(st.fisher_min_eig_mean, st.fisher_min_eig_std)} |"
            f" {_fmt(cd.fisher_min_eig_mean, cd.fisher_min_eig_std)} |"
        )
    lines += [
        "",
        "Error split: err_par = (component of w_s - w_t along w_t/||w_t||)^2 (teacher"
        " sharpness/scale), err_perp = rest (boundary orientation).",
        "",
        "| d | k | err_par standard | err_par CoD | err_perp standard | err_perp CoD |",
        "|---|---|---|---|---|---|",
    ]
    for (d, k), sub in s.groupby(["d", "k"]):
        st = sub[sub.method == "standard"].iloc[0]
        cd = sub[sub.method == "cod"].iloc[0]
        lines.append(
            f"| {d} | {k} | {_fmt(st.err_par_mean, st.err_par_std)} |"
            f" {_fmt(cd.err_par_mean, cd.err_par_std)} |"
            f" {_fmt(st.err_perp_mean, st.err_perp_std)} |"
            f" {_fmt(cd.err_perp_mean, cd.err_perp_std)} |"
        )
    return "\n".join(lines) + "\n"


def _plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(df)
    dims = sorted(df.d.unique())
    metrics = [("err", "E||w_s - w_t||²"), ("fisher_trace", "tr(I)"), ("fisher_min_eig", "λmin(I)")]
    fig, axes = plt.subplots(
        len(metrics), len(dims), figsize=(4.2 * len(dims), 3.2 * len(metrics)), squeeze=False
    )
    for j, d in enumerate(dims):
        for i, (m, label) in enumerate(metrics):
            ax = axes[i, j]
            for method, color in (("standard", "tab:blue"), ("cod", "tab:red")):
                sub = s[(s.d == d) & (s.method == method)].sort_values("k")
                ax.errorbar(
                    sub.k, sub[f"{m}_mean"], yerr=sub[f"{m}_std"], marker="o", capsize=3,
                    color=color, label="CoD (k/2 + CFEs)" if method == "cod" else "standard (k)",
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("k (budget)")
            ax.set_ylabel(label)
            if i == 0:
                ax.set_title(f"d = {d}")
            ax.grid(alpha=0.3, which="both")
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_fisher(
    out_dir: str | os.PathLike,
    ks: Sequence[int] = DEFAULT_KS,
    dims: Sequence[int] = DEFAULT_DIMS,
    seeds: int = 50,
    margin: float = 0.1,
    w_norm: float = 3.0,
    bias: float = 0.0,
    ridge: float = 1e-3,
    labels: str = "soft",
    logit_noise: float = 0.5,
    fit_intercept: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the Theorem-1 experiment; write ``fisher.csv``, ``fisher.md``, ``fisher.png``.

    One row per (d, k, seed, method) with columns ``err``, ``cos``, ``fisher_trace``,
    ``fisher_min_eig``, ``mean_pq``. Each seed draws a fresh teacher direction.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only pins BLAS to one thread
        threadpool_limits = None

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ks = [int(k) for k in ks]
    if any(k < 2 or k % 2 for k in ks):
        raise ValueError("every k must be an even integer >= 2 (CoD uses k/2 + k/2)")
    jobs = [(d, k, s) for d in dims for k in ks for s in range(seeds)]
    try:
        from tqdm.auto import tqdm

        it = tqdm(jobs, desc="fisher", disable=not progress, mininterval=1.0)
    except ImportError:  # pragma: no cover
        it = jobs
    t0 = time.time()
    rows = []
    with threadpool_limits(limits=1) if threadpool_limits else contextlib.nullcontext():
        for d, k, s in it:
            rows += _one_trial(
                d, k, s, margin, w_norm, bias, ridge, labels, logit_noise, fit_intercept
            )
    df = pd.DataFrame(rows)
    params = dict(
        seeds=seeds, margin=margin, w_norm=w_norm, bias=bias, ridge=ridge, labels=labels,
        logit_noise=logit_noise if labels == "soft" else "n/a", fit_intercept=fit_intercept,
    )
    for key, val in params.items():
        df[key] = val
    df.to_csv(out / "fisher.csv", index=False)
    (out / "fisher.md").write_text(
        _markdown(df, params) + f"\nWall time: {time.time() - t0:.1f} s\n"
    )
    _plot(df, out / "fisher.png")
    return df
