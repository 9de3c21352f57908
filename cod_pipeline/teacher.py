"""The teacher artefact: trained once per (dataset, teacher model, teacher training config),
saved with its predictions on validation and test, and reused by every student run."""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from cod_pipeline import ConfigError
from cod_pipeline.cache import (
    StageCache,
    config_hash,
    file_lock,
    job_token,
    lock_owner,
    source_fingerprint,
    without_local_paths,
    write_json,
)
from cod_pipeline.data.datamodule import Collate, FewShotDataModule, plan_steps
from cod_pipeline.data.splits import Splits
from cod_pipeline.evaluation import metrics
from cod_pipeline.models.backbone import Classifier, predict
from cod_pipeline.models.hf_classifier import fingerprint, is_hf_classifier, load_hf_classifier, resolve_checkpoint
from cod_pipeline.models.lightning import TeacherModule, check_outputs
from cod_pipeline.training import fit, global_rank, job_device, last_checkpoint

log = logging.getLogger(__name__)

# How long a DDP rank > 0 waits, after the teacher's fit, for its rank 0 to predict and publish the
# teacher; a rank 0 that fails or dies is noticed sooner, when it lets go of the teacher's lock.
PUBLISH_WAIT_S = 2 * 3600.0


@dataclass
class Teacher:
    model: Classifier
    id: str  # identity for downstream caches (CFEs are keyed by it)
    label_names: list[str]
    val_probs: np.ndarray
    test_probs: np.ndarray
    test_metrics: dict
    trained_now: bool
    seconds: float
    path: Path

    def probs(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        logits, _ = predict(self.model, texts, batch_size)
        return torch.softmax(logits.float(), -1).numpy()  # float: a bf16 screen (cfe.search.screen_dtype) too


def teacher_key(cfg: DictConfig) -> dict:
    """Exactly what determines the teacher: data, teacher model and its training."""
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    dataset.pop("label_template", None)  # a student-only setting: changing it must not retrain the teacher
    dataset.pop("teacher_training", None)  # counted where it acts: in the effective training below
    without_local_paths(dataset, cfg.dataset)  # their content is in data_files
    return {"dataset": dataset, "teacher": cfg.model.teacher, "training": teacher_training(cfg),
            "checkpoint": cfg.model.get("teacher_checkpoint"), "data_files": source_fingerprint(cfg.dataset)}


def teacher_training(cfg: DictConfig) -> DictConfig:
    """The model's teacher training, with the dataset's own overrides on top (``dataset.teacher_training``:
    a harder task may need more epochs); both are part of the teacher's key."""
    return OmegaConf.merge(cfg.model.teacher_training, cfg.dataset.get("teacher_training") or {})


def build_teacher_model(cfg: DictConfig, num_labels: int) -> Classifier:
    return hydra.utils.instantiate(cfg.model.teacher, num_labels=num_labels, cache_dir=cfg.paths.cache_dir)


def _rows(df, limit=None, seed=0):
    if limit and len(df) > limit:
        df = df.sample(n=limit, random_state=seed)
    return [{"text": t, "label": int(y)} for t, y in zip(df["text"], df["label"])]


def _check_labels(saved: list[str], splits: Splits, where) -> None:
    if len(saved) != splits.num_classes:
        raise ConfigError(f"teacher at {where} has {len(saved)} classes {saved}, but the dataset has "
                          f"{splits.num_classes} {splits.label_names}")


def ensure_teacher(cfg: DictConfig, splits: Splits) -> Teacher:
    """Load the cached teacher, or train it (selected on validation) and cache it."""
    cache, key = StageCache(cfg.paths.cache_dir), teacher_key(cfg)
    ckpt = cfg.model.get("teacher_checkpoint")
    if ckpt:
        ckpt = resolve_checkpoint(str(ckpt))
    if ckpt and is_hf_classifier(ckpt):
        return _hf_teacher(cfg, splits, cache, key, ckpt)
    if ckpt:  # a user's fine-tuned teacher: check it is complete and its head fits, before any work
        missing = [f for f in ("meta.json", "model.pt", "probs.pt") if not (Path(ckpt) / f).exists()]
        if missing:
            raise ConfigError(f"model.teacher_checkpoint={ckpt} lacks {', '.join(missing)} (a folder saved by stage=teacher)")
        meta = json.loads((Path(ckpt) / "meta.json").read_text())
        _check_labels(meta["label_names"], splits, ckpt)
    path = Path(ckpt) if ckpt else cache.path("teacher", key)
    t0 = time.time()
    trained_now = False
    if not ckpt and not (path / "DONE").exists():
        # several jobs of a sweep may need this teacher at once: one trains it, the others wait
        lock, work = path.parent / f"{path.name}.lock", work_dir(path)
        if global_rank() > 0:  # another rank of a DDP job: it joins the fit, rank 0 alone publishes
            trained_now = _join_rank0(cfg, splits, lock, path / "DONE", work)
        else:
            with file_lock(lock, f"teacher {path.name}, being trained by another job"):
                if not (path / "DONE").exists():  # re-check: the holder we waited for may have finished it
                    _train(cfg, splits, cache, key, work)
                    trained_now = True
                shutil.rmtree(work, ignore_errors=True)  # published: the fit's checkpoints are spent
    meta = json.loads((path / "meta.json").read_text())
    _check_labels(meta["label_names"], splits, path)
    model = build_teacher_model(cfg, len(meta["label_names"]))
    model.load_state_dict(torch.load(path / "model.pt", map_location="cpu"))
    model.eval().to(job_device(cfg.trainer))  # scores CFE candidates and training rows where the job runs
    probs = torch.load(path / "probs.pt")
    if len(probs["test"]) != len(splits.test) or len(probs["val"]) != len(splits.validation):
        raise ConfigError(f"teacher at {path} was scored on another test split; delete it to retrain")
    log.info("teacher %s (%s): test %s", meta["name"], "trained" if trained_now else "loaded from cache",
             {k: round(v, 4) for k, v in meta["test"].items() if isinstance(v, float)})
    return Teacher(model, config_hash(key), meta["label_names"], probs["val"].numpy(), probs["test"].numpy(),
                   meta["test"], trained_now, time.time() - t0, path)


def _hf_teacher(cfg: DictConfig, splits: Splits, cache: StageCache, key: dict, ckpt: str) -> Teacher:
    """A fine-tuned transformers classifier as the teacher: loaded from its folder on every run; its
    validation and test probabilities are computed once and cached under the folder's fingerprint."""
    t0 = time.time()
    model = load_hf_classifier(ckpt, splits.label_names, cfg.model.teacher.get("max_length", 128))
    model.to(job_device(cfg.trainer))
    key = {**key, "hf_classifier": fingerprint(ckpt)}
    path = cache.path("teacher", key)
    trained_now = False
    if not (path / "DONE").exists():
        with file_lock(path.parent / f"{path.name}.lock", f"teacher {path.name}, being scored by another job"):
            if not (path / "DONE").exists():
                with cache.writing("teacher", key) as out:
                    _score_and_save(cfg, splits, model, out, {"name": model.name, "source": str(ckpt)})
                trained_now = True
    meta = json.loads((path / "meta.json").read_text())
    probs = torch.load(path / "probs.pt")
    log.info("teacher %s (a transformers classifier, %s): test %s", meta["name"],
             "scored" if trained_now else "probabilities from cache",
             {k: round(v, 4) for k, v in meta["test"].items() if isinstance(v, float)})
    return Teacher(model, config_hash(key), meta["label_names"], probs["val"].numpy(), probs["test"].numpy(),
                   meta["test"], False, time.time() - t0, path)


def work_dir(path: Path) -> Path:
    """Where the lock holder fits the teacher that will be published at ``path``: named by the
    teacher's key, so the job requeued after a kill (time limit, preemption) finds the fit's
    last checkpoint and resumes it; removed once the teacher is published."""
    return path.parent / f"{path.name}.partial"


def _resume_point(work: Path, owner: bool) -> tuple[Path, int] | None:
    """The last checkpoint a killed fit of this teacher left in ``work``, to resume from. Without
    one, the lock holder (``owner``) empties the folder: a fresh fit then logs to version_0, as one
    that was never interrupted. Every DDP rank reads the same file before any of them trains."""
    found = last_checkpoint(work / "checkpoints")
    if found:
        log.info("resuming teacher %s from step %d", work.name.removesuffix(".partial"), found[1])
        return found
    if owner:
        shutil.rmtree(work, ignore_errors=True)
    return None


def _join_rank0(cfg: DictConfig, splits: Splits, lock: Path, done: Path, work: Path) -> bool:
    """A DDP rank > 0: the fit needs every rank, but only rank 0 writes the training log, so only
    its folder may become the cached teacher. This rank fits in a throwaway folder outside the
    cache, resuming from the checkpoint rank 0 resumes from (only read: Lightning gives every rank
    rank 0's checkpoint folder, and rank 0 alone writes there), then loads what rank 0 publishes
    (or another job trained). True when it joined a fit."""
    _wait_for_rank0_or_done(lock, done)
    if done.exists():
        return False
    with tempfile.TemporaryDirectory(prefix=f"cod-teacher-rank{global_rank()}-") as tmp:
        _fit(cfg, splits, Path(tmp), Path(tmp), _resume_point(work, owner=False))
    log.info("rank %d: the teacher's fit is done; waiting for rank 0 to publish %s", global_rank(), done.parent)
    _wait_for_publish(lock, done)
    return True


def _wait_for_rank0_or_done(lock: Path, done: Path, poll_s: float = 0.5, report_every_s: float = 60.0) -> None:
    me, last = job_token(), 0.0
    while not done.exists():
        if lock_owner(lock) == me:
            return
        if time.monotonic() - last >= report_every_s:
            log.info("rank %d: waiting for rank 0 of this job (%s) to take %s, or for another job's teacher",
                     global_rank(), me, lock)
            last = time.monotonic()
        time.sleep(poll_s)


def _wait_for_publish(lock: Path, done: Path, timeout_s: float | None = None, poll_s: float = 0.5) -> None:
    """Until rank 0 has published the teacher (``done`` exists). Rank 0 holds ``lock`` until then,
    so a lock that another job (or nobody) holds while ``done`` is missing means rank 0 failed."""
    timeout_s = PUBLISH_WAIT_S if timeout_s is None else timeout_s
    me, t0 = job_token(), time.monotonic()
    while not done.exists():
        owner = lock_owner(lock)
        if owner not in (me, "?") and not done.exists():  # "?": held, owner file unreadable: keep waiting
            raise RuntimeError(f"rank {global_rank()}: rank 0 let go of {lock} without publishing the teacher "
                               f"{done.parent} (it failed: see its log)")
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"rank {global_rank()}: rank 0 did not publish the teacher {done.parent} within "
                               f"{timeout_s:.0f} s of the fit (teacher.PUBLISH_WAIT_S)")
        time.sleep(poll_s)


