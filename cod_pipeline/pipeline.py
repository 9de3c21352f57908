"""One task function per stage. The flow:

config → data (fixed splits, k-shot draw) → teacher (cached) → CFEs (cached) → student
→ metrics (result JSON) → report.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from cod_pipeline import ConfigError
from cod_pipeline.augment import check_budget, n_originals, original_rows
from cod_pipeline.cache import config_hash, source_fingerprint, write_json
from cod_pipeline.data import KShotSampler, load_splits
from cod_pipeline.data.datamodule import Collate, FewShotDataModule, plan_steps
from cod_pipeline.evaluation import metrics
from cod_pipeline.losses import uniform_layer_map
from cod_pipeline.models.backbone import check_source, predict
from cod_pipeline.models.lightning import StudentModule
from cod_pipeline.teacher import ensure_teacher
from cod_pipeline.tracking import job_loggers, log_final
from cod_pipeline.training import fit

log = logging.getLogger(__name__)
RESULT_SCHEMA = 2  # part of run_hash: bump when a code change alters results for the same config


def run_hash(cfg: DictConfig) -> str:
    """Identity of a job's result: the resolved config minus where things are written."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for k in ("paths", "logger", "hydra", "resume", "trainer", "compare", "threads", "task_name"):
        c.pop(k, None)
    if not cfg.augment.get("paired"):
        c.pop("cfe", None)
    c["precision"] = str(cfg.trainer.get("precision"))
    c["data_files"] = source_fingerprint(cfg.dataset)
    c["schema"] = RESULT_SCHEMA
    return config_hash(c)


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
    head_init = cfg.model.student_training.get("head_init", "random")
    if head_init not in ("random", "label_names"):
        raise ConfigError(f"model.student_training.head_init must be random or label_names, not {head_init!r}")
    if head_init == "label_names" and "{}" not in str(cfg.dataset.get("label_template") or "{}"):
        raise ConfigError(f"dataset.label_template must contain {{}} for the class name, got "
                          f"{cfg.dataset.label_template!r}")
    splits = load_splits(cfg.dataset)
    sampler = KShotSampler(splits.train["label"].to_numpy(), splits.num_classes, cfg.seed)
    check_budget(cfg, sampler)
    return splits, sampler


def base_result(cfg: DictConfig, stage: str, splits) -> dict:
    from cod_pipeline.provenance import provenance

    return {"schema": RESULT_SCHEMA, "run_hash": run_hash(cfg), "stage": stage, "dataset": cfg.dataset.name,
            "model": cfg.model.name, "method": cfg.method.name, "augment": cfg.augment.name,
            "alpha": float(cfg.method.alpha), "k": cfg.k, "seed": cfg.seed,
            "primary_metric": cfg.dataset.primary_metric, "num_classes": splits.num_classes,
            "label_names": splits.label_names,
            "sizes": {"train_pool": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)},
            "provenance": provenance()}  # git commit + dirty flag, library versions; not part of run_hash


def teacher_task(cfg: DictConfig) -> dict:
    t0 = time.time()
    check_source(cfg.model.teacher.get("path"), cfg.model.teacher.get("tiny"))
    splits = load_splits(cfg.dataset)
    data_s = time.time() - t0
    teacher = ensure_teacher(cfg, splits)
    result = base_result(cfg, "teacher", splits)
    result.update({"teacher": {"test": teacher.test_metrics, "trained_now": teacher.trained_now, "id": teacher.id},
                   "timings_s": {"data": data_s, "teacher": teacher.seconds},
                   "config": OmegaConf.to_container(cfg, resolve=True)})
    return result


