"""Data: sources → fixed splits → k-shot draws → the shared DataModule."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cod_pipeline.data.splits import KShotSampler, Splits, make_splits


def load_splits(dataset: DictConfig) -> Splits:
    df = hydra.utils.instantiate(dataset.source)
    names = list(dataset.label_names) if dataset.get("label_names") else None
    return make_splits(df, names, dataset.val_size, dataset.test_size, dataset.get("test_cap"))


__all__ = ["KShotSampler", "Splits", "load_splits", "make_splits"]
