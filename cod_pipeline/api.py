"""The pipeline from Python, outside ``@hydra.main``: compose a config, run it, use its parts.

    import cod_pipeline as cod
    cfg = cod.compose(["dataset=tweets", "augment=cod", "k=16", "save_student=true"])
    result = cod.run(cfg)                                  # the result.json dict
    student = cod.load_student(result["student"]["export"])
    student.predict(["what a lovely flight"])
    cod.generate_cfes(["the staff were rude"], cfg)       # records like `make cfe-export`
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, open_dict

from cod_pipeline import ConfigError


def conf_dir() -> Path:
    """``$COD_CONF``, else the package's ``conf/`` (in a clone a link to the top-level ``conf/``;
    a wheel carries a copy), so an installed project runs like the clone."""
    path = Path(os.environ.get("COD_CONF") or Path(__file__).resolve().parent / "conf")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in {path}: set COD_CONF to the project's conf/ folder")
    return path


def compose(overrides=(), config_dir: str | os.PathLike | None = None) -> DictConfig:
    """The config ``python run.py OVERRIDES`` would run, with the run folder named by its coordinates
    (``logs/<task>/api/<dataset>/<model>/<method>+<augment>/k<k>/seed<seed>``) unless
    ``paths.output_dir`` is given. ``config_dir``: a folder of extra groups, as ``--config-dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    GlobalHydra.instance().clear()  # a caller may have its own Hydra context
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir else []
        cfg = hydra_compose(config_name="config", overrides=overrides + extra)
    if not any(o.lstrip("+").startswith("paths.output_dir=") for o in overrides):
        with open_dict(cfg):
            cfg.paths.output_dir = str(Path(cfg.paths.log_dir) / cfg.task_name / "api" / cfg.dataset.name
                                       / cfg.model.name / f"{cfg.method.name}+{cfg.augment.name}"
                                       / f"k{cfg.k}" / f"seed{cfg.seed}")
    return cfg


def run(cfg: DictConfig) -> dict:
    """Run the config's stage (with its ``compare`` arms) and return its result; bad input raises
    ``ConfigError`` (one line) before any model loads."""
    from cod_pipeline.cli import quiet_third_party
    from cod_pipeline.pipeline import run as run_stage

    quiet_third_party()
    return run_stage(cfg)


def load_teacher(cfg: DictConfig):
    """The config's teacher, trained once and cached (``.probs(texts)``, ``.model``, ``.test_metrics``)."""
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    splits, _ = prepare(cfg)
    return ensure_teacher(cfg, splits)


def generate_cfes(texts, cfg: DictConfig, teacher_model=None) -> list[dict]:
    """CFEs of ``texts`` by the config's generator (``cfe=``) against its teacher, through the CFE
    store (a second call is a cache hit): one record per text in order, as
    ``python -m cod_pipeline.cfe export`` writes them. A CFE flips the *teacher's* class
    (``label``), so no gold label is asked for."""
    import hashlib

    from cod_pipeline.counterfactuals.pairing import make_generation
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    texts = [str(t) for t in texts]
    splits, _ = prepare(cfg)
    tm = teacher_model or ensure_teacher(cfg, splits)
    ids = ["api-" + hashlib.sha1(t.encode()).hexdigest()[:16] for t in texts]
    generation = make_generation(cfg, splits, tm)
    with generation.gen.session():
        recs = generation.records(list(dict.fromkeys(ids)), list(dict.fromkeys(texts)))
    return [dict(recs[i]) for i in ids]


__all__ = ["compose", "conf_dir", "generate_cfes", "load_teacher", "run"]