def student_task(cfg: DictConfig) -> dict:
    timings = {}
    t0 = time.time()
    splits, sampler = prepare(cfg)
    timings["data"] = time.time() - t0
    teacher = ensure_teacher(cfg, splits)
    timings["teacher"] = teacher.seconds

    t0 = time.time()
    rows, cfe_info = build_training_set(cfg, splits, sampler, teacher)
    timings["cfe"] = time.time() - t0

    with job_loggers(cfg) as loggers:
        t0 = time.time()
        student, info = train_student(cfg, splits, teacher, rows, loggers)
        timings["student"] = time.time() - t0

        t0 = time.time()
        test_logits, _ = predict(student, splits.test["text"].tolist(), cfg.model.student_training.eval_batch_size,
                                 progress="student: test")
        student_metrics = metrics(splits.test["label"].to_numpy(), test_logits.argmax(-1).numpy(),
                                  splits.num_classes, teacher_pred=teacher.test_probs.argmax(-1))
        info["validation"] = heldout_metrics(cfg, splits, teacher, student)
        timings["evaluate"] = time.time() - t0
        result = base_result(cfg, "student", splits)
        result.update({
            "teacher": {"test": teacher.test_metrics, "id": teacher.id, "trained_now": teacher.trained_now},
            "student": {"test": student_metrics, **info, "train_size": len(rows)},
            "cfe": cfe_info, "timings_s": timings, "config": OmegaConf.to_container(cfg, resolve=True),
        })
        log_final(loggers, cfg, result)
    return result


def build_training_set(cfg, splits, sampler, teacher) -> tuple[list[dict], dict | None]:
    n = n_originals(cfg)
    if not cfg.augment.paired:
        return original_rows(splits, sampler.draw(n)), None
    from cod_pipeline.counterfactuals.pairing import paired_rows

    return paired_rows(cfg, splits, sampler, teacher)


def _validation_order(splits) -> np.ndarray:
    return np.random.default_rng(0).permutation(len(splits.validation))  # fixed: never the run seed


def heldout_metrics(cfg, splits, teacher, student, cap: int = 500) -> dict:
    """Metrics on validation text the student's selection never saw: where defaults are chosen
    (never on test)."""
    n = min(cfg.model.student_training.val_size, len(splits.validation))
    pos = _validation_order(splits)[n:n + cap]
    if not len(pos):
        return {}
    logits, _ = predict(student, splits.validation["text"].iloc[pos].tolist(),
                        cfg.model.student_training.eval_batch_size)
    return metrics(splits.validation["label"].to_numpy()[pos], logits.argmax(-1).numpy(), splits.num_classes,
                   teacher_pred=teacher.val_probs[pos].argmax(-1))


def student_val_rows(cfg, splits, teacher) -> list[dict]:
    """Selection rows: a small labelled validation set, or teacher-labelled validation text."""
    st = cfg.model.student_training
    n = min(st.val_size, len(splits.validation))
    pos = _validation_order(splits)[:n]
    df = splits.validation.iloc[pos]
    t_pred = teacher.val_probs[pos].argmax(-1)
    return [{"text": t, "label": int(y), "t_pred": int(p)} for t, y, p in zip(df["text"], df["label"], t_pred)]


