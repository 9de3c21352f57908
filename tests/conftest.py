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


POSITIVE = ["good", "great", "wonderful", "excellent", "brilliant", "lovely", "superb", "fun"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "poor", "horrible", "weak"]
NOUNS = ["film", "movie", "plot", "cast", "script", "story", "ending", "score", "acting", "director"]


def write_sentiment_tsv(path: Path, n: int = 800) -> Path:
    """A small, easy sentiment file (templated sentences) that a tiny teacher learns in seconds,
    so CFE searches and LLM edits can really flip it."""
    import random

    rng = random.Random(0)
    lines = ["sentence\tlabel"]
    for i in range(n):
        y = i % 2
        adj = rng.choice(POSITIVE if y else NEGATIVE)
        lines.append(f"the {rng.choice(NOUNS)} was {adj} and the {rng.choice(NOUNS)} number {i} .\t{y}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def sentiment_cfg(tmp_path, tiny_cfg):
    """Tiny models on the easy sentiment file, the teacher trained long enough to be accurate."""
    path = write_sentiment_tsv(tmp_path / "easy.tsv")

    def _make(*overrides):
        return tiny_cfg("dataset=local", f"dataset.source.path={path}", "dataset.label_names=[negative,positive]",
                        "dataset.val_size=100", "dataset.test_size=200", "model.teacher_training.epochs=6",
                        "model.teacher_training.train_cap=400", "model.teacher_training.eval_every=20",
                        "model.teacher_training.lr=3e-3", "model.teacher.tiny.hidden_size=64", *overrides)

    return _make
