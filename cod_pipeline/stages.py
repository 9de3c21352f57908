"""What each ``stage=`` is, as the checks and the job runner need it: nothing tests a stage by its
name. Light on purpose (no torch): ``validate`` reads it before any model loads. The stage's task
function is ``pipeline.TASKS[name]``; a new stage is one ``Stage`` here and one task there."""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from cod_pipeline import ConfigError


@dataclass(frozen=True)
class Stage:
    name: str
    spends_k: bool = False  # draws k labelled originals: the k budget is checked against the classes
    makes_cfes: bool = False  # generates the CFEs a CoD run at this k needs, whatever the augment
    trains_student: bool = False  # compare arms, a cached result that a rerun reuses (resume)
    prints_tables: bool = False  # ends by printing its Markdown tables, not the summary table


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("teacher"),
    Stage("cfe", spends_k=True, makes_cfes=True),
    Stage("student", spends_k=True, trains_student=True),
    Stage("moons", prints_tables=True),
    Stage("fisher", prints_tables=True),
    Stage("proximity", spends_k=True, makes_cfes=True, prints_tables=True),
)}


def stage_of(cfg: DictConfig) -> Stage:
    name = cfg.get("stage")
    if name not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, not {name!r}")
    return STAGES[name]
