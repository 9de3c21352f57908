"""What the student trains on, for a budget of exactly k labelled examples.

``none``: k originals. CFE-based variants (``cod`` …) spend k/2 on originals and k/2 on
their counterfactuals; each pair shares a ``group`` so it lands in one mini-batch. The
practitioner's budget (``cod_full``) pairs all k originals: 2k rows from k labels.
"""
from __future__ import annotations

from omegaconf import DictConfig

from cod_pipeline.data.splits import KShotSampler, Splits


def originals_share(aug) -> float:
    """The share of k spent on labelled originals: ``fraction``, by default 1/2 for the paired
    augments (the paper's k/2 + k/2) and 1 otherwise; the practitioner's budget pairs all k."""
    return float(aug.get("fraction", 0.5 if aug.get("paired") else 1))


def n_originals(cfg: DictConfig) -> int:
    """Originals drawn: ``originals_share``·k (CoD and KD(k/2): k/2)."""
    return int(cfg.k * originals_share(cfg.augment))


def check_budget(cfg: DictConfig, sampler: KShotSampler) -> None:
    """Fail before heavy work when k cannot be drawn (for CoD, k/2 must be drawable too)."""
    sampler.check(cfg.k)
    if n_originals(cfg) != cfg.k:
        sampler.check(n_originals(cfg))


def original_rows(splits: Splits, idx) -> list[dict]:
    df = splits.train.iloc[list(idx)]
    return [{"id": i, "text": t, "label": int(y), "group": g, "is_cfe": False}
            for g, (i, t, y) in enumerate(zip(df["id"], df["text"], df["label"]))]
