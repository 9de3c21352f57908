"""Running stages as jobs: a result's identity (``run_hash``), resume from the results cache,
``compare`` arms beside the main job, and the summary printed at the end (under DDP, by global
rank 0 alone: the other ranks only join the fits). What a stage is comes from
:data:`cod_pipeline.stages.STAGES`; its task function from :data:`cod_pipeline.pipeline.TASKS`,
passed in (this module does not import the pipeline)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from cod_pipeline import ConfigError
from cod_pipeline.cache import config_hash, read_json, source_fingerprint, without_local_paths, write_json
from cod_pipeline.losses import active_terms, legacy_terms
from cod_pipeline.stages import stage_of
from cod_pipeline.validation import augment_option

log = logging.getLogger(__name__)
RESULT_SCHEMA = 2  # part of run_hash: bump when a code change alters results for the same config
Tasks = dict[str, Callable[[DictConfig], dict]]


def run(cfg: DictConfig, tasks: Tasks, prepare: Callable) -> dict:
    """Dispatch the stage (and its compare arms), write result JSONs, print a summary."""
    from cod_pipeline.summary import print_stage_output, print_summary
    from cod_pipeline.validation import check_llm_endpoint, needs_llm, validate

    validate(cfg)  # shape and ranges of every setting (validation.RULES), before anything loads
    stage = stage_of(cfg)
    out_dir = Path(cfg.paths.output_dir)
    compare = [a for a in (cfg.get("compare") or []) if a != cfg.augment.name] if stage.trains_student else []
    subs = {a: with_augment(cfg, a, out_dir / "compare" / a) for a in compare}  # bad names fail here, early
    for sub in subs.values():
        validate(sub)
    if subs:
        prepare(next(iter(subs.values())))
    asks = [c for c in (cfg, *subs.values()) if needs_llm(c) and not (
        stage.trains_student and c.get("resume", True) and result_path(c).exists())]
    if asks:
        check_llm_endpoint(asks[0])  # an endpoint nobody answers at fails now, not after the teacher
    check_stores(cfg, subs.values())
    result = run_one(cfg, tasks)
    name = None
    try:
        for name, sub in subs.items():
            result.setdefault("compare", {})[f"{cfg.method.name}+{name}"] = run_one(sub, tasks)
    except BaseException:  # print what finished, then let the error (one line from cli) follow
        if not _global_rank():  # another DDP rank holds no results to print
            print_summary(result, out_dir / "result.json", unfinished=f"{cfg.method.name}+{name}")
        raise
    if not _global_rank():
        print_stage_output(stage, result, out_dir)
    return result


def run_one(cfg: DictConfig, tasks: Tasks) -> dict:
    """One job: reuse its result if this exact config already finished, else run the stage.
    A damaged result file is reported and recomputed; a run whose CFE requests failed in transit
    (records used once, not stored) writes its result.json but nothing a rerun would skip on."""
    done, result, out = result_path(cfg), None, Path(cfg.paths.output_dir)
    wanted = not cfg.get("save_student") or (out / "student" / "config.json").exists()  # asked-for weights are never cached
    cached = stage_of(cfg).trains_student
    if cfg.get("resume", True) and cached and done.exists() and wanted:
        result = read_json(done, require=("stage", "student"))
        if result is not None and _global_rank():
            return result  # rank 0 reuses it too: no fit to join; rank 0 restores and reports
        if result is not None:
            log.info("skip: a result for this config exists (%s)", done)
            keep_artifacts(done, out, restore=True)
            from cod_pipeline.tracking import report_reused
            report_reused(cfg, result)  # one line if it came from another commit; logged to W&B as reused
    if result is None:
        result = tasks[cfg.stage](cfg)
        if _global_rank():  # a follower_result: rank 0 alone writes the job's files
            return result
        lost = ((result.get("cfe") or {}).get("cache") or {}).get("transport_failures", 0)
        if lost:
            log.warning("%d CFE originals had requests fail in transit and were replaced for this run only: "
                        "the result is not cached for resume, and a rerun asks for them again", lost)
        elif cached:
            write_json(done, result)
            keep_artifacts(done, out)
    write_json(out / "result.json", result)
    return result


ARTIFACTS = ("predictions.csv",)  # small per-run outputs kept beside a cached result, restored on reuse


def keep_artifacts(done: Path, out: Path, restore: bool = False) -> None:
    """Copy a run's artifacts into the results cache (``<hash>.predictions.csv``), or back out of it."""
    import shutil

    for name in ARTIFACTS:
        cached, here = done.with_suffix("." + name), out / name
        src, dst = (cached, here) if restore else (here, cached)
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def follower_result(cfg: DictConfig) -> dict:
    """What a stage returns on a rank DDP started beside rank 0, once no fit is left to join:
    rank 0 alone evaluates and writes, so two processes never write one run folder's files."""
    log.info("rank %d: the %s stage's fits are done; rank 0 evaluates and writes the results",
             _global_rank(), cfg.stage)
    return {"stage": cfg.stage, "global_rank": _global_rank()}