def _fit(cfg: DictConfig, splits: Splits, out: Path, work: Path,
         resume: tuple[Path, int] | None) -> tuple[Classifier, dict]:
    """The teacher's fit alone: the part every DDP rank runs. It logs to ``out``, checkpoints into
    ``work``/checkpoints and resumes from ``resume`` (a last checkpoint and its step)."""
    tc = teacher_training(cfg)
    pl.seed_everything(tc.seed, verbose=False)
    model = build_teacher_model(cfg, splits.num_classes)
    train_rows = _rows(splits.train, tc.train_cap, tc.seed)
    val_rows = _rows(splits.validation, tc.val_cap, tc.seed)
    dm = FewShotDataModule(train_rows, val_rows, Collate(model.tokenize), tc.batch_size, tc.eval_batch_size, tc.seed)
    steps = plan_steps(dm.steps_per_epoch(), tc.epochs, tc.get("min_steps", 0), tc.get("max_steps"))
    module = TeacherModule(model, lr=tc.lr, weight_decay=tc.weight_decay, warmup_ratio=tc.warmup_ratio,
                           total_steps=steps, val_metric=cfg.dataset.get("primary_metric", "accuracy"))
    log.info("training teacher %s: %d examples, %d steps", cfg.model.teacher.name, len(train_rows), steps)
    from pytorch_lightning.loggers import CSVLogger

    info = fit(module, dm, cfg.trainer, steps, tc.eval_every, CSVLogger(str(out), name="logs"), workdir=out,
               ckpt_dir=work / "checkpoints", resume_from=resume and resume[0])
    if resume:  # provenance only: meta.json is not part of any key
        info["resumed_from_step"] = resume[1]
    return model, info


