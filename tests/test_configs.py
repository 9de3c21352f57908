"""Every option of every config group, and every experiment file, composes."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF, make_cfg

GROUPS = [p for p in sorted(Path(CONF).iterdir()) if p.is_dir() and p.name not in ("hydra",)]
OPTIONS = [(g.name, f.stem) for g in GROUPS for f in sorted(g.glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(tmp_path, group, option):
    cfg = make_cfg(tmp_path, [f"{group}={option}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["k"] > 0 and resolved["dataset"]["name"]


def test_default_is_the_embedded_job(tmp_path):
    cfg = make_cfg(tmp_path)
    assert (cfg.dataset.name, cfg.model.name, cfg.method.name, cfg.augment.name, cfg.k, cfg.seed) == (
        "rotten_tomatoes", "minilm", "kd", "none", 16, 0)
    assert cfg.method.alpha == 20.0 and cfg.method.temperature == 2.0


def test_paper_pairs_follow_official_defaults(tmp_path):
    for model in ("deberta_v3", "qwen2_5"):
        st = make_cfg(tmp_path, [f"model={model}"]).model.student_training
        assert (st.lr, st.batch_size, st.epochs) == (6e-5, 8, 100)
    assert make_cfg(tmp_path, ["method=lwd"]).method.beta == 20.0