def _global_rank() -> int:
    from cod_pipeline.training import global_rank  # Lightning: imported only once a job runs

    return global_rank()


def with_augment(cfg: DictConfig, augment: str, out_dir: Path) -> DictConfig:
    """The job of a compare arm: the same config with another augment option, in its own folder."""
    sub = cfg.copy()
    with open_dict(sub):
        sub.augment = augment_option(augment)
        sub.compare = []
        sub.paths.output_dir = str(out_dir)
    return sub


def run_hash(cfg: DictConfig) -> str:
    """Identity of a job's result: the resolved config minus where things are written and how fast
    CFEs come (``cfe.runtime``)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for k in ("paths", "logger", "hydra", "resume", "save_student", "trainer", "compare", "threads", "task_name",
              "judge"):  # the judge measures CFEs after the rows are fixed: it changes no student
        c.pop(k, None)
    if not cfg.augment.get("paired"):
        c.pop("cfe", None)
    else:
        from cod_pipeline.counterfactuals.generators import drop_added_defaults, legacy_layout

        drop_added_defaults(c["cfe"], cfg.cfe)  # an option added at its old value keeps old results
        legacy_layout(c["cfe"], cfg.cfe)  # runtime settings at their old places and values: old results keep theirs
    for group in ("augment", "cfe"):  # the option's name says which class; moving a class keeps its results
        _drop_targets(c.get(group))
    if active_terms(c["method"].get("loss")) == legacy_terms(c["method"]):
        c["method"].pop("loss", None)  # the old fixed formula's terms: results cached before terms keep their hash
    if c["dataset"].pop("teacher_training", None) is not None:  # identity = the teacher training in effect
        from cod_pipeline.teacher import teacher_training

        c["model"]["teacher_training"] = OmegaConf.to_container(teacher_training(cfg), resolve=True)
    c["precision"] = str(cfg.trainer.get("precision"))
    without_local_paths(c["dataset"], cfg.dataset)  # their content is in data_files
    c["data_files"] = source_fingerprint(cfg.dataset)
    c["schema"] = RESULT_SCHEMA
    return config_hash(c)


def _drop_targets(node) -> None:
    if isinstance(node, dict):
        node.pop("_target_", None)
        for v in node.values():
            _drop_targets(v)
    elif isinstance(node, list):
        for v in node:
            _drop_targets(v)


def check_stores(cfg: DictConfig, subs) -> None:
    """What the job will read from the cache, checked before the teacher loads: a results entry
    that is not a file, and a CFE store that SQLite cannot read."""
    for c in (cfg, *subs):
        done = result_path(c)
        if done.exists() and not done.is_file():
            raise ConfigError(f"{done} is not a file (a cached result is one JSON file): remove it")
    store = Path(cfg.paths.cache_dir) / "cfe.sqlite"
    if store.is_file() and store.stat().st_size:
        from cod_pipeline.counterfactuals.store import damage

        if verdict := damage(store):
            raise ConfigError(f"{store} is damaged ({verdict}); move it aside (its valid CFEs can be recovered "
                              f"with sqlite3 .recover) or delete it to regenerate")


def result_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.cache_dir) / "results" / f"{run_hash(cfg)}.json"


def base_result(cfg: DictConfig, stage: str, splits) -> dict:
    """The fields every stage's result.json starts with."""
    from cod_pipeline.cache import data_identity
    from cod_pipeline.provenance import provenance

    data = data_identity(cfg.dataset)  # local files by name and content: part of a report's cell
    return {**({"data": data} if data else {}), "schema": RESULT_SCHEMA, "run_hash": run_hash(cfg), "stage": stage, "dataset": cfg.dataset.name,
            "model": cfg.model.name, "method": cfg.method.name, "augment": cfg.augment.name,
            "alpha": float(cfg.method.get("alpha") or 0.0), "k": cfg.k, "seed": cfg.seed,  # a method without KD: 0
            "primary_metric": cfg.dataset.primary_metric, "num_classes": splits.num_classes,
            "label_names": splits.label_names,
            "sizes": {"train_pool": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)},
            "provenance": provenance()}  # git commit + dirty flag, library versions; not part of run_hash


@contextmanager
def timed(timings: dict, name: str):
    """Wall seconds of a block into ``timings[name]``: every result carries its stage timings."""
    t0 = time.time()
    yield
    timings[name] = time.time() - t0
