"""The judge: an independent reader that measures whether a CFE carries its new class.

A teacher flip alone is an adversarial example; a counterfactual explanation is an edit a
reader would give the other class. The judge is that reader: a classifier of another model
family than the teacher, the student and any reader a generator keeps, trained once per
dataset on gold labels of the training split and cached like the teacher. It only measures:
no generator, gate or augment imports this module (``tests/test_judge.py`` checks), and it
runs after the training rows are fixed.

``conf/judge/<name>.yaml`` names the class in ``_target_``; ``judge=auto`` (default) lists
candidates and takes the first of another family than the generator's own readers;
``judge=none`` measures nothing.
"""
from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cod_pipeline import ConfigError
from cod_pipeline.cache import StageCache, config_hash
from cod_pipeline.data.splits import first_by_id
from cod_pipeline.evaluation import metrics

log = logging.getLogger(__name__)


class Judge:
    """``fit(texts, labels)``, ``probs(texts)``; ``state()`` / ``load_state()`` for the cache."""

    family = "base"

    def __init__(self, num_classes: int, train_cap: int | None = None, test_cap: int | None = None, **_):
        self.num_classes, self.train_cap, self.test_cap = int(num_classes), train_cap, test_cap

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> "Judge":
        raise NotImplementedError

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> object:
        raise NotImplementedError

    def load_state(self, state) -> None:
        raise NotImplementedError


class NgramJudge(Judge):
    """Word and character n-grams under logistic regression (the family of ``models.ngram``)."""

    family = "ngram-logreg"

    def __init__(self, num_classes: int, bits: int = 18, l2: float = 1.0, train_cap: int | None = None,
                 test_cap: int | None = None, **kw):
        super().__init__(num_classes, train_cap, test_cap)
        from cod_pipeline.models.ngram import NgramClassifier

        self.model = NgramClassifier(num_classes, bits=bits, l2=l2)

    def fit(self, texts, labels):
        self.model.fit(list(texts), list(labels))
        return self

    def probs(self, texts):
        return self.model.probs(list(texts))

    def state(self):
        return {"idf": self.model.features.idf, "w": self.model.w}

    def load_state(self, state):
        self.model.features.idf, self.model.w = state["idf"], state["w"]


class EmbeddingProbeJudge(Judge):
    """A sentence encoder (default: the embedded all-mpnet-base-v2, mean-pooled, normalised),
    frozen, under a logistic-regression probe."""

    def __init__(self, num_classes: int, path: str = "embedded:mpnet", name: str = "all-mpnet-base-v2",
                 max_length: int = 128, batch_size: int = 32, l2: float = 1.0, train_cap: int | None = 2000,
                 test_cap: int | None = 1000, cache_dir: str | None = None, **kw):
        super().__init__(num_classes, train_cap, test_cap)
        self.path, self.name, self.max_length, self.batch_size, self.l2 = path, name, max_length, batch_size, l2
        self.cache_dir = cache_dir
        self.family = f"{name}-probe"
        self._encoder = None
        self.w: np.ndarray | None = None

    def encoder(self):
        if self._encoder is None:
            from cod_pipeline.models.backbone import load_classifier

            self._encoder = load_classifier(self.num_classes, self.path, pooling="mean", max_length=self.max_length,
                                            name=self.name, cache_dir=self.cache_dir)
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from cod_pipeline.models.backbone import predict

        _, hidden = predict(self.encoder(), list(texts), self.batch_size, hidden_layers=[-1],
                            progress="judge" if len(texts) > 256 else None)
        h = hidden[:, 0].float().numpy()
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)

    def fit(self, texts, labels):
        from cod_pipeline.models.ngram import fit_softmax

        self.w = fit_softmax(self.embed(texts), np.asarray(labels), self.num_classes, self.l2, max_iter=500)
        return self

    def probs(self, texts):
        from cod_pipeline.models.ngram import softmax_probs

        if not len(texts):
            return np.zeros((0, self.num_classes))
        return softmax_probs(self.embed(texts), self.w)

    def state(self):
        return {"w": self.w}

    def load_state(self, state):
        self.w = state["w"]


def judge_spec(cfg: DictConfig, generator_families: Sequence[str] = ()) -> dict | None:
    """The judge node, or with ``candidates`` (``judge=auto``) the first candidate whose family is
    none the generator reads with; None for ``judge=none``."""
    node = cfg.get("judge")
    if node is None:
        return None
    node = OmegaConf.to_container(node, resolve=True)
    for cand in node.get("candidates") or []:
        family = judge_class(cand["_target_"])(2, **{k: v for k, v in cand.items() if k not in ("_target_", "name")}).family
        if family not in set(generator_families):
            return cand
    return node if node.get("_target_") else None


def judge_class(target: str) -> type[Judge]:
    from cod_pipeline import target_class

    return target_class(target, Judge, "judge")