def train_student(cfg: DictConfig, splits, teacher, rows: list[dict], loggers=None):
    st, m = cfg.model.student_training, cfg.method
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    student = hydra.utils.instantiate(cfg.model.student, num_labels=splits.num_classes, cache_dir=cfg.paths.cache_dir)
    if st.get("head_init") == "label_names" and all(str(n).lstrip("-").isdigit() for n in splits.label_names):
        log.warning("head_init=label_names, but the labels %s are numbers, not words (set dataset.label_names): "
                    "random head", splits.label_names)
    elif st.get("head_init") == "label_names":
        template = cfg.dataset.get("label_template") or "{}"
        student.init_head_from_text([template.format(n) for n in splits.label_names], st.get("head_init_scale", 20.0))
    layer_map = None
    if m.beta > 0:
        layer_map = [tuple(p) for p in m.layer_map] if m.get("layer_map") else uniform_layer_map(
            student.num_layers, teacher.model.num_layers)
    per_step = bool(m.get("teacher_forward_every_step", False))
    if not per_step and (m.alpha > 0 or layer_map):
        hidden_layers = [j for _, j in layer_map] if layer_map else None
        t_logits, t_hidden = predict(teacher.model, [r["text"] for r in rows], st.eval_batch_size, hidden_layers)
        for i, r in enumerate(rows):
            r["t_logits"] = t_logits[i]
            if t_hidden is not None:
                r["t_hidden"] = t_hidden[i]
    selection = st.selection
    if selection not in ("val", "last", "agreement"):
        raise ConfigError(f"model.student_training.selection must be val, last or agreement, not {selection!r}")
    collate = Collate(student.tokenize, teacher.model.tokenize if per_step else None)
    dm = FewShotDataModule(rows, student_val_rows(cfg, splits, teacher) if selection != "last" else [],
                           collate, st.batch_size, st.eval_batch_size, cfg.seed)
    steps = plan_steps(dm.steps_per_epoch(), st.epochs, st.min_steps, st.get("max_steps"))
    module = StudentModule(student, alpha=m.alpha, temperature=m.temperature,
                           beta=m.beta, layer_map=layer_map, teacher_width=teacher.model.width,
                           teacher=teacher.model if per_step else None, lr=st.lr, weight_decay=st.weight_decay,
                           warmup_ratio=st.warmup_ratio, total_steps=steps, head_lr=st.get("head_lr"),
                           freeze_embeddings=st.get("freeze_embeddings", False),
                           val_target="teacher" if selection == "agreement" else "label")
    log.info("student %s: %d training rows, %d steps, selection=%s", cfg.model.student.name, len(rows), steps, selection)
    info = {"val_score_at_init": selection_score(student, dm.val_rows, selection)} if dm.val_rows else {}
    info |= fit(module, dm, cfg.trainer, steps, st.eval_every if selection != "last" else None, loggers,
               workdir=cfg.paths.output_dir)
    info["selection"] = selection
    info["val_size"] = len(dm.val_rows)
    return student, info


def selection_score(model, rows: list[dict], selection: str) -> float:
    """The selection metric before any training step: how much a head init alone gives."""
    logits, _ = predict(model, [r["text"] for r in rows])
    target = np.array([r["t_pred" if selection == "agreement" else "label"] for r in rows])
    return float((logits.argmax(-1).numpy() == target).mean())


