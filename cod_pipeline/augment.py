"""What the student trains on, for a budget of exactly k labelled examples.

``none``: k originals. CFE-based variants (``cod`` …) spend k/2 on originals and k/2 on
their counterfactuals; each pair shares a ``group`` so it lands in one mini-batch.
"""
from __future__ import annotations

from omegaconf import DictConfig

from cod_pipeline.data.splits import KShotSampler, Splits


def n_originals(cfg: DictConfig) -> int:
    """Originals drawn: k/2 for the paired variants, ``fraction``·k otherwise (KD(k/2): 0.5)."""
    return cfg.k // 2 if cfg.augment.paired else int(cfg.k * cfg.augment.get("fraction", 1))


def check_budget(cfg: DictConfig, sampler: KShotSampler) -> None:
    """Fail before heavy work when k cannot be drawn (for CoD, k/2 must be drawable too)."""
    sampler.check(cfg.k)
    if n_originals(cfg) != cfg.k:
        sampler.check(n_originals(cfg))


def original_rows(splits: Splits, idx) -> list[dict]:
    df = splits.train.iloc[list(idx)]
    return [{"id": i, "text": t, "label": int(y), "group": g, "is_cfe": False}
            for g, (i, t, y) in enumerate(zip(df["id"], df["text"], df["label"]))]
