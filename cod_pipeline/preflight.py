"""Every job of a multirun checked before the first one starts.

Hydra composes and launches a sweep's jobs one by one, so a bad value in the last job (``k=1``
of ``k=8,16,1``, a data file one dataset lacks) used to fail after every job before it had
trained. This Hydra callback expands the sweep as the basic sweeper will, composes each job
with Hydra's compose API and runs the same checks a job runs first (``validate``,
``check_added_keys``); the first failure is one ``error:`` line naming the job, and exit 2.
"""
from __future__ import annotations

import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cod_pipeline.cli import config_error

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in launch order, as the basic sweeper expands ``hydra.sweeper.params``
    and the command line; None for another sweeper (its own search decides the jobs)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader()).parse_overrides(
        params + list(config.hydra.overrides.task))
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


class ValidateSweep(Callback):
    """``hydra.callbacks.validate_sweep`` (conf/hydra/default.yaml): a sweep starts only when every
    job passes the checks its own start would make."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from hydra import compose

        from cod_pipeline.validation import check_job

        jobs = sweep_jobs(config)
        if not jobs:
            return
        for n, job in enumerate(jobs, 1):
            try:
                check_job(compose(config_name=config.hydra.job.config_name, overrides=job), job)
            except Exception as exc:  # noqa: BLE001 - a ConfigError wherever it sits in the chain
                e = config_error(exc)
                if e is None:
                    raise
                print(f"error: job {n} of {len(jobs)} ({' '.join(job)}): {e}; no job was started", file=sys.stderr)
                sys.exit(2)
