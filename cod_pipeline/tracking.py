"""Experiment loggers for a student job: Lightning logs per-step/epoch metrics; this adds the
resolved config (no secrets: keys are read from the environment and never in the config) at the
start of the run, so a crashed run still has it, final test metrics and CFE quality, and finishes
W&B runs even when a job fails. A result reused from the cache is logged too, marked ``reused``."""
from __future__ import annotations

import contextlib

import hydra
from omegaconf import DictConfig, OmegaConf


def make_loggers(cfg: DictConfig) -> list:
    loggers = [hydra.utils.instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg]
    for lg in loggers:  # Lightning passes anonymous=None, which wandb warns about on every run
        init = getattr(lg, "_wandb_init", None)
        if _is_wandb(lg) and isinstance(init, dict) and init.get("anonymous") is None:
            init.pop("anonymous", None)
    return loggers


def _is_wandb(lg) -> bool:
    return type(lg).__name__ == "WandbLogger"


def run_config(cfg: DictConfig, reused: bool = False) -> dict:
    return {**OmegaConf.to_container(cfg, resolve=True), "reused": reused}


def log_final(loggers: list, cfg: DictConfig, result: dict, reused: bool = False) -> None:
    flat = {f"test/{k}": v for k, v in result["student"]["test"].items() if isinstance(v, (int, float))}
    flat.update({f"teacher/{k}": v for k, v in result["teacher"]["test"].items() if isinstance(v, (int, float))})
    cfe = result.get("cfe") or {}
    flat.update({f"cfe/{k}": v for k, v in cfe.items() if isinstance(v, (int, float))})
    if isinstance(cfe.get("judge"), dict):  # the judge's own test score beside the faithfulness it measured
        flat.update({f"cfe/judge_test_{k}": v for k, v in cfe["judge"]["test"].items() if isinstance(v, (int, float))})
    flat["reused"] = int(reused)
    params = run_config(cfg, reused)
    if result.get("provenance"):  # the commit and versions that produced the result (a reused one: its own)
        params["provenance"] = result["provenance"]
    for lg in loggers:
        lg.log_hyperparams(params)
        lg.log_metrics(flat)
        if _is_wandb(lg):
            lg.experiment.summary["reused"] = reused
        if _is_wandb(lg) and cfe.get("samples"):
            rows = [[s["original"], s["cfe"], float(max(s["orig_probs"])), float(max(s["cfe_probs"])),
                     s.get("judge_label", "")] for s in cfe["samples"]]
            lg.log_table("cfe_samples", columns=["original", "cfe", "teacher confidence (original)",
                                                 "teacher confidence (cfe)", "judge"], data=rows)
        lg.save()


@contextlib.contextmanager
def job_loggers(cfg: DictConfig, reused: bool = False):
    """The job's loggers, with the resolved config logged before anything runs."""
    loggers = make_loggers(cfg)
    failed: BaseException | None = None
    try:
        for lg in loggers:
            if _is_wandb(lg) and reused:  # tags are set when the run is created, just below
                init = getattr(lg, "_wandb_init", None)
                if isinstance(init, dict):
                    init["tags"] = [*(init.get("tags") or []), "reused"]
            lg.log_hyperparams(run_config(cfg, reused))
        yield loggers
    except BaseException as e:
        failed = e
        raise
    finally:
        for lg in loggers:
            if _is_wandb(lg):  # a job that failed is a failed W&B run, with the exit code the job gets
                import wandb

                from cod_pipeline import ConfigError

                code = 0 if failed is None else 2 if isinstance(failed, ConfigError) else 1
                with contextlib.suppress(Exception):
                    lg.finalize("success" if failed is None else "failed")
                wandb.finish(exit_code=code)


def report_reused(cfg: DictConfig, result: dict) -> None:
    """A cached result is being reused: print one line if it was computed under another commit
    than the current one, and log it to the job's loggers marked ``reused``."""
    from cod_pipeline.provenance import stale_notice

    notice = stale_notice(result)
    if notice:
        print(notice, flush=True)
    if not any(cfg.get("logger") or {}):
        return
    with job_loggers(cfg, reused=True) as loggers:
        log_final(loggers, cfg, result, reused=True)


def log_report(project: str, files, tables: dict) -> str:
    """The report of a sweep as a W&B run (job_type=report): its tables as W&B tables, numbers as
    numbers, and every file it wrote (CSV, Markdown, LaTeX, plots) as one artifact."""
    import os

    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", project), job_type="report",
                     mode=os.environ.get("WANDB_MODE", "offline"), entity=os.environ.get("WANDB_ENTITY"))
    try:
        for name, df in tables.items():
            if df is not None and not df.empty:
                run.log({name: wandb.Table(dataframe=df.reset_index(drop=True))})
        art = wandb.Artifact("report", type="report")
        for f in files:
            art.add_file(str(f))
        run.log_artifact(art)
        return run.dir
    finally:
        run.finish()

