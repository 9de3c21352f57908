"""Fitting a LightningModule for a planned number of optimizer steps and restoring the
checkpoint that model selection chose (best ``val/score``, or the last step)."""
from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.rank_zero import rank_zero_only

log = logging.getLogger(__name__)


def global_rank() -> int:
    """Lightning's ``rank_zero_only.rank`` (set from the launcher's environment, then by each fit):
    the ranks DDP starts beside rank 0 only join the fits, they never evaluate or write results."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def job_device(trainer_cfg) -> torch.device:
    """Where a job's inference runs (teacher scoring, CFE search, evaluation): the device the
    trainer config asks for, not whatever the machine happens to have (``trainer=cpu`` on a GPU
    node stays on the CPU)."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


LAST_CKPT = "last.ckpt"


def last_checkpoint(ckpt_dir: str | Path) -> tuple[Path, int] | None:
    """The ``last.ckpt`` a killed resumable fit left in ``ckpt_dir``, and its step; None when there
    is none or it cannot be read, so a damaged one means starting over rather than failing for good."""
    path = Path(ckpt_dir) / LAST_CKPT
    if not path.is_file():
        return None
    try:  # mmap: only the step is needed now; Lightning reads the rest when it resumes
        return path, int(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["global_step"])
    except Exception as e:  # noqa: BLE001 - truncated, not a checkpoint, no step: all mean "start over"
        log.warning("checkpoint %s cannot be read (%s): the fit starts over", path, e)
        return None


def fit(module: pl.LightningModule, datamodule: pl.LightningDataModule, trainer_cfg: DictConfig, steps: int,
        eval_every: int | None, loggers=None, workdir: str | Path | None = None,
        ckpt_dir: str | Path | None = None, resume_from: str | Path | None = None) -> dict:
    """Train ``steps`` optimizer steps. With ``eval_every`` it validates every that many steps
    and restores the best ``val/score``; without it, no validation and the last weights stay.

    With ``ckpt_dir`` the checkpoints outlive the process: the best one and a full ``last.ckpt``
    (optimizer, schedule, loop and selection state) written after every validation (each epoch
    without one), so a killed fit can go on from ``resume_from`` (a ``last.ckpt``) instead of step 0.
    It is saved at validation end, not every n train steps: one taken at a validation step's batch
    end predates that validation, which Lightning does not run again on resuming it, so the
    best-model choice would miss it."""
    select_on_val = bool(eval_every)
    per_epoch = datamodule.steps_per_epoch() if hasattr(datamodule, "steps_per_epoch") else None
    # an epoch count the progress bar can show ("Epoch 3/38", not "Epoch 0/-2"); max_steps still decides
    epochs = -(-steps // per_epoch) if per_epoch else -1
    log_every = trainer_cfg.get("log_every_n_steps", 50)
    if per_epoch and log_every and log_every > per_epoch:  # Lightning warns when an epoch is shorter
        log_every = per_epoch
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    kept = contextlib.nullcontext(str(ckpt_dir)) if ckpt_dir else None
    with kept or tempfile.TemporaryDirectory(dir=workdir) as ckdir:
        ckpt = ModelCheckpoint(dirpath=ckdir, monitor="val/score" if select_on_val else None, mode="max",
                               save_top_k=1, save_weights_only=True, save_last=False)
        callbacks = [ckpt] if select_on_val else []
        if ckpt_dir:  # after ``ckpt``: the last checkpoint holds the selection as updated by this validation
            callbacks.append(ModelCheckpoint(dirpath=ckdir, filename=Path(LAST_CKPT).stem, monitor=None,
                                             save_top_k=1, save_weights_only=False, enable_version_counter=False))
        trainer: pl.Trainer = hydra.utils.instantiate(
            trainer_cfg, max_steps=steps, max_epochs=epochs, log_every_n_steps=log_every,
            callbacks=callbacks,
            enable_checkpointing=bool(callbacks), logger=loggers or False,
            val_check_interval=min(eval_every, steps) if select_on_val else None,
            check_val_every_n_epoch=None if select_on_val else 1,
            limit_val_batches=None if select_on_val else 0, num_sanity_val_steps=0,
            default_root_dir=str(workdir) if workdir else None,
        )
        module.train()  # from_pretrained leaves modules in eval mode; Lightning keeps modes as found
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            if resume_from:  # the folder holds the checkpoints being resumed: expected, not a mistake
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        info = {"steps": int(trainer.global_step), "selection": "val" if select_on_val else "last",
                "fit_s": time.perf_counter() - t0}
        if select_on_val and ckpt.best_model_path:
            best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)
            module.load_state_dict(best["state_dict"])
            info["best_val_score"] = float(ckpt.best_model_score)
            info["best_step"] = int(best["global_step"])  # the step Lightning saved it at (not its file name)
            # every rank reads the file rank 0 saved in its temp folder: rank 0 must not delete it first
            trainer.strategy.barrier("cod_pipeline.fit: best checkpoint restored")
    module.eval()
    return info
