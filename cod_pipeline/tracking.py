"""Experiment loggers for a student job: Lightning logs per-step/epoch metrics; this adds the
resolved config (no secrets: keys are read from the environment and never in the config),
final test metrics and CFE quality, and finishes W&B runs even when a job fails."""
from __future__ import annotations

import contextlib

import hydra
from omegaconf import DictConfig, OmegaConf


def make_loggers(cfg: DictConfig) -> list:
    return [hydra.utils.instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg]


def log_final(loggers: list, cfg: DictConfig, result: dict) -> None:
    flat = {f"test/{k}": v for k, v in result["student"]["test"].items() if isinstance(v, (int, float))}
    flat.update({f"teacher/{k}": v for k, v in result["teacher"]["test"].items() if isinstance(v, (int, float))})
    cfe = result.get("cfe") or {}
    flat.update({f"cfe/{k}": v for k, v in cfe.items() if isinstance(v, (int, float))})
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(flat)
        if type(lg).__name__ == "WandbLogger" and cfe.get("samples"):
            rows = [[s["original"], s["cfe"], str(s["orig_probs"]), str(s["cfe_probs"])] for s in cfe["samples"]]
            lg.log_table("cfe_samples", columns=["original", "cfe", "teacher p(original)", "teacher p(cfe)"], data=rows)
        lg.save()


@contextlib.contextmanager
def job_loggers(cfg: DictConfig):
    loggers = make_loggers(cfg)
    try:
        yield loggers
    finally:
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                import wandb

                with contextlib.suppress(Exception):
                    lg.finalize("success")
                wandb.finish()
