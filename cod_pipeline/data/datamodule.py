"""One LightningDataModule for teacher and student.

Training rows carry a ``group`` id: an original and its counterfactual share one, and the
batch sampler never splits a group across mini-batches, under shuffling and for any
batch size ≥ 2. Teacher outputs computed once per run ride along as ``t_logits`` /
``t_hidden`` so the student never needs a teacher forward per step.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler


class GroupBatchSampler(Sampler[list[int]]):
    """Shuffles groups (not rows) each epoch and packs whole groups into batches."""

    def __init__(self, groups: list[int], batch_size: int, shuffle: bool, seed: int = 0):
        by_group: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            by_group.setdefault(g, []).append(i)
        self.groups = list(by_group.values())
        largest = max((len(g) for g in self.groups), default=1)
        if batch_size < largest:
            raise ValueError(f"batch size {batch_size} cannot hold a group of {largest} (original + CFE)")
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def _batches(self) -> list[list[int]]:
        order = np.arange(len(self.groups))
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(order)
        batches, cur = [], []
        for gi in order:
            g = self.groups[gi]
            if len(cur) + len(g) > self.batch_size:
                batches.append(cur)
                cur = []
            cur = cur + g
        if cur:
            batches.append(cur)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        self.epoch += 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # DDP: each rank its share
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            batches += batches[:(-len(batches)) % world]  # every rank the same number of steps, none empty
            batches = batches[rank::world]
        return iter(batches)

    def __len__(self) -> int:
        n = len(self._batches())
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return -(-n // torch.distributed.get_world_size())
        return n


class Collate:
    """Tokenizes on the fly (dynamic padding) for the student and, when it must run per
    step, for the teacher's own tokenizer."""

    def __init__(self, tokenize: Callable, teacher_tokenize: Callable | None = None):
        self.tokenize, self.teacher_tokenize = tokenize, teacher_tokenize

    def __call__(self, rows: list[dict]) -> dict:
        texts = [r["text"] for r in rows]
        batch = dict(self.tokenize(texts))
        batch["labels"] = torch.tensor([r["label"] for r in rows], dtype=torch.long)
        batch["is_cfe"] = torch.tensor([bool(r.get("is_cfe", False)) for r in rows])
        if any("ce_weight" in r for r in rows):  # augment.cfe_loss=kl: CFE rows carry no hard label
            batch["ce_weight"] = torch.tensor([float(r.get("ce_weight", 1.0)) for r in rows])
        for key in ("t_logits", "t_hidden"):
            if rows and key in rows[0]:
                batch[key] = torch.stack([torch.as_tensor(r[key]) for r in rows])
        if rows and "t_pred" in rows[0]:
            batch["t_pred"] = torch.tensor([r["t_pred"] for r in rows], dtype=torch.long)
        if self.teacher_tokenize is not None:
            batch["teacher_inputs"] = dict(self.teacher_tokenize(texts))
        return batch


class FewShotDataModule(pl.LightningDataModule):
    def __init__(self, train_rows: list[dict], val_rows: list[dict], collate: Collate, batch_size: int,
                 eval_batch_size: int = 64, seed: int = 0, shuffle: bool = True):
        super().__init__()
        self.train_rows, self.val_rows, self.collate = train_rows, val_rows, collate
        self.batch_size, self.eval_batch_size, self.seed, self.shuffle = batch_size, eval_batch_size, seed, shuffle

    def steps_per_epoch(self) -> int:
        return len(self._sampler())

    def _sampler(self) -> GroupBatchSampler:
        groups = [r.get("group", i) for i, r in enumerate(self.train_rows)]
        return GroupBatchSampler(groups, self.batch_size, self.shuffle, self.seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_rows, batch_sampler=self._sampler(), collate_fn=self.collate)

    def val_dataloader(self) -> DataLoader:
        rows = sorted(self.val_rows, key=lambda r: len(r["text"]))  # length-sorted: less padding
        return DataLoader(rows, batch_size=self.eval_batch_size, collate_fn=self.collate)


def plan_steps(n_batches_per_epoch: int, epochs: int, min_steps: int, max_steps: int | None = None) -> int:
    """Optimizer steps: ``epochs`` passes, but never fewer than ``min_steps`` so that k=8 gets
    enough updates, and never more than ``max_steps``."""
    steps = max(min_steps, epochs * max(1, n_batches_per_epoch))
    return min(steps, max_steps) if max_steps else steps


__all__ = ["GroupBatchSampler", "Collate", "FewShotDataModule", "plan_steps"]
