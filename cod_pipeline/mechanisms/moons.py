"""Theorem 2 toy: two-moons decision boundaries, KD vs CoD students.

* Teacher: MLP (default 2-64-64-2, ReLU) trained on ``make_moons(n=2000, noise=0.2)``.
* CFEs: gradient-based minimal-perturbation search (DeepFool-style projection steps on
  the teacher's logit margin ``m(x) = z_1(x) - z_0(x)`` until the sign flips, then
  bisection to the boundary), then a further ``alpha_dist`` along the boundary normal.
* Students (default 2-32-32-2) trained on teacher soft labels, on ``k`` originals (KD)
  vs ``k/2`` originals + their ``k/2`` CFEs (CoD). Same init, same number of steps.
* Metric: symmetric Hausdorff distance between the teacher's and the student's
  zero-margin curves inside the data bounding box (grid + linear interpolation), plus
  prediction agreement on a dense in-distribution test sample and on a uniform grid.

Everything is CPU-only, single-threaded and finishes in well under two minutes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .geometry import boundary_points, grid, hausdorff

__all__ = [
    "MLP",
    "margin",
    "margin_fn",
    "train_mlp",
    "cfe_search",
    "boundary_points",
    "hausdorff",
    "run_moons",
]

DEFAULT_KS = (8, 16, 32, 64, 128)
DEFAULT_ALPHAS = (0.01, 0.05, 0.1, 0.2, 0.4)


# --------------------------------------------------------------------------- models
class MLP(nn.Module):
    """Plain MLP ``2 -> hidden... -> 2`` with ReLU (or tanh) activations."""

    def __init__(self, hidden: Sequence[int] = (64, 64), in_dim: int = 2, n_classes: int = 2,
                 activation: str = "relu"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), act()]
            prev = h
        layers.append(nn.Linear(prev, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def margin(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logit margin ``z_1 - z_0`` (or the single logit for a 1-output model)."""
    z = model(x)
    if z.ndim == 1:
        return z
    if z.shape[1] == 1:
        return z[:, 0]
    return z[:, 1] - z[:, 0]


def margin_fn(model: nn.Module):
    """numpy ``(N, 2) -> (N,)`` wrapper around :func:`margin` (for boundary_points)."""

    def fn(pts: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return margin(model, torch.as_tensor(pts, dtype=torch.float32)).double().numpy()

    return fn


def train_mlp(
    X: np.ndarray,
    targets: np.ndarray,
    hidden: Sequence[int] = (64, 64),
    steps: int = 500,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
    activation: str = "relu",
) -> MLP:
    """Full-batch Adam on cross-entropy.

    ``targets`` is either an int label vector ``(N,)`` (hard labels) or a probability
    matrix ``(N, 2)`` (soft labels, i.e. KD with temperature 1).
    """
    torch.manual_seed(seed)
    model = MLP(hidden, activation=activation)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    T = torch.as_tensor(targets)
    soft = T.ndim == 2
    T = T.float() if soft else T.long()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        logits = model(Xt)
        if soft:
            loss = -(T * torch.log_softmax(logits, dim=1)).sum(1).mean()
        else:
            loss = nn.functional.cross_entropy(logits, T)
        loss.backward()
        opt.step()
    model.eval()
    return model


def predict_proba(model: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(X, dtype=torch.float32)), 1).double().numpy()


