"""The student: built from the config with its head started from the class descriptions, its
loss terms bound to both models, the teacher outputs those terms need computed once per run,
and trained for the planned steps with the configured selection (``val``, ``agreement``, ``last``).
Mirrors :mod:`cod_pipeline.teacher`; ``pipeline.student_task`` calls :func:`train_student`."""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from cod_pipeline.data.datamodule import Collate, FewShotDataModule, plan_steps
from cod_pipeline.evaluation import metrics, selection_score
from cod_pipeline.jobs import timed
from cod_pipeline.losses import WeightedSum, build_loss
from cod_pipeline.models.backbone import Classifier, predict
from cod_pipeline.models.lightning import StudentModule, check_outputs
from cod_pipeline.training import fit, global_rank, job_device

log = logging.getLogger(__name__)


def train_student(cfg: DictConfig, splits, teacher, rows: list[dict], loggers=None):
    """Seed, build, bind the loss, cache teacher outputs, fit; returns the selected student and its info."""
    st, selection = cfg.model.student_training, cfg.model.student_training.selection
    seconds: dict[str, float] = {}  # where a job's student stage goes (benchmarks/bench_sweep.py)
    pl.seed_everything(cfg.seed, verbose=False)  # python, numpy and torch: the init and dropout of this seed
    with timed(seconds, "build"):
        student = build_student(cfg, splits)
        loss = build_loss(cfg.method.loss, student, teacher.model)
    per_step = bool(cfg.method.get("teacher_forward_every_step", False)) and bool(loss.needs)
    with timed(seconds, "teacher_outputs"):
        if not per_step:
            rows = with_teacher_outputs(rows, teacher.model, loss, st.eval_batch_size)
    collate = Collate(student.tokenize, teacher.model.tokenize if per_step else None)
    dm = FewShotDataModule(rows, validation_rows(cfg, splits, teacher) if selection != "last" else [],
                           collate, st.batch_size, st.eval_batch_size, cfg.seed)
    steps = plan_steps(dm.steps_per_epoch(), st.epochs, st.min_steps, st.get("max_steps"))
    val_metric = cfg.dataset.get("primary_metric", "accuracy") if selection == "val" else "accuracy"
    module = StudentModule(student, loss, teacher=teacher.model if per_step else None, lr=st.lr,
                           weight_decay=st.weight_decay, warmup_ratio=st.warmup_ratio, total_steps=steps,
                           head_lr=st.get("head_lr"), freeze_embeddings=st.get("freeze_embeddings", False),
                           val_target="teacher" if selection == "agreement" else "label", val_metric=val_metric)
    info = {"seconds": seconds}
    if not global_rank():  # under DDP the other ranks only join the fit: rank 0 logs and scores it
        log.info("student %s: %d training rows, %d steps, selection=%s, loss=%s", cfg.model.student.name,
                 len(rows), steps, selection, " + ".join(f"{t.weight:g}·{n}" for n, t in loss.terms.items()))
        if dm.val_rows:
            info["val_score_at_init"] = score_at_init(student, dm.val_rows, selection, val_metric)
    with timed(seconds, "fit"):
        info |= fit(module, dm, cfg.trainer, steps, st.eval_every if selection != "last" else None, loggers,
                    workdir=cfg.paths.output_dir)
    info["selection"] = selection
    info["val_size"] = len(dm.val_rows)
    return student, info


def evaluate(cfg: DictConfig, splits, teacher, student: Classifier) -> tuple[dict, dict]:
    """Test metrics (with agreement to the teacher) and held-out validation metrics."""
    test_logits, _ = predict(student, splits.test["text"].tolist(), cfg.model.student_training.eval_batch_size,
                             progress="student: test", device=job_device(cfg.trainer))  # then held-out val there too
    check_outputs(student, "student", test_logits)
    test = metrics(splits.test["label"].to_numpy(), test_logits.argmax(-1).numpy(), splits.num_classes,
                   teacher_pred=teacher.test_probs.argmax(-1))
    save_outputs(cfg, splits, teacher, student, test_logits)
    return test, heldout_metrics(cfg, splits, teacher, student)


