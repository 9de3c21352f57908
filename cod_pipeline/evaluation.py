"""Metrics for any number of classes: accuracy, macro-F1, MCC, and student–teacher agreement.

From the confusion matrix, with scikit-learn's conventions (MCC 0 for a constant predictor,
macro-F1 over every class): few-shot students often predict one class, and torchmetrics
returns other values exactly there (docs/measurements.md: Measured here)."""
from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def metrics(y_true, y_pred, num_classes: int, teacher_pred=None) -> dict[str, float]:
    cm = confusion(y_true, y_pred, num_classes).astype(float)
    n = cm.sum()
    tp = np.diag(cm)
    prec = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    t, p = cm.sum(1), cm.sum(0)  # Gorodkin's multi-class MCC
    denom = np.sqrt((n * n - (p * p).sum()) * (n * n - (t * t).sum()))
    out = {
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "macro_f1": float(f1.mean()),
        "mcc": float((n * tp.sum() - (t * p).sum()) / denom) if denom > 0 else 0.0,
        "majority": float(t.max() / n) if n else float("nan"),
        "n": int(n),
    }
    if teacher_pred is not None:
        out["agreement"] = float(np.mean(np.asarray(y_pred) == np.asarray(teacher_pred)))
    return out


def selection_score(pred, target, num_classes: int, metric: str = "accuracy") -> float:
    """The validation score a checkpoint is selected on: the dataset's primary metric."""
    pred, target = np.asarray(pred), np.asarray(target)
    if metric == "accuracy":
        return float((pred == target).mean()) if len(pred) else float("nan")
    return metrics(target, pred, num_classes)[metric]