# --------------------------------------------------------------------------- CFEs
def _margin_and_grad(model: nn.Module, x: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    m = margin(model, x)
    (g,) = torch.autograd.grad(m.sum(), x)
    return m.detach(), g.detach()


def _sgn(m: torch.Tensor) -> torch.Tensor:
    return torch.where(m >= 0, torch.ones_like(m), -torch.ones_like(m))


def _signs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``sign(m(x))`` without a graph: the side of the boundary each point is on."""
    with torch.no_grad():
        return _sgn(margin(model, x))


def _project_steps(model: nn.Module, x0: torch.Tensor, s0: torch.Tensor, max_iter: int,
                   overshoot: float, max_step: float):
    """Step 1: DeepFool projection steps; ``(lo, hi, found)`` bracket each crossing."""
    x = x0.clone()
    lo = x0.clone()
    found = torch.zeros(len(x0), dtype=torch.bool)
    for _ in range(max_iter):
        m, g = _margin_and_grad(model, x)
        found |= _sgn(m) != s0
        active = ~found
        if not active.any():
            break
        gn2 = (g * g).sum(1).clamp_min(1e-12)
        step = -((1.0 + overshoot) * m / gn2)[:, None] * g
        # guarantee progress when m is ~0 exactly on the start side
        norm = step.norm(dim=1, keepdim=True)
        tiny = norm < 1e-6
        step = torch.where(tiny, -s0[:, None] * g / gn2.sqrt()[:, None] * 1e-6, step)
        norm = step.norm(dim=1, keepdim=True)
        step = step * torch.clamp(max_step / norm.clamp_min(1e-12), max=1.0)
        lo[active] = x[active]
        x[active] = x[active] + step[active]
    else:
        found |= _signs(model, x) != s0
    return torch.where(found[:, None], lo, x0), x.clone(), found


def _ray_search(model: nn.Module, x0: torch.Tensor, s0: torch.Tensor, lo: torch.Tensor,
                hi: torch.Tensor, found: torch.Tensor, n_dirs: int, max_radius: float) -> torch.Tensor:
    """Fallback for points where the projection steps got trapped (e.g. a ragged ReLU
    teacher with a positive local minimum of |m|): derivative-free ray search from x0
    over ``n_dirs`` directions and growing radii; the first radius at which some ray
    flips the label brackets a crossing on that ray.  Updates ``lo``/``hi``/``found``
    in place and returns the mask of points it bracketed."""
    ray = torch.zeros(len(x0), dtype=torch.bool)
    if not (~found).any():
        return ray
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(n_dirs, x0.shape[1], generator=gen)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    radii = torch.logspace(np.log10(0.01), np.log10(max_radius), 40)
    for i in torch.nonzero(~found).ravel().tolist():
        for r in radii:
            cand = x0[i][None, :] + r * dirs
            fl = _signs(model, cand) != s0[i]
            if fl.any():
                j = int(torch.nonzero(fl)[0])
                lo[i], hi[i] = x0[i], cand[j]
                found[i] = True
                ray[i] = True
                break
    return ray


def _bisect(model: nn.Module, lo: torch.Tensor, hi: torch.Tensor, s0: torch.Tensor,
            bisect_iter: int) -> torch.Tensor:
    """Step 2: shrink each bracket; its flipped end is the boundary point."""
    for _ in range(bisect_iter):
        mid = 0.5 * (lo + hi)
        same = (_signs(model, mid) == s0)[:, None]
        lo = torch.where(same, mid, lo)
        hi = torch.where(same, hi, mid)
    return hi


def _step_past(model: nn.Module, xb: torch.Tensor, s0: torch.Tensor, found: torch.Tensor,
               alpha_dist: float):
    """Step 3: ``alpha_dist`` along the normal, back to ``xb`` where that undoes the flip."""
    _, gb = _margin_and_grad(model, xb)
    n = -s0[:, None] * gb / gb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    xc = xb + float(alpha_dist) * n
    crossed = _signs(model, xc) != s0
    fallback = found & ~crossed
    xc = torch.where(fallback[:, None], xb, xc)
    return xc, _signs(model, xc) != s0, fallback


def cfe_search(
    model: nn.Module,
    X: np.ndarray,
    alpha_dist: float = 0.05,
    max_iter: int = 100,
    overshoot: float = 0.02,
    max_step: float = 0.5,
    bisect_iter: int = 40,
    n_dirs: int = 64,
    max_radius: float = 5.0,
) -> tuple[np.ndarray, dict]:
    """Minimal-perturbation counterfactuals that cross ``model``'s decision boundary.

    1. DeepFool-style steps ``x <- x - (1+overshoot) m(x) grad m / ||grad m||^2`` (step
       length capped at ``max_step``) until ``sign(m)`` differs from ``sign(m(x0))``.
    2. Bisection on the last segment to the boundary; the boundary point ``x_b`` is the
       end of the final bracket on the flipped side, so ``|m(x_b)|`` is tiny and it is
       already (just) flipped.
    3. ``x_cfe = x_b + alpha_dist * n`` with ``n`` the unit normal ``grad m(x_b)`` pointing
       away from the original class. If the curvature undoes the flip, the point falls
       back to ``x_b`` (reported in ``info["fallback"]``).

    Points for which step 1 does not cross within ``max_iter`` steps are handled by a
    ray search (``n_dirs`` random directions, radii up to ``max_radius``) that brackets
    a crossing for step 2 (reported in ``info["ray_search"]``).

    Returns ``(X_cfe, info)`` with info keys ``boundary`` (N,2), ``found`` (search
    crossed the boundary), ``flipped`` (teacher label of X_cfe differs from X),
    ``fallback``, ``dist`` (||X_cfe - X||), ``orig_sign``.
    """
    model.eval()
    x0 = torch.as_tensor(np.asarray(X), dtype=torch.float32).reshape(-1, 2).clone()
    s0 = _signs(model, x0)
    lo, hi, found = _project_steps(model, x0, s0, max_iter, overshoot, max_step)
    ray = _ray_search(model, x0, s0, lo, hi, found, n_dirs, max_radius)
    xb = _bisect(model, lo, hi, s0, bisect_iter)
    xc, flipped, fallback = _step_past(model, xb, s0, found, alpha_dist)
    info = dict(
        boundary=xb.numpy().astype(np.float64),
        found=found.numpy(),
        flipped=flipped.numpy(),
        fallback=fallback.numpy(),
        ray_search=ray.numpy(),
        dist=(xc - x0).norm(dim=1).numpy().astype(np.float64),
        orig_sign=s0.numpy(),
    )
    return xc.numpy().astype(np.float64), info


# --------------------------------------------------------------------------- experiment
def make_moons(n: int, noise: float, seed: int):
    """Two interleaving half circles with Gaussian noise (the classic two-moons layout)."""
    rng = np.random.default_rng(seed)
    n0 = n // 2
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n - n0)
    X = np.concatenate([np.c_[np.cos(t0), np.sin(t0)], np.c_[1 - np.cos(t1), 0.5 - np.sin(t1)]])
    y = np.r_[np.zeros(n0, np.int64), np.ones(n - n0, np.int64)]
    X = X + rng.normal(scale=noise, size=X.shape)
    perm = rng.permutation(n)
    return X[perm].astype(np.float64), y[perm]



def _fmt(mean: float, std: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "nan"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass
class _Data:
    """The three moons samples of one run and the box the boundaries are compared in."""

    X_tr: np.ndarray
    y_tr: np.ndarray
    pool: np.ndarray  # unlabeled transfer pool the students' inputs are drawn from
    X_te: np.ndarray
    y_te: np.ndarray
    bbox: tuple  # of the teacher's training data

    @classmethod
    def make(cls, n_train: int, noise: float, n_test: int, seed: int) -> "_Data":
        X_tr, y_tr = make_moons(n_train, noise, seed)
        pool, _ = make_moons(n_train, noise, seed + 1)
        X_te, y_te = make_moons(n_test, noise, seed + 2)
        bbox = (X_tr[:, 0].min(), X_tr[:, 0].max(), X_tr[:, 1].min(), X_tr[:, 1].max())
        return cls(X_tr, y_tr, pool, X_te, y_te, bbox)


class _Env:
    """Data + evaluation context shared by all students of one teacher."""

    def __init__(self, teacher, bbox, resolution, X_test, y_test, support, support_radius=0.25):
        from scipy.spatial import cKDTree

        self.teacher = teacher
        self.support_tree = cKDTree(support)
        self.support_radius = support_radius
        self.bbox = bbox
        self.resolution = resolution
        self.X_test, self.y_test = X_test, y_test
        self.t_boundary = boundary_points(margin_fn(teacher), bbox, resolution)
        self.t_boundary_sup = self._on_support(self.t_boundary)
        self.t_pred_test = predict_proba(teacher, X_test).argmax(1)
        XX, YY = grid(bbox, 100)
        self.G = np.stack([XX.ravel(), YY.ravel()], 1)
        self.t_pred_grid = predict_proba(teacher, self.G).argmax(1)
        self.diag = float(np.hypot(bbox[1] - bbox[0], bbox[3] - bbox[2]))

    @property
    def teacher_acc(self) -> float:
        return float(np.mean(self.t_pred_test == self.y_test))

    def _on_support(self, P):
        if len(P) == 0:
            return P
        d, _ = self.support_tree.query(P, k=1)
        return P[d <= self.support_radius]

    def evaluate(self, student) -> dict:
        sb = boundary_points(margin_fn(student), self.bbox, self.resolution)
        h = hausdorff(self.t_boundary, sb)
        no_boundary = not np.isfinite(h)
        if no_boundary:  # student predicts one class on the whole box: worst case
            h = self.diag
        hs = hausdorff(self.t_boundary_sup, self._on_support(sb))
        if not np.isfinite(hs):
            hs = self.diag
        ps = predict_proba(student, self.X_test).argmax(1)
        pg = predict_proba(student, self.G).argmax(1)
        return dict(
            hausdorff=h,
            hausdorff_support=hs,
            no_boundary=no_boundary,
            agree_test=float(np.mean(ps == self.t_pred_test)),
            agree_grid=float(np.mean(pg == self.t_pred_grid)),
            acc_test=float(np.mean(ps == self.y_test)),
        )


def _flip_labels(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """A copy of ``y`` with a seeded ``rate`` fraction flipped: a flawed teacher's labels."""
    y = y.copy()
    if rate > 0:
        r = np.random.default_rng([seed, int(round(rate * 1e6))])
        flip = r.random(len(y)) < rate
        y[flip] = 1 - y[flip]
    return y


class _Ticker:
    """Optional tqdm bar: ``tick(msg)`` advances it, a no-op without tqdm."""

    def __init__(self, total: int, enabled: bool):
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            tqdm = None
        self.bar = tqdm(total=total, desc="moons", disable=not enabled, mininterval=1.0) if tqdm else None

    def __call__(self, msg=None):
        if self.bar is not None:
            if msg:
                self.bar.set_postfix_str(msg, refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@dataclass
class _Run:
    """What every sweep shares: data, teachers by flip rate, student settings, progress."""

    data: _Data
    seeds: int
    data_seed: int
    student_kw: dict
    teacher_kw: dict
    resolution: int
    support_radius: float
    tick: _Ticker
    teachers: dict = field(default_factory=dict)

    def teacher(self, rate: float) -> MLP:
        """The teacher trained on labels with ``rate`` flipped, trained once per rate."""
        if rate not in self.teachers:
            y = _flip_labels(self.data.y_tr, rate, self.data_seed)
            self.teachers[rate] = train_mlp(self.data.X_tr, y, seed=self.data_seed, **self.teacher_kw)
        return self.teachers[rate]

    def env(self, teacher: MLP) -> _Env:
        d = self.data
        return _Env(teacher, d.bbox, self.resolution, d.X_te, d.y_te, support=d.X_tr,
                    support_radius=self.support_radius)

    def draw(self, k: int, s: int) -> np.ndarray:
        """The ``k`` pool points of seed ``s``: the same for every sweep and method at that k."""
        rng = np.random.default_rng([self.data_seed, k, s])
        return self.data.pool[rng.choice(len(self.data.pool), size=k, replace=False)]


def _cod_set(teacher: MLP, X_kd: np.ndarray, alpha: float):
    """CoD's inputs: the first half of the KD originals plus one CFE each."""
    X_half = X_kd[: len(X_kd) // 2]
    X_cf, info = cfe_search(teacher, X_half, alpha_dist=alpha)
    return np.vstack([X_half, X_cf]), X_cf, info


def _cfe_stats(info: dict) -> dict:
    return dict(cfe_flip_rate=float(info["flipped"].mean()), cfe_mean_dist=float(info["dist"].mean()))


def _fit_student(env: _Env, X: np.ndarray, seed: int, student_kw: dict):
    """Distil the env's teacher into a fresh student on ``X`` (soft labels) and score it."""
    st = train_mlp(X, predict_proba(env.teacher, X), seed=seed, **student_kw)
    return st, env.evaluate(st)


def _students(env, X_kd, X_cod, s_seed, student_kw):
    return {method: _fit_student(env, Xtr, s_seed, student_kw)
            for method, Xtr in (("kd", X_kd), ("cod", X_cod))}


def _ms(v: pd.Series) -> str:
    return _fmt(v.mean(), v.std())


def _summary_md(df: pd.DataFrame, by: str, title: str, params: dict,
                metrics=("hausdorff", "agree_test", "agree_grid")) -> str:
    lines = [f"# {title}", "", "Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()),
             "", "Mean ± std over seeds."]
    head = f"| {by} |"
    sep = "|---|"
    for m in metrics:
        head += f" {m} KD | {m} CoD |"
        sep += "---|---|"
    lines += ["", head, sep]
    for key, sub in df.groupby(by):
        row = f"| {key} |"
        for m in metrics:
            for meth in ("kd", "cod"):
                v = sub[sub.method == meth][m]
                row += f" {_fmt(v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0)} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _plot_boundaries(path, env, X_kd, X_half, X_cf, students, k, bbox):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    XX, YY = grid(bbox, 200)
    G = np.stack([XX.ravel(), YY.ravel()], 1)
    t_m = margin_fn(env.teacher)(G).reshape(XX.shape)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [("teacher", env.teacher, None), ("KD student", students["kd"][0], "kd"),
              ("CoD student", students["cod"][0], "cod")]
    for ax, (name, model, key) in zip(axes, panels):
        mm = margin_fn(model)(G).reshape(XX.shape)
        ax.contourf(XX, YY, mm > 0, levels=[-0.5, 0.5, 1.5], colors=["#cfe0f5", "#f7d3cf"],
                    alpha=0.8)
        ax.contour(XX, YY, mm, levels=[0], colors="k", linewidths=1.6)
        if key is not None:
            ax.contour(XX, YY, t_m, levels=[0], colors="k", linewidths=1.0, linestyles="--")
        if key is None:
            ax.scatter(env.X_test[:600, 0], env.X_test[:600, 1], c=env.y_test[:600], s=4,
                       cmap="coolwarm", alpha=0.6)
            ax.set_title("teacher (black); test points")
        elif key == "kd":
            P = predict_proba(env.teacher, X_kd).argmax(1)
            ax.scatter(X_kd[:, 0], X_kd[:, 1], c=P, cmap="coolwarm", vmin=0, vmax=1, s=40,
                       edgecolors="k", label=f"{len(X_kd)} originals")
            ev = students["kd"][1]
            ax.set_title(f"KD student, k={k}: H={ev['hausdorff']:.3f}, "
                         f"agree={ev['agree_test']:.3f}")
        else:
            P = predict_proba(env.teacher, X_half).argmax(1)
            Pc = predict_proba(env.teacher, X_cf).argmax(1)
            for a, b in zip(X_half, X_cf):
                ax.plot([a[0], b[0]], [a[1], b[1]], color="gray", lw=0.8)
            ax.scatter(X_half[:, 0], X_half[:, 1], c=P, cmap="coolwarm", vmin=0, vmax=1, s=40,
                       edgecolors="k", label=f"{len(X_half)} originals")
            ax.scatter(X_cf[:, 0], X_cf[:, 1], c=Pc, cmap="coolwarm", vmin=0, vmax=1, s=60,
                       marker="X", edgecolors="k", label=f"{len(X_cf)} CFEs")
            ev = students["cod"][1]
            ax.set_title(f"CoD student, k={k}: H={ev['hausdorff']:.3f}, "
                         f"agree={ev['agree_test']:.3f}")
        if key is not None:
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlim(bbox[0], bbox[1])
        ax.set_ylim(bbox[2], bbox[3])
        ax.set_aspect("equal")
    fig.suptitle("solid: model boundary, dashed: teacher boundary", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_vs(path, df, by, xlabel, logx2=False, baseline=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for ax, m, lab in ((axes[0], "hausdorff", "Hausdorff(teacher, student), box"),
                       (axes[1], "hausdorff_support", "Hausdorff on data support"),
                       (axes[2], "agree_test", "agreement with teacher (test)")):
        for meth, color, name in (("kd", "tab:blue", "KD (k originals)"),
                                  ("cod", "tab:red", "CoD (k/2 + CFEs)")):
            sub = df[df.method == meth].groupby(by)[m].agg(["mean", "std"]).reset_index()
            if len(sub) == 0:
                continue
            ax.errorbar(sub[by], sub["mean"], yerr=sub["std"], marker="o", capsize=3,
                        color=color, label=name)
        if baseline is not None and m in baseline:
            mu, sd = baseline[m]
            ax.axhline(mu, color="tab:blue", ls="--", label="KD (k originals)")
            ax.axhspan(mu - sd, mu + sd, color="tab:blue", alpha=0.1)
        if logx2:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _check_ks(ks: Sequence[int], sweep_k: int, plot_k: int | None) -> tuple[list[int], int]:
    """The ks as ints and the k to plot (``sweep_k`` by default, ``ks[0]`` if it did not run)."""
    ks = [int(k) for k in ks]
    if any(k < 2 or k % 2 for k in list(ks) + [sweep_k]):
        raise ValueError("every k must be an even integer >= 2 (CoD uses k/2 + k/2)")
    plot_k = sweep_k if plot_k is None else int(plot_k)
    return ks, plot_k if plot_k in ks else ks[0]


def _k_sweep(run: _Run, env: _Env, ks: list[int], alpha_dist: float, plot_k: int):
    """KD vs CoD over the budget k; also the seed-0 students at ``plot_k`` for the figure."""
    rows, plot_data = [], None
    for k in ks:
        for s in range(run.seeds):
            X_kd = run.draw(k, s)
            X_cod, X_cf, info = _cod_set(env.teacher, X_kd, alpha_dist)
            res = _students(env, X_kd, X_cod, 1000 + s, run.student_kw)
            for meth, (_, ev) in res.items():
                rows.append(dict(k=k, seed=s, method=meth, alpha_dist=alpha_dist, **ev, **_cfe_stats(info)))
            if k == plot_k and s == 0:
                plot_data = (X_kd, X_kd[: k // 2], X_cf, res)
            run.tick(f"k={k}")
    return pd.DataFrame(rows), plot_data


def _alpha_sweep(run: _Run, env: _Env, sweep_k: int, alphas: Sequence[float]) -> pd.DataFrame:
    """CoD at fixed k over the CFE distance past the boundary, beside its KD baseline."""
    rows = []
    for s in range(run.seeds):
        X_kd = run.draw(sweep_k, s)
        _, ev_kd = _fit_student(env, X_kd, 1000 + s, run.student_kw)
        rows.append(dict(alpha_dist=np.nan, seed=s, method="kd", k=sweep_k, **ev_kd,
                         cfe_flip_rate=np.nan, cfe_mean_dist=np.nan))
        for a in alphas:
            X_cod, _, info = _cod_set(env.teacher, X_kd, a)
            _, ev = _fit_student(env, X_cod, 1000 + s, run.student_kw)
            rows.append(dict(alpha_dist=a, seed=s, method="cod", k=sweep_k, **ev, **_cfe_stats(info),
                             cfe_fallback=float(info["fallback"].mean())))
            run.tick(f"alpha={a}")
    return pd.DataFrame(rows)


def _flawed_sweep(run: _Run, env: _Env, flip_rates: Sequence[float], sweep_k: int,
                  alpha_dist: float) -> pd.DataFrame:
    """KD vs CoD from teachers trained on label-flipped data (``env`` is the clean one)."""
    rows = []
    for rate in flip_rates:
        env_r = env if rate == 0.0 else run.env(run.teacher(rate))
        t_acc = env_r.teacher_acc
        run.tick(f"teacher flip={rate}")
        for s in range(run.seeds):
            X_kd = run.draw(sweep_k, s)
            X_cod, _, _ = _cod_set(env_r.teacher, X_kd, alpha_dist)
            res = _students(env_r, X_kd, X_cod, 1000 + s, run.student_kw)
            for meth, (_, ev) in res.items():
                rows.append(dict(flip_rate=rate, seed=s, method=meth, k=sweep_k,
                                 teacher_acc=t_acc, **ev))
            run.tick(f"flip={rate}")
    return pd.DataFrame(rows)


def _write_k_report(out: Path, df_k: pd.DataFrame, params: dict, support_radius: float,
                    diag: float) -> None:
    """``moons.csv`` and ``moons.md`` (the wall time is appended at the very end)."""
    df_k.to_csv(out / "moons.csv", index=False)
    md = _summary_md(df_k, "k", "Theorem 2 toy: two moons, KD vs CoD (k sweep)", params,
                     metrics=("hausdorff", "hausdorff_support", "agree_test", "agree_grid"))
    md += ("\nhausdorff: boundaries inside the data bounding box; hausdorff_support: only "
           f"boundary points within {support_radius} of a teacher-training point (on the data "
           "support). agree_test: argmax agreement on 5000 fresh moons points; agree_grid: "
           "on a uniform 100x100 grid over the box.\n")
    piv = df_k.pivot_table(index=["k", "seed"], columns="method", values="hausdorff")
    wins = (piv["cod"] < piv["kd"]).groupby(level="k").mean()
    md += "\nFraction of seeds where CoD's Hausdorff < KD's: " + ", ".join(
        f"k={k}: {v:.2f}" for k, v in wins.items())
    nb = df_k.groupby(["k", "method"])["no_boundary"].sum()
    if nb.sum() > 0:
        md += ("\n\nStudents with no boundary in the box (Hausdorff set to the box diagonal "
               f"{diag:.3f}): " + ", ".join(f"{i}: {int(v)}" for i, v in nb.items() if v))
    md += (f"\n\nCFE flip rate (teacher label changes): {df_k.cfe_flip_rate.mean():.3f}; "
           f"mean ||x_cfe - x|| = {df_k.cfe_mean_dist.mean():.3f}\n")
    (out / "moons.md").write_text(md)


def _write_alpha_report(out: Path, df_a: pd.DataFrame, sweep_k: int, seeds: int) -> None:
    """``moons_alpha.{csv,md,png}``."""
    df_a.to_csv(out / "moons_alpha.csv", index=False)
    lines = ["# Two moons: CFE distance sweep (CoD at fixed k)", "",
             f"k={sweep_k}, seeds={seeds}; KD baseline uses the same k originals. "
             "Mean ± std over seeds.", "",
             "| alpha_dist | Hausdorff | Hausdorff (support) | agree_test | agree_grid |"
             " mean ||x_cfe-x|| | CFE flip rate |", "|---|---|---|---|---|---|---|"]
    for a, sub in df_a.groupby(df_a.alpha_dist.fillna(-1.0)):
        name = "KD (no CFEs)" if a < 0 else f"{a:g}"
        lines.append(
            f"| {name} | {_ms(sub.hausdorff)} | {_ms(sub.hausdorff_support)} |"
            f" {_ms(sub.agree_test)} | {_ms(sub.agree_grid)} |"
            f" {'-' if a < 0 else f'{sub.cfe_mean_dist.mean():.3f}'} |"
            f" {'-' if a < 0 else f'{sub.cfe_flip_rate.mean():.3f}'} |")
    (out / "moons_alpha.md").write_text("\n".join(lines) + "\n")
    kd_a = df_a[df_a.method == "kd"]
    _plot_vs(out / "moons_alpha.png", df_a[df_a.method == "cod"], "alpha_dist",
             "CFE distance past the boundary (alpha_dist)",
             baseline={m: (kd_a[m].mean(), kd_a[m].std())
                       for m in ("hausdorff", "hausdorff_support", "agree_test")})


def _write_flawed_report(out: Path, df_f: pd.DataFrame, sweep_k: int, alpha_dist: float,
                         seeds: int) -> None:
    """``moons_flawed.{csv,md}``."""
    df_f.to_csv(out / "moons_flawed.csv", index=False)
    lines = ["# Two moons: flawed teachers (label-flip noise in teacher training)", "",
             f"k={sweep_k}, alpha_dist={alpha_dist}, seeds={seeds}. Teacher accuracy and "
             "student accuracy are vs the TRUE test labels; agreement is vs the (flawed) "
             "teacher. Mean ± std over seeds.", "",
             "| flip rate | teacher acc | agree KD | agree CoD | acc KD | acc CoD |"
             " Hausdorff KD | Hausdorff CoD |", "|---|---|---|---|---|---|---|---|"]
    for r, sub in df_f.groupby("flip_rate"):
        kd, cd = sub[sub.method == "kd"], sub[sub.method == "cod"]
        lines.append(
            f"| {r:g} | {sub.teacher_acc.iloc[0]:.3f} |"
            f" {_ms(kd.agree_test)} | {_ms(cd.agree_test)} |"
            f" {_ms(kd.acc_test)} | {_ms(cd.acc_test)} |"
            f" {_ms(kd.hausdorff)} | {_ms(cd.hausdorff)} |")
    (out / "moons_flawed.md").write_text("\n".join(lines) + "\n")


def run_moons(
    out_dir: str | os.PathLike,
    ks: Sequence[int] = DEFAULT_KS,
    seeds: int = 5,
    alpha_dist: float = 0.05,
    alpha_sweep: Sequence[float] = DEFAULT_ALPHAS,
    flip_rates: Sequence[float] = (0.0, 0.1, 0.3),
    sweep_k: int = 16,
    steps: int = 400,
    teacher_steps: int = 1000,
    teacher_weight_decay: float = 1e-3,
    support_radius: float = 0.25,
    teacher_hidden: Sequence[int] = (64, 64),
    student_hidden: Sequence[int] = (32, 32),
    lr: float = 1e-2,
    n_train: int = 2000,
    noise: float = 0.2,
    n_test: int = 5000,
    resolution: int = 200,
    data_seed: int = 0,
    plot_k: int | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Run the Theorem-2 experiments and write all moons_* artefacts into ``out_dir``.

    Returns ``{"moons": df, "alpha": df, "flawed": df}`` (one row per seed/method/...).
    ``plot_k`` (default ``sweep_k``) selects the k shown in ``moons_boundaries.png``.
    """
    torch.set_num_threads(1)
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ks, plot_k = _check_ks(ks, sweep_k, plot_k)
    run = _Run(data=_Data.make(n_train, noise, n_test, data_seed), seeds=seeds, data_seed=data_seed,
               student_kw=dict(hidden=tuple(student_hidden), steps=steps, lr=lr),
               teacher_kw=dict(hidden=tuple(teacher_hidden), steps=teacher_steps, lr=lr,
                               weight_decay=teacher_weight_decay),
               resolution=resolution, support_radius=support_radius,
               tick=_Ticker(len(ks) * seeds + len(alpha_sweep) * seeds + len(flip_rates) * (1 + seeds),
                            progress))
    env = run.env(run.teacher(0.0))

    df_k, plot_data = _k_sweep(run, env, ks, alpha_dist, plot_k)
    df_a = _alpha_sweep(run, env, sweep_k, alpha_sweep)
    df_f = _flawed_sweep(run, env, flip_rates, sweep_k, alpha_dist)
    run.tick.close()

    params = dict(seeds=seeds, alpha_dist=alpha_dist, steps=steps, teacher=tuple(teacher_hidden),
                  teacher_weight_decay=teacher_weight_decay,
                  student=tuple(student_hidden), n_train=n_train, noise=noise,
                  resolution=resolution, teacher_test_acc=round(env.teacher_acc, 4))
    _write_k_report(out, df_k, params, support_radius, env.diag)
    _write_alpha_report(out, df_a, sweep_k, seeds)
    _write_flawed_report(out, df_f, sweep_k, alpha_dist, seeds)
    if plot_data is not None:
        _plot_boundaries(out / "moons_boundaries.png", env, *plot_data, plot_k, run.data.bbox)
    _plot_vs(out / "moons_hausdorff.png", df_k, "k", "k (budget)", logx2=True)
    with open(out / "moons.md", "a") as fh:
        fh.write(f"\nWall time: {time.time() - t0:.1f} s\n")
    return {"moons": df_k, "alpha": df_a, "flawed": df_f}
