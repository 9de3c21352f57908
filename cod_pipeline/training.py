"""Fitting a LightningModule for a planned number of optimizer steps and restoring the
checkpoint that model selection chose (best ``val/score``, or the last step)."""
from __future__ import annotations

import logging
import tempfile
import time
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


def fit(module: pl.LightningModule, datamodule: pl.LightningDataModule, trainer_cfg: DictConfig, steps: int,
        eval_every: int | None, loggers=None, workdir: str | Path | None = None) -> dict:
    """Train ``steps`` optimizer steps. With ``eval_every`` it validates every that many steps
    and restores the best ``val/score``; without it, no validation and the last weights stay."""
    select_on_val = bool(eval_every)
    per_epoch = datamodule.steps_per_epoch() if hasattr(datamodule, "steps_per_epoch") else None
    # an epoch count the progress bar can show ("Epoch 3/38", not "Epoch 0/-2"); max_steps still decides
    epochs = -(-steps // per_epoch) if per_epoch else -1
    log_every = trainer_cfg.get("log_every_n_steps", 50)
    if per_epoch and log_every and log_every > per_epoch:  # Lightning warns when an epoch is shorter
        log_every = per_epoch
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as ckdir:
        ckpt = ModelCheckpoint(dirpath=ckdir, monitor="val/score" if select_on_val else None, mode="max",
                               save_top_k=1, save_weights_only=True, save_last=False)
        trainer: pl.Trainer = hydra.utils.instantiate(
            trainer_cfg, max_steps=steps, max_epochs=epochs, log_every_n_steps=log_every,
            callbacks=[ckpt] if select_on_val else [],
            enable_checkpointing=select_on_val, logger=loggers or False,
            val_check_interval=min(eval_every, steps) if select_on_val else None,
            check_val_every_n_epoch=None if select_on_val else 1,
            limit_val_batches=None if select_on_val else 0, num_sanity_val_steps=0,
            default_root_dir=str(workdir) if workdir else None,
        )
        module.train()  # from_pretrained leaves modules in eval mode; Lightning keeps modes as found
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        info = {"steps": int(trainer.global_step), "selection": "val" if select_on_val else "last",
                "fit_s": time.perf_counter() - t0}
        if select_on_val and ckpt.best_model_path:
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
            info["best_val_score"] = float(ckpt.best_model_score)
            info["best_step"] = int(Path(ckpt.best_model_path).stem.split("step=")[-1]) if "step=" in ckpt.best_model_path else None
            # every rank reads the file rank 0 saved in its temp folder: rank 0 must not delete it first
            trainer.strategy.barrier("cod_pipeline.fit: best checkpoint restored")
    module.eval()
    return info
