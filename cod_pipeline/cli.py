"""Turns bad input into one clear line and a non-zero exit; everything else propagates."""
from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from cod_pipeline import ConfigError

log = logging.getLogger("cod_pipeline")


def run_job(cfg: DictConfig):
    import torch

    from cod_pipeline.pipeline import run

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    try:
        return run(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