def _train(cfg: DictConfig, splits: Splits, cache: StageCache, key: dict, work: Path) -> None:
    """Fit in ``work`` (resuming a killed fit's last checkpoint), then predict on validation and
    test and publish the artefact with the fit's logs (rank 0, holding the teacher's lock). The
    publishing happens after the fit, so a kill during the fit leaves no ``.tmp-`` folder behind."""
    resume = _resume_point(work, owner=True)
    model, info = _fit(cfg, splits, work, work, resume)
    with cache.writing("teacher", key) as out:
        _predict_and_save(cfg, splits, model, info, out, work)


def _predict_and_save(cfg: DictConfig, splits: Splits, model: Classifier, info: dict, out: Path, work: Path) -> None:
    """The artefact in ``out``: the fit's logs (copied: ``work`` is kept until it is published),
    predictions on validation and test, weights and meta."""
    if (work / "logs").is_dir():
        shutil.copytree(work / "logs", out / "logs")  # logs/version_0/, as when the fit ran in ``out``
    _score_and_save(cfg, splits, model, out, {"name": cfg.model.teacher.name, "training": info,
                                              "config": OmegaConf.to_container(cfg.model.teacher, resolve=True)})
    torch.save(model.state_dict(), out / "model.pt")


def _score_and_save(cfg: DictConfig, splits: Splits, model, out: Path, about: dict) -> None:
    """The teacher's validation and test probabilities (``probs.pt``) and metrics (``meta.json``,
    with ``about``), checked finite first: a trained teacher and a user's classifier alike."""
    bs, device = teacher_training(cfg).eval_batch_size, job_device(cfg.trainer)
    val_logits, _ = predict(model, splits.validation["text"].tolist(), bs, progress="teacher: validation",
                            device=device)
    test_logits, _ = predict(model, splits.test["text"].tolist(), bs, progress="teacher: test", device=device)
    check_outputs(model, "teacher", val_logits, test_logits)
    meta = {**about, "label_names": splits.label_names,
            "test": metrics(splits.test["label"].to_numpy(), test_logits.argmax(-1).numpy(), splits.num_classes),
            "validation": metrics(splits.validation["label"].to_numpy(), val_logits.argmax(-1).numpy(),
                                  splits.num_classes)}
    torch.save({"val": torch.softmax(val_logits, -1), "test": torch.softmax(test_logits, -1)}, out / "probs.pt")
    write_json(out / "meta.json", meta)
