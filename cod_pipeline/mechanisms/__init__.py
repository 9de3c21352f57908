"""Mechanism toys for the two theorems of CoD (CPU-only, minutes not hours).

* :mod:`.fisher` -- Theorem 1: logistic distillation, Fisher information, estimation error.
* :mod:`.moons`  -- Theorem 2: two-moons decision boundaries, Hausdorff distance.
* :mod:`.geometry` -- shared ``boundary_points`` / ``hausdorff``.

``run_moons`` and the torch helpers are imported lazily so that the numpy-only parts
do not pull in torch.
"""

from .fisher import fisher_information, fit_soft_logistic, minimal_cfe, run_fisher
from .geometry import boundary_points, hausdorff

__all__ = [
    "boundary_points",
    "hausdorff",
    "fisher_information",
    "fit_soft_logistic",
    "minimal_cfe",
    "run_fisher",
    "run_moons",
    "cfe_search",
]


def __getattr__(name):  # PEP 562 lazy import of the torch-based module
    if name in ("run_moons", "cfe_search"):
        from . import moons

        return getattr(moons, name)
    raise AttributeError(name)
