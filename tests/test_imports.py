"""No import cycles: every module of cod_pipeline imports on its own, in a fresh interpreter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "cod_pipeline"
MODULES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                 for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module):
    p = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]


def test_modules_were_found():
    assert "cod_pipeline.counterfactuals.generators" in MODULES and len(MODULES) > 20
    assert all(Path(ROOT, *m.split(".")).with_suffix(".py").exists() or Path(ROOT, *m.split("."), "__init__.py").exists()
               for m in MODULES)
