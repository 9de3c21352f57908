"""Unlabelled pool text with the teacher's probabilities on it, computed once per teacher.

A generator's own reader learns from it (``Generator.pool_size``), and the retrieved-partners
control searches it. The pool is a fixed subset of the training split (the first ``n`` rows by
text id, never the run seed), so every job of one dataset sees the same pool."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cod_pipeline.data.splits import first_by_id


@dataclass
class Pool:
    positions: np.ndarray  # rows of splits.train
    texts: list[str]
    probs: np.ndarray  # the teacher's, (n, C)
    path: Path | None = None  # where the probabilities are cached: what is fitted to them may sit beside


def teacher_pool(cfg, splits, teacher, n: int) -> Pool:
    """The first ``n`` training rows by text id, scored by the teacher (cached under ``paths.cache_dir``)."""
    order = first_by_id(splits.train, n)
    texts = splits.train["text"].iloc[order].tolist()
    digest = hashlib.sha1("\n".join(splits.train["id"].iloc[order]).encode()).hexdigest()[:12]
    path = Path(cfg.paths.cache_dir) / "pool_probs" / f"{teacher.id}-{digest}.npy"
    if path.exists():
        probs = np.load(path)
    else:
        probs = np.asarray(teacher.probs(texts), dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, probs)
        os.replace(tmp, path)
    return Pool(order, texts, probs, path)
