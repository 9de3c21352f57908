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
        # cfe=search: the fast offline generator; lm_search and lm_reader (the default) have their own tests
        return make_cfg(tmp_path, ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]", "cfe=search",
                                   *overrides])

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


SENTIMENT_TEACHER = ["model.teacher_training.epochs=6", "model.teacher_training.train_cap=400",
                     "model.teacher_training.eval_every=20", "model.teacher_training.lr=3e-3",
                     "model.teacher.tiny.hidden_size=64"]


@pytest.fixture(scope="session")
def sentiment_teacher(tmp_path_factory):
    """The easy sentiment file and a tiny teacher trained on it once per session; tests copy the
    cached teacher into their own cache (same config, same key), so each starts with an empty CFE store."""
    from cod_pipeline.pipeline import run

    root = tmp_path_factory.mktemp("sentiment")
    path = write_sentiment_tsv(root / "easy.tsv")
    overrides = ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]", "cfe=search", "dataset=local",
                 f"dataset.source.path={path}", "dataset.label_names=[negative,positive]", "dataset.val_size=100",
                 "dataset.test_size=200", *SENTIMENT_TEACHER]
    cfg = make_cfg(root, [*overrides, "stage=teacher"])
    run(cfg)
    return overrides, Path(cfg.paths.cache_dir)


@pytest.fixture
def sentiment_cfg(tmp_path, sentiment_teacher):
    """Tiny models on the easy sentiment file, with the session's trained teacher."""
    import shutil

    overrides, cache = sentiment_teacher
    if not (tmp_path / "cache" / "teacher").exists():
        shutil.copytree(cache, tmp_path / "cache", ignore=shutil.ignore_patterns("*.sqlite*", "results"))

    def _make(*extra):
        return make_cfg(tmp_path, [*overrides, *extra])

    return _make
