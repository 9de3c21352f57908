"""Shared fixtures: compose the real configs with Hydra's compose API, on tiny models."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")


def make_cfg(tmp_path: Path, overrides: list[str] = ()):
    """The real config tree, with paths pointed into tmp_path (no Hydra run dir in compose)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.paths.cache_dir = str(tmp_path / "cache")
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.output_dir = str(tmp_path / "out")
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path):
    def _make(*overrides):
        return make_cfg(tmp_path, ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", *overrides])

    return _make
