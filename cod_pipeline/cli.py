"""Turns bad input into one clear line and a non-zero exit; everything else propagates.

A ``ConfigError`` is found wherever it sits in the exception chain (Hydra's
``instantiate`` wraps what a data source or model loader raises in an
``InstantiationException`` with a multi-line message), printed as one ``error: ...`` line,
and the job exits 2. Ctrl-C prints one line and exits 130.
"""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from omegaconf import DictConfig

from cod_pipeline import ConfigError

log = logging.getLogger("cod_pipeline")

# Third-party warnings no user acts on: a deprecation inside Lightning's own code, SLURM hints
# (SLURM runs go through submitit) and few-shot loaders without worker processes.
QUIET_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                  r"The `srun` command is available on your system",
                  r".*does not have many workers")


def quiet_third_party() -> None:
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # Lightning's info lines ("GPU available", the cloud-logging tip, "`max_steps` reached") at WARNING
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "lightning_fabric.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "httpx"):  # httpx logs every request's URL at INFO
        logging.getLogger(name).setLevel(logging.WARNING)


def config_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError that caused ``exc`` (itself, or one it wraps), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _task_overrides() -> list[str]:
    """The command line's overrides, where Hydra started the job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not under @hydra.main (tests, the Python API)
        return []


def run_job(cfg: DictConfig):
    quiet_third_party()
    try:
        from cod_pipeline.validation import check_job

        check_job(cfg, _task_overrides())  # before torch is even imported (run validates again, for API callers)
        import torch

        from cod_pipeline.pipeline import run

        if cfg.get("threads"):
            torch.set_num_threads(int(cfg.threads))
        return run(cfg)
    except KeyboardInterrupt:
        print("interrupted: stopped by Ctrl-C (cached teachers and CFEs stored so far are kept)", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        err = config_error(e)
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """``python run.py`` and the ``cod-run`` script: Hydra's command line over the project's conf/."""
    import hydra

    from cod_pipeline.api import conf_dir
    from cod_pipeline.validation import moved_override, override_error

    try:
        config_path = str(conf_dir())
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    # one line, before Hydra's own multi-line error (and its exit 1)
    if wrong := moved_override(sys.argv[1:]) or override_error(sys.argv[1:], Path(config_path)):
        print(f"error: {wrong}", file=sys.stderr)
        sys.exit(2)
    hydra.main(version_base="1.3", config_path=config_path, config_name="config")(run_job)()
