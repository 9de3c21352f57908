"""Shared 2-D geometry helpers: decision-boundary extraction and Hausdorff distance.

Pure numpy/scipy; no torch dependency so they can be tested on analytic functions.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.spatial.distance import directed_hausdorff

__all__ = ["boundary_points", "hausdorff", "directed_hausdorff_distance", "grid"]

BBox = Sequence[float]  # (xmin, xmax, ymin, ymax)


def grid(bbox: BBox, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Regular ``resolution x resolution`` grid over ``bbox=(xmin, xmax, ymin, ymax)``.

    Returns ``(XX, YY)`` with shape ``(resolution, resolution)`` (``indexing="xy"``:
    rows vary along y, columns along x).
    """
    xmin, xmax, ymin, ymax = (float(v) for v in bbox)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"degenerate bbox {bbox}")
    if resolution < 2:
        raise ValueError("resolution must be >= 2")
    xs = np.linspace(xmin, xmax, resolution)
    ys = np.linspace(ymin, ymax, resolution)
    return np.meshgrid(xs, ys, indexing="xy")


def boundary_points(
    fn: Callable[[np.ndarray], np.ndarray],
    bbox: BBox,
    resolution: int = 200,
) -> np.ndarray:
    """Points on the zero level set of a scalar field ``fn`` inside ``bbox``.

    ``fn`` maps an ``(N, 2)`` array to ``N`` real values (e.g. a logit margin). It is
    evaluated on a regular grid; on every horizontal and vertical grid edge whose
    endpoints have strictly opposite signs (or where one endpoint is exactly zero) the
    zero crossing is located by linear interpolation (the edge step of marching
    squares). Grid nodes that are exactly zero are included as well.

    Returns an ``(M, 2)`` array (``M`` may be 0 if there is no boundary in the box).
    For a linear ``fn`` the returned points lie exactly on the line (up to float error);
    for a smooth ``fn`` the error is ``O(h^2)`` with ``h`` the grid spacing.
    """
    XX, YY = grid(bbox, resolution)
    pts = np.stack([XX.ravel(), YY.ravel()], axis=1)
    F = np.asarray(fn(pts), dtype=np.float64).reshape(XX.shape)

    out = []
    # exact zeros at nodes
    zmask = F == 0.0
    if zmask.any():
        out.append(np.stack([XX[zmask], YY[zmask]], axis=1))

    def _edges(f0, f1, x0, y0, x1, y1):
        cross = (f0 * f1) < 0.0
        if not cross.any():
            return None
        a, b = f0[cross], f1[cross]
        t = a / (a - b)  # in (0, 1)
        x = x0[cross] + t * (x1[cross] - x0[cross])
        y = y0[cross] + t * (y1[cross] - y0[cross])
        return np.stack([x, y], axis=1)

    # horizontal edges (along x)
    h = _edges(F[:, :-1], F[:, 1:], XX[:, :-1], YY[:, :-1], XX[:, 1:], YY[:, 1:])
    # vertical edges (along y)
    v = _edges(F[:-1, :], F[1:, :], XX[:-1, :], YY[:-1, :], XX[1:, :], YY[1:, :])
    for arr in (h, v):
        if arr is not None:
            out.append(arr)
    if not out:
        return np.zeros((0, 2), dtype=np.float64)
    return np.concatenate(out, axis=0)


def directed_hausdorff_distance(A: np.ndarray, B: np.ndarray) -> float:
    """``sup_{a in A} inf_{b in B} ||a - b||`` (inf if exactly one set is empty)."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if len(A) == 0 and len(B) == 0:
        return 0.0
    if len(A) == 0:
        return 0.0
    if len(B) == 0:
        return float("inf")
    return float(directed_hausdorff(A, B)[0])


def hausdorff(A: np.ndarray, B: np.ndarray) -> float:
    """Symmetric Hausdorff distance between two point sets of shape ``(n, D)``.

    ``max(d(A, B), d(B, A))``. Returns ``0.0`` if both are empty and ``inf`` if only
    one is empty (a boundary that exists versus one that does not).
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if len(A) == 0 and len(B) == 0:
        return 0.0
    if len(A) == 0 or len(B) == 0:
        return float("inf")
    return max(directed_hausdorff_distance(A, B), directed_hausdorff_distance(B, A))