def ensure_judge(cfg: DictConfig, splits, generator_families: Sequence[str] = ()) -> tuple[Judge, dict] | None:
    """The dataset's judge, trained once on gold labels of the training split (``train_cap`` rows
    at most, a fixed subset), with its test metrics; None for ``judge=none``."""
    spec = judge_spec(cfg, generator_families)
    if spec is None:
        return None
    from cod_pipeline.teacher import teacher_key

    cls = judge_class(spec.pop("_target_"))
    judge = cls(splits.num_classes, cache_dir=cfg.paths.cache_dir, **{k: v for k, v in spec.items() if k != "name"})
    if judge.family in set(generator_families):
        raise ConfigError(f"judge={spec.get('name')} is of the family {judge.family!r}, which the CFE generator "
                          f"reads with too: choose a judge of another family (conf/judge/)")
    data = teacher_key(cfg)  # the dataset's identity as the teacher's (local files by their bytes)
    key = {"dataset": data["dataset"], "data_files": data["data_files"], "judge": spec}
    cache = StageCache(cfg.paths.cache_dir)
    path = cache.path("judge", key)
    if (path / "DONE").exists():
        judge.load_state(pickle.loads((path / "state.pkl").read_bytes()))
        return judge, json.loads((path / "meta.json").read_text())
    train = _capped(splits.train, judge.train_cap)
    log.info("judge %s: training on %d gold-labelled texts of %s", judge.family, len(train), cfg.dataset.name)
    judge.fit(train["text"].tolist(), train["label"].to_numpy())
    test = _capped(splits.test, judge.test_cap)
    pred = judge.probs(test["text"].tolist()).argmax(1)
    meta = {"family": judge.family, "name": spec.get("name"), "train_size": len(train), "id": config_hash(key, 12),
            "test": metrics(test["label"].to_numpy(), pred, splits.num_classes)}
    with cache.writing("judge", key) as tmp:
        (tmp / "state.pkl").write_bytes(pickle.dumps(judge.state()))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return judge, meta


def _capped(df, cap: int | None):
    """The split as it is, or over ``cap`` rows its first ``cap`` by text id."""
    return df.iloc[first_by_id(df, cap)] if cap and len(df) > cap else df


def faithfulness(judge: Judge, records: list[dict]) -> dict:
    """Per record: the judge's class on the original and on the CFE (``judge_label``). Overall:
    ``faithfulness``, the share of valid CFEs the judge gives the CFE's class (the teacher's on
    it), and ``judge_teacher_agreement``, how often it agrees with the teacher on the originals."""
    valid = [r for r in records if r.get("valid") and r.get("cfe")]
    texts = [r["original"] for r in records] + [r["cfe"] for r in valid]
    p = judge.probs(texts) if texts else np.zeros((0, judge.num_classes))
    orig, cfe = p[: len(records)], p[len(records):]
    for r, q in zip(records, orig):
        r["judge_original"] = int(q.argmax())
    for r, q in zip(valid, cfe):
        r["judge_label"], r["judge_probs"] = int(q.argmax()), [float(x) for x in q]
    agree = [r["judge_original"] == r["label"] for r in records if r.get("label") is not None]
    hits = [r["judge_label"] == r["cfe_label"] for r in valid]
    return {"faithfulness": float(np.mean(hits)) if hits else None, "n_judged": len(hits),
            "judge_teacher_agreement": float(np.mean(agree)) if agree else None}


def measure_cfes(cfg: DictConfig, splits, quality: dict | None, write_samples_to: Path | None = None) -> dict | None:
    """Judge a CFE set in place: faithfulness and the judge's own figures into ``quality``, a judge
    column into the samples file. ``quality["records"]`` (the tried records) is consumed."""
    if not quality:
        return quality
    records = quality.pop("records", None)
    if records is None:
        return quality
    judged = ensure_judge(cfg, splits, quality.get("reader_families") or ())
    if judged is None:
        return quality
    judge, meta = judged
    quality.update(faithfulness(judge, records))
    quality["judge"] = {"family": meta["family"], "name": meta["name"], "id": meta["id"],
                        "train_size": meta["train_size"], "test": meta["test"]}
    quality["judge_test_accuracy"] = meta["test"]["accuracy"]
    for s in quality.get("samples") or []:
        rec = next((r for r in records if r.get("cfe") == s["cfe"] and r.get("original") == s["original"]), None)
        if rec is not None and "judge_label" in rec:
            s["judge_label"] = splits.label_names[rec["judge_label"]]
    if write_samples_to is not None:
        from cod_pipeline.counterfactuals.quality import write_samples

        write_samples(records, write_samples_to, splits.label_names)
    log.info("CFEs judged by %s (test accuracy %.3f, agrees with the teacher on %.0f%% of originals): "
             "faithfulness %s", meta["family"], meta["test"]["accuracy"],
             100 * (quality["judge_teacher_agreement"] or 0), quality["faithfulness"])
    return quality
