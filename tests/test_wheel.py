"""A wheel install runs like the clone: the package carries conf/, and ``cod-run`` is on PATH."""
from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_runs_cod_run(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(wheels)], check=True, timeout=600)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    own = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    # the dependencies (torch, transformers …) from this interpreter, not the project itself: a plain
    # path line, so this environment's editable-install hook is not run there
    (Path(own) / "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels.glob("*.whl"))],
                   check=True, timeout=600)
    where = subprocess.run([str(py), "-c", "import cod_pipeline; print(cod_pipeline.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where  # the installed copy, not the clone
    proc = subprocess.run([str(env_dir / "bin" / "cod-run"), "model=tiny", "k=8", "logger=none", "compare=[]",
                           "cfe=search", "trainer.enable_progress_bar=false"], cwd=tmp_path,
                          env={**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
                               "COD_ROOT": str(tmp_path / "root")},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "root" / "logs" / "cod" / "runs").glob("*/result.json"))
