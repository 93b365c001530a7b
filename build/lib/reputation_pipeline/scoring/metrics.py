"""TweetEval metrics: sentiment macro-averaged recall; offensive/hate macro-F1."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def macro_recall(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    rec = [float(np.mean(yp[yt == c] == c)) for c in range(n_classes) if np.any(yt == c)]
    return float(np.mean(rec))


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    f1s = []
    for c in range(n_classes):
        tp = float(np.sum((yp == c) & (yt == c)))
        fp = float(np.sum((yp == c) & (yt != c)))
        fn = float(np.sum((yp != c) & (yt == c)))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def task_metric(task: str, y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[str, float]:
    from reputation_pipeline.scoring.data import LABELS, METRIC

    name = METRIC[task]
    fn = macro_recall if name == "macro_recall" else macro_f1
    return name, fn(y_true, y_pred, len(LABELS[task]))
