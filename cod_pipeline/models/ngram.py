"""A bag-of-n-grams reader: hashed word (1–2) and character (2–5, inside word boundaries)
n-grams, tf-idf weighted, under an L2-regularised multinomial logistic regression.

It is of another family than the transformers the pipeline distils, so a text it and the
teacher both give one class is not a quirk of one architecture. The counterfactual search
trains one on the teacher's labels of unlabelled pool text (its own second reader); the judge
can train one on gold labels (measurement). Nothing here knows which use it serves.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.optimize import minimize

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _grams(text: str, char_range=(2, 5)) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    out = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in zip(words, words[1:])]
    lo, hi = char_range
    for w in words:
        padded = f" {w} "
        for n in range(lo, hi + 1):
            out += [f"c:{padded[i:i + n]}" for i in range(max(0, len(padded) - n + 1))]
    return out


class HashedNgrams:
    """Texts → sparse tf-idf rows over ``2**bits`` hashed n-gram buckets (idf fitted once)."""

    def __init__(self, bits: int = 18):
        self.dim = 1 << int(bits)
        self.idf: np.ndarray | None = None

    def counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for r, t in enumerate(texts):
            ids: dict[int, int] = {}
            for g in _grams(str(t)):
                h = zlib.crc32(g.encode("utf-8")) & (self.dim - 1)
                ids[h] = ids.get(h, 0) + 1
            rows += [r] * len(ids)
            cols += list(ids)
            vals += list(ids.values())
        return sparse.csr_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)), shape=(len(texts), self.dim))

    def fit(self, texts: Sequence[str]) -> "HashedNgrams":
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """``fit`` then ``transform`` of the same texts, their n-grams counted once."""
        x = self.counts(texts)
        self.idf = np.log((1 + len(texts)) / (1 + np.bincount(x.indices, minlength=self.dim))) + 1.0
        return self._weigh(x)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self._weigh(self.counts(texts))

    def _weigh(self, x: sparse.csr_matrix) -> sparse.csr_matrix:
        x.data = np.log1p(x.data)  # sublinear tf
        x = x.multiply(self.idf).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
        return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x


def fit_softmax(x, y: np.ndarray, num_classes: int, l2: float = 1.0, max_iter: int = 200) -> np.ndarray:
    """Multinomial logistic regression by L-BFGS on dense or sparse rows: weights ``(d + 1, C)``,
    the last row the bias. ``l2`` is the penalty on the weights per example (sklearn's 1/C)."""
    n, d = x.shape
    onehot = np.eye(num_classes)[np.asarray(y, dtype=int)]

    def loss(w_flat):
        w = w_flat.reshape(d + 1, num_classes)
        z = x @ w[:-1] + w[-1]
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        p = np.exp(logp)
        g = np.vstack([x.T @ (p - onehot), (p - onehot).sum(0, keepdims=True)]) / n
        g[:-1] += l2 * w[:-1] / n
        value = -(onehot * logp).sum() / n + 0.5 * l2 * (w[:-1] ** 2).sum() / n
        return value, np.asarray(g).ravel()

    w0 = np.zeros((d + 1) * num_classes)
    res = minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return res.x.reshape(d + 1, num_classes)


def softmax_probs(x, w: np.ndarray) -> np.ndarray:
    z = np.asarray(x @ w[:-1] + w[-1])
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class NgramClassifier:
    """``fit(texts, labels)`` then ``probs(texts) -> (n, C)``."""

    family = "ngram-logreg"

    def __init__(self, num_classes: int, bits: int = 18, l2: float = 1.0, max_iter: int = 200):
        self.num_classes, self.l2, self.max_iter = int(num_classes), float(l2), int(max_iter)
        self.features = HashedNgrams(bits)
        self.w: np.ndarray | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> "NgramClassifier":
        x = self.features.fit_transform(texts)
        self.w = fit_softmax(x, np.asarray(labels), self.num_classes, self.l2, self.max_iter)
        return self

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        if self.w is None:
            raise RuntimeError("NgramClassifier.probs before fit")
        if not len(texts):
            return np.zeros((0, self.num_classes))
        return softmax_probs(self.features.transform(list(texts)), self.w)
