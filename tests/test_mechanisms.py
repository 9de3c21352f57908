"""Known-answer tests for the mechanism toys (geometry, Fisher, CFE search).

These check the computations, never the scientific claims of the paper.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cod_pipeline.mechanisms.fisher import (
    fisher_information,
    fit_soft_logistic,
    minimal_cfe,
    run_fisher,
    sigmoid,
)
from cod_pipeline.mechanisms.geometry import boundary_points, hausdorff
from cod_pipeline.mechanisms.moons import cfe_search, margin, margin_fn, train_mlp

torch.set_num_threads(1)


# --------------------------------------------------------------------------- geometry
def _circle(r, n=4000, c=(0.0, 0.0)):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)


def test_hausdorff_concentric_circles():
    h = hausdorff(_circle(1.0), _circle(1.5))
    assert h == pytest.approx(0.5, abs=1e-3)
    assert hausdorff(_circle(1.5), _circle(1.0)) == pytest.approx(h)  # symmetric


def test_hausdorff_segment_and_translate():
    t = np.linspace(0, 1, 1001)
    seg = np.stack([t, np.zeros_like(t)], 1)
    # perpendicular translate by 0.3 -> exactly 0.3
    assert hausdorff(seg, seg + [0.0, 0.3]) == pytest.approx(0.3, abs=1e-12)
    # translate along the segment by 0.2: the end points are 0.2 away from the other set
    assert hausdorff(seg, seg + [0.2, 0.0]) == pytest.approx(0.2, abs=1e-3)
    assert hausdorff(seg, seg) == 0.0


def test_hausdorff_empty_sets():
    a = np.zeros((3, 2))
    assert hausdorff(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0
    assert hausdorff(a, np.zeros((0, 2))) == float("inf")


def test_boundary_points_linear_lands_on_line():
    w, b = np.array([1.0, -2.0]), 0.3
    bbox = (-2.0, 2.0, -1.5, 1.5)
    res = 101
    P = boundary_points(lambda X: X @ w + b, bbox, res)
    assert len(P) > 50
    dist = np.abs(P @ w + b) / np.linalg.norm(w)
    h = (bbox[1] - bbox[0]) / (res - 1)
    assert dist.max() < h
    assert dist.max() < 1e-9  # linear interpolation is exact for a linear field
    # inside the box
    assert P[:, 0].min() >= bbox[0] - 1e-12 and P[:, 0].max() <= bbox[1] + 1e-12
    assert P[:, 1].min() >= bbox[2] - 1e-12 and P[:, 1].max() <= bbox[3] + 1e-12


def test_boundary_points_circle_and_empty():
    P = boundary_points(lambda X: (X**2).sum(1) - 1.0, (-2, 2, -2, 2), 201)
    r = np.linalg.norm(P, axis=1)
    assert np.abs(r - 1.0).max() < 0.02 / 2  # O(h^2) error, h = 0.02
    # a circle sampled densely: Hausdorff to the analytic circle is < grid spacing
    assert hausdorff(P, _circle(1.0)) < 0.02
    assert len(boundary_points(lambda X: np.ones(len(X)), (0, 1, 0, 1), 20)) == 0


# --------------------------------------------------------------------------- fisher
def test_fisher_information_known_design():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    I = fisher_information(X, np.zeros(3), 0.0)  # p = 0.5 everywhere
    np.testing.assert_allclose(I, 0.25 * X.T @ X, rtol=1e-12)
    # a hand-computed single point: x = (1, 2), w = (1, 0), b = 0 -> p = sigmoid(1)
    p = 1 / (1 + np.exp(-1.0))
    I1 = fisher_information(np.array([[1.0, 2.0]]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(I1, p * (1 - p) * np.array([[1.0, 2.0], [2.0, 4.0]]))
    Ib = fisher_information(np.array([[1.0, 2.0]]), np.array([1.0, 0.0]), include_bias=True)
    np.testing.assert_allclose(Ib[:, 2], p * (1 - p) * np.array([1.0, 2.0, 1.0]))


@pytest.mark.parametrize("b", [0.0, -0.7])
def test_minimal_cfe_signed_distance(b):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(5) * 2
    X = rng.standard_normal((200, 5))
    margin_ = 0.1
    Xc = minimal_cfe(X, w, b, margin_)
    z, zc = X @ w + b, Xc @ w + b
    assert np.all(np.sign(zc) == -np.sign(z))  # flips the teacher
    np.testing.assert_allclose(zc / np.linalg.norm(w), -margin_ * np.sign(z), atol=1e-12)
    # minimality: the displacement is parallel to w (orthogonal projection + margin)
    D = Xc - X
    resid = D - np.outer(D @ w / (w @ w), w)
    assert np.abs(resid).max() < 1e-12
    np.testing.assert_allclose(
        np.linalg.norm(D, axis=1), np.abs(z) / np.linalg.norm(w) + margin_, rtol=1e-12
    )


def test_fit_soft_logistic_recovers_teacher():
    rng = np.random.default_rng(2)
    d = 4
    w_t = rng.standard_normal(d)
    w_t *= 3.0 / np.linalg.norm(w_t)
    X = rng.standard_normal((4000, d))
    # exact soft labels: the population minimiser is w_t itself
    w, b = fit_soft_logistic(X, sigmoid(X @ w_t), ridge=1e-6)
    assert b == 0.0
    assert np.sum((w - w_t) ** 2) < 1e-6
    # hard Bernoulli labels: consistent, error O(d / n)
    y = (rng.random(4000) < sigmoid(X @ w_t - 0.5)).astype(float)
    w, b = fit_soft_logistic(X, y, ridge=1e-3, fit_intercept=True)
    assert np.sum((w - w_t) ** 2) < 0.15
    assert b == pytest.approx(-0.5, abs=0.2)


def test_run_fisher_smoke(tmp_path):
    df = run_fisher(tmp_path, ks=(8, 16), dims=(2,), seeds=3, progress=False)
    assert len(df) == 2 * 1 * 3 * 2
    assert set(df.method) == {"standard", "cod"}
    for f in ("fisher.csv", "fisher.md", "fisher.png"):
        assert (tmp_path / f).exists()
    assert np.all(df.err >= 0) and np.all(df.fisher_trace > 0)


# --------------------------------------------------------------------------- moons CFEs
class _Linear(nn.Module):
    """Analytic 2-logit model with margin m(x) = w.x + b."""

    def __init__(self, w, b):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[0.0, 0.0], list(w)], dtype=torch.float32))
            self.lin.bias.copy_(torch.tensor([0.0, b], dtype=torch.float32))

    def forward(self, x):
        return self.lin(x)


def test_cfe_search_linear_model():
    w, b = np.array([1.5, -0.5]), 0.2
    model = _Linear(w, b)
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(100, 2))
    s = np.sign(X @ w + b)
    nw = np.linalg.norm(w)
    # alpha = 0: on the boundary (and already on the flipped side, by construction)
    Xc, info = cfe_search(model, X, alpha_dist=0.0)
    assert info["found"].all()
    assert np.abs((Xc @ w + b) / nw).max() < 1e-4
    # the minimal perturbation for a linear model is the orthogonal projection
    np.testing.assert_allclose(info["dist"], np.abs(X @ w + b) / nw, atol=1e-4)
    # alpha > 0: flipped, and alpha past the boundary along the normal
    Xc, info = cfe_search(model, X, alpha_dist=0.1)
    assert info["flipped"].all() and not info["fallback"].any()
    np.testing.assert_allclose((Xc @ w + b) / nw, -0.1 * s, atol=1e-4)


def test_cfe_search_trained_teacher():
    from cod_pipeline.mechanisms.moons import make_moons

    X, y = make_moons(400, noise=0.1, seed=0)
    teacher = train_mlp(X, y, hidden=(16, 16), steps=200, seed=0)
    Xq = X[:60]
    Xb, info = cfe_search(teacher, Xq, alpha_dist=0.0)
    assert info["found"].all()
    with torch.no_grad():
        m = margin(teacher, torch.as_tensor(Xb, dtype=torch.float32)).numpy()
    # within eps of the boundary: |m| / ||grad m|| is a first-order distance
    xb = torch.as_tensor(Xb, dtype=torch.float32).requires_grad_(True)
    (g,) = torch.autograd.grad(margin(teacher, xb).sum(), xb)
    assert np.max(np.abs(m) / g.norm(dim=1).numpy()) < 1e-4
    Xc, info = cfe_search(teacher, Xq, alpha_dist=0.1)
    assert info["flipped"].all()
    orig = margin_fn(teacher)(Xq) >= 0
    new = margin_fn(teacher)(Xc) >= 0
    assert np.all(orig != new)
