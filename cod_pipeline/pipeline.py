"""The recipe, one task function per stage:

config → data (fixed splits, k-shot draw) → teacher (cached) → CFEs (cached) → student
→ metrics (result JSON) → report.

``student_task`` (the default job) first, its stages in the order they run, then the other
stages, ``TASKS`` (one per ``stages.STAGES`` record), the entry points and helpers. The student
is built and trained in :mod:`cod_pipeline.student` (as the teacher in :mod:`cod_pipeline.teacher`);
resume, ``compare`` arms and ``run_hash`` live in :mod:`cod_pipeline.jobs`.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from cod_pipeline import ConfigError, jobs
from cod_pipeline.augment import check_budget, n_originals, original_rows
from cod_pipeline.data import KShotSampler, load_splits
from cod_pipeline.jobs import RESULT_SCHEMA, base_result, run_hash, timed  # noqa: F401 (re-exported)
from cod_pipeline.judge import measure_cfes
from cod_pipeline.models.backbone import check_source
from cod_pipeline.student import evaluate, heldout_metrics, train_student  # noqa: F401 (re-exported)
from cod_pipeline.teacher import ensure_teacher
from cod_pipeline.tracking import job_loggers, log_final
from cod_pipeline.training import global_rank


def student_task(cfg: DictConfig) -> dict:
    timings: dict[str, float] = {}
    with timed(timings, "data"):
        splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    timings["teacher"] = teacher.seconds
    with timed(timings, "cfe"):
        rows, cfe_info = build_training_set(cfg, splits, sampler, teacher)
    with timed(timings, "judge"):  # measurement only: the rows are fixed before the judge reads them
        cfe_info = measure_cfes(cfg, splits, cfe_info, Path(cfg.paths.output_dir) / "cfe_samples.md")
    with job_loggers(cfg) as loggers:
        with timed(timings, "student"):
            student, info = train_student(cfg, splits, teacher, rows, loggers)
        if global_rank():  # a rank DDP started beside rank 0: the fit was its part
            return jobs.follower_result(cfg)
        with timed(timings, "evaluate"):
            student_metrics, info["validation"] = evaluate(cfg, splits, teacher, student)
        result = base_result(cfg, "student", splits)
        result.update({
            "teacher": {"test": teacher.test_metrics, "id": teacher.id, "trained_now": teacher.trained_now},
            "student": {"test": student_metrics, **info, "train_size": len(rows)},
            "cfe": cfe_info, "timings_s": timings, "config": OmegaConf.to_container(cfg, resolve=True),
        })
        if cfg.get("save_student"):  # a transformers folder with a model card from this result
            from cod_pipeline.export import export_student

            result["student"]["export"] = str(export_student(student, Path(cfg.paths.output_dir) / "student",
                                                             splits.label_names, result))
        log_final(loggers, cfg, result)
    return result


def prepare(cfg: DictConfig):
    """Cheap checks and data, before any model is loaded."""
    from cod_pipeline.validation import validate
    validate(cfg)  # the config's declared shape and ranges (validation.RULES)
    if not isinstance(cfg.k, int) or isinstance(cfg.k, bool):
        raise ConfigError(f"k must be an integer, got {cfg.k!r}")
    if str(cfg.trainer.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer={cfg.trainer.accelerator} but no CUDA device is visible (use trainer=cpu)")
    for spec in (cfg.model.teacher, cfg.model.student):
        check_source(spec.get("path"), spec.get("tiny"))
    splits = load_splits(cfg.dataset)
    sampler = KShotSampler(splits.train["label"].to_numpy(), splits.num_classes, cfg.seed)
    check_budget(cfg, sampler)
    return splits, sampler


def build_training_set(cfg, splits, sampler, teacher) -> tuple[list[dict], dict | None]:
    """The k-example budget: originals of the seeded draw, or originals and their CFEs."""
    if not cfg.augment.paired:
        return original_rows(splits, sampler.draw(n_originals(cfg))), None
    from cod_pipeline.counterfactuals.pairing import paired_rows

    return paired_rows(cfg, splits, sampler, teacher)


def teacher_task(cfg: DictConfig) -> dict:
    t0 = time.time()
    check_source(cfg.model.teacher.get("path"), cfg.model.teacher.get("tiny"))
    splits = load_splits(cfg.dataset)
    data_s = time.time() - t0
    teacher = ensure_teacher(cfg, splits)
    if global_rank():
        return jobs.follower_result(cfg)
    result = base_result(cfg, "teacher", splits)
    result.update({"teacher": {"test": teacher.test_metrics, "trained_now": teacher.trained_now, "id": teacher.id},
                   "timings_s": {"data": data_s, "teacher": teacher.seconds},
                   "config": OmegaConf.to_container(cfg, resolve=True)})
    return result


def cfe_task(cfg: DictConfig) -> dict:
    """Generate and cache the CFEs a CoD run at this k and seed needs, without training."""
    from cod_pipeline.counterfactuals.pairing import ON_FAILURE, generate_for_draw

    t0 = time.time()
    with open_dict(cfg):
        cfg.augment.paired = True
    splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    if global_rank():  # the teacher's fit was the last that needs every rank: rank 0 generates
        return jobs.follower_result(cfg)
    _, _, quality = generate_for_draw(cfg, splits, sampler, teacher, n_originals(cfg),
                                      cfg.augment.get("on_failure", ON_FAILURE))
    quality = measure_cfes(cfg, splits, quality, Path(cfg.paths.output_dir) / "cfe_samples.md")
    result = base_result(cfg, "cfe", splits)
    result.update({"teacher": {"test": teacher.test_metrics, "id": teacher.id}, "cfe": quality,
                   "timings_s": {"total": time.time() - t0, "teacher": teacher.seconds, "cfe": quality["seconds"]},
                   "config": OmegaConf.to_container(cfg, resolve=True)})
    return result


def moons_task(cfg: DictConfig) -> dict:
    """Theorem 2 on two moons: boundary Hausdorff distance, KD vs CoD students (no text, no teacher)."""
    from cod_pipeline.mechanisms.moons import run_moons

    frames = run_moons(cfg.paths.output_dir, **OmegaConf.to_container(cfg.mechanism.params, resolve=True))
    return {"stage": "moons", "tables": {k: v.to_dict("records") for k, v in frames.items()}}


def fisher_task(cfg: DictConfig) -> dict:
    """Theorem 1: logistic teacher, estimation error and Fisher information, standard vs CoD."""
    from cod_pipeline.mechanisms.fisher import run_fisher

    df = run_fisher(cfg.paths.output_dir, **OmegaConf.to_container(cfg.mechanism.params, resolve=True))
    return {"stage": "fisher", "table": df.to_dict("records")}


def proximity_task(cfg: DictConfig) -> dict:
    """Teacher margins on originals, the run's CFEs, other generators' cached CFEs and same-size random edits."""
    from cod_pipeline.mechanisms.proximity import run_proximity

    with open_dict(cfg):
        cfg.augment.paired = True
    splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    if global_rank():
        return jobs.follower_result(cfg)
    table = run_proximity(cfg, splits, sampler, teacher)
    return {"stage": "proximity", "table": table.to_dict("records")}


TASKS = {"teacher": teacher_task, "cfe": cfe_task, "student": student_task, "moons": moons_task,
          "fisher": fisher_task, "proximity": proximity_task}


def run(cfg: DictConfig) -> dict:
    """Entry point for run.py: the stage (and its ``compare`` arms) as jobs; see :mod:`cod_pipeline.jobs`."""
    return jobs.run(cfg, TASKS, prepare)


def run_one(cfg: DictConfig) -> dict:
    """One job: its cached result for this exact config, else the stage run now."""
    return jobs.run_one(cfg, TASKS)