def cfe_task(cfg: DictConfig) -> dict:
    """Generate and cache the CFEs a CoD run at this k and seed needs, without training."""
    from cod_pipeline.counterfactuals.pairing import generate_for_draw

    t0 = time.time()
    with open_dict(cfg):
        cfg.augment.paired = True
    splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    _, _, quality = generate_for_draw(cfg, splits, sampler, teacher, cfg.k // 2,
                                      cfg.augment.get("on_failure", "fill"))
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
    """Teacher margins on originals, search CFEs, cached LLM CFEs and same-size random edits."""
    from cod_pipeline.counterfactuals.pairing import generate_for_draw
    from cod_pipeline.counterfactuals.search import random_edits
    from cod_pipeline.counterfactuals.store import CFEStore
    from cod_pipeline.counterfactuals.textclean import edited_words
    from cod_pipeline.mechanisms.proximity import margins, write_proximity

    with open_dict(cfg):
        cfg.augment.paired = True
    splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    pairs, _, _ = generate_for_draw(cfg, splits, sampler, teacher, cfg.k // 2)
    recs = [r for _, r in pairs]
    originals = np.array([r["orig_probs"] for r in recs])
    edits = [max(1, edited_words(r["original"], r["cfe"])) for r in recs]
    rand = teacher.probs(random_edits([r["original"] for r in recs], edits, cfg.seed, cfg.dataset.task))
    llm = [r for r in CFEStore(Path(cfg.paths.cache_dir) / "cfe.sqlite").all(dataset=cfg.dataset.name,
                                                                            teacher_id=teacher.id)
           if r.get("generator") not in ("search",) and r.get("valid")]
    groups = {"originals": margins(originals), "search CFEs": margins(np.array([r["cfe_probs"] for r in recs])),
              "random edits (same size)": margins(rand),
              "LLM CFEs (cache)": margins(np.array([r["cfe_probs"] for r in llm])) if llm else np.array([])}
    table = write_proximity(groups, Path(cfg.paths.output_dir))
    return {"stage": "proximity", "table": table.to_dict("records")}


STAGES = {"teacher": teacher_task, "cfe": cfe_task, "student": student_task, "moons": moons_task,
          "fisher": fisher_task, "proximity": proximity_task}
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def run_one(cfg: DictConfig) -> dict:
    """One job: reuse its result if this exact config already finished, else run the stage.
    A damaged result file is reported and recomputed; a run whose CFE requests failed in transit
    (records used once, not stored) writes its result.json but nothing a rerun would skip on."""
    from cod_pipeline.cache import read_json

    out_dir = Path(cfg.paths.output_dir)
    done = Path(cfg.paths.cache_dir) / "results" / f"{run_hash(cfg)}.json"
    result = None
    if cfg.get("resume", True) and cfg.stage == "student" and done.exists():
        result = read_json(done, require=("stage", "student"))
        if result is not None:
            log.info("skip: a result for this config exists (%s)", done)
            from cod_pipeline.tracking import report_reused
            report_reused(cfg, result)  # one line if it came from another commit; logged to W&B as reused
    if result is None:
        result = STAGES[cfg.stage](cfg)
        lost = ((result.get("cfe") or {}).get("cache") or {}).get("transport_failures", 0)
        if lost:
            log.warning("%d CFE originals had requests fail in transit and were replaced for this run only: "
                        "the result is not cached for resume, and a rerun asks for them again", lost)
        elif cfg.stage == "student":
            write_json(done, result)
    write_json(out_dir / "result.json", result)
    return result


def with_augment(cfg: DictConfig, augment: str, out_dir: Path) -> DictConfig:
    path = CONF_DIR / "augment" / f"{augment}.yaml"
    if not path.exists():
        raise ConfigError(f"compare: no augment option {augment!r} (see conf/augment/)")
    sub = cfg.copy()
    with open_dict(sub):
        sub.augment = OmegaConf.load(path)
        sub.compare = []
        sub.paths.output_dir = str(out_dir)
    return sub


def run(cfg: DictConfig) -> dict:
    """Entry point for run.py: dispatch the stage, write result JSONs, print a summary."""
    from cod_pipeline.summary import print_summary
    from cod_pipeline.validation import check_llm_endpoint, needs_llm, validate

    validate(cfg)  # shape and ranges of every setting (validation.RULES), before anything loads
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, not {cfg.stage!r}")
    out_dir = Path(cfg.paths.output_dir)
    compare = [a for a in (cfg.get("compare") or []) if a != cfg.augment.name] if cfg.stage == "student" else []
    subs = {a: with_augment(cfg, a, out_dir / "compare" / a) for a in compare}  # bad names fail here, early
    for sub in subs.values():
        validate(sub)
    if subs:
        prepare(next(iter(subs.values())))
    results_dir = Path(cfg.paths.cache_dir) / "results"
    asks = [c for c in (cfg, *subs.values()) if needs_llm(c) and not (
        c.stage == "student" and c.get("resume", True) and (results_dir / f"{run_hash(c)}.json").exists())]
    if asks:
        check_llm_endpoint(asks[0])  # an endpoint nobody answers at fails now, not after the teacher
    result = run_one(cfg)
    name = None
    try:
        for name, sub in subs.items():
            result.setdefault("compare", {})[f"{cfg.method.name}+{name}"] = run_one(sub)
    except BaseException:  # print what finished, then let the error (one line from cli) follow
        print_summary(result, out_dir / "result.json", unfinished=f"{cfg.method.name}+{name}")
        raise
    if cfg.stage in ("moons", "fisher", "proximity"):
        for md in sorted(out_dir.glob("*.md")):
            print(f"\n## {md.name}\n{md.read_text()}")
        print(f"written to {out_dir}")
    else:
        print_summary(result, out_dir / "result.json")
    return result