def save_outputs(cfg: DictConfig, splits, teacher, student: Classifier, test_logits: torch.Tensor) -> None:
    """Per-example test predictions (for McNemar or a bootstrap over test examples) as
    ``predictions.csv`` (``save_student=true``: ``pipeline.student_task`` exports the student once its result exists)."""
    import pandas as pd

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    probs = torch.softmax(test_logits.float(), -1).numpy()
    df = pd.DataFrame({"id": splits.test["id"], "label": splits.test["label"], "student_pred": probs.argmax(-1),
                       "teacher_pred": teacher.test_probs.argmax(-1)})
    for c, name in enumerate(splits.label_names):
        df[f"student_p_{name}"] = probs[:, c].round(5)
    df.to_csv(out / "predictions.csv", index=False)


# --- building -------------------------------------------------------------------------------

def build_student(cfg: DictConfig, splits) -> Classifier:
    student = hydra.utils.instantiate(cfg.model.student, num_labels=splits.num_classes, cache_dir=cfg.paths.cache_dir)
    init_head(cfg, splits, student)
    return student


def init_head(cfg: DictConfig, splits, student: Classifier) -> None:
    """``head_init=label_names``: head rows from the embeddings of the class descriptions."""
    st = cfg.model.student_training
    if st.get("head_init") != "label_names":
        return
    if all(str(n).lstrip("-").isdigit() for n in splits.label_names):
        log.warning("head_init=label_names, but the labels %s are numbers, not words (set dataset.label_names): "
                    "random head", splits.label_names)
        return
    template = cfg.dataset.get("label_template") or "{}"
    student.init_head_from_text([template.format(n) for n in splits.label_names], st.get("head_init_scale", 20.0))


def with_teacher_outputs(rows: list[dict], teacher: Classifier, loss: WeightedSum, batch_size: int) -> list[dict]:
    """Copies of ``rows`` carrying the teacher outputs the loss terms need (``t_logits``, and
    ``t_hidden`` at their layers), computed once; the rows themselves are left as they are."""
    if not loss.needs:
        return rows
    layers = loss.teacher_layers or None
    t_logits, t_hidden = predict(teacher, [r["text"] for r in rows], batch_size, layers)
    return [{**r, "t_logits": t_logits[i], **({"t_hidden": t_hidden[i]} if t_hidden is not None else {})}
            for i, r in enumerate(rows)]


# --- selection and held-out validation --------------------------------------------------------

def validation_order(splits) -> np.ndarray:
    return np.random.default_rng(0).permutation(len(splits.validation))  # fixed: never the run seed


def validation_rows(cfg: DictConfig, splits, teacher) -> list[dict]:
    """Selection rows: a small labelled validation set, or teacher-labelled validation text."""
    n = min(cfg.model.student_training.val_size, len(splits.validation))
    pos = validation_order(splits)[:n]
    df = splits.validation.iloc[pos]
    t_pred = teacher.val_probs[pos].argmax(-1)
    return [{"text": t, "label": int(y), "t_pred": int(p)} for t, y, p in zip(df["text"], df["label"], t_pred)]


def heldout_positions(cfg: DictConfig, splits, cap: int = 500) -> np.ndarray:
    """The validation rows the student's selection never sees (after its ``val_size``)."""
    n = min(cfg.model.student_training.val_size, len(splits.validation))
    return validation_order(splits)[n:n + cap]


def heldout_metrics(cfg: DictConfig, splits, teacher, student: Classifier, cap: int = 500) -> dict:
    """Metrics on validation text the student's selection never saw: where defaults are chosen
    (never on test)."""
    pos = heldout_positions(cfg, splits, cap)
    if not len(pos):
        return {}
    logits, _ = predict(student, splits.validation["text"].iloc[pos].tolist(),
                        cfg.model.student_training.eval_batch_size)
    return metrics(splits.validation["label"].to_numpy()[pos], logits.argmax(-1).numpy(), splits.num_classes,
                   teacher_pred=teacher.val_probs[pos].argmax(-1))


def score_at_init(model: Classifier, rows: list[dict], selection: str, metric: str) -> float:
    """The selection score before any training step (what a head init alone gives), on the
    metric the checkpoints are then selected on."""
    logits, _ = predict(model, [r["text"] for r in rows])
    target = np.array([r["t_pred" if selection == "agreement" else "label"] for r in rows])
    return selection_score(logits.argmax(-1).numpy(), target, logits.shape[-1], metric)
