"""``reputation-pipeline models eval``: a task's TweetEval metric for text/label files."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from reputation_pipeline.scoring.data import LABELS, _clean_tweeteval, read_tweeteval
from reputation_pipeline.scoring.metrics import task_metric
from reputation_pipeline.scoring.models import DEFAULT_REF, InferenceOptions, ModelConfig, Scorer


def predict_labels(task: str, texts: list[str], model: str = DEFAULT_REF, quantize: bool = False,
                   threads: int = 0) -> np.ndarray:
    scorer = Scorer(ModelConfig(models={task: model}, options=InferenceOptions(quantize=quantize, threads=threads)))
    res = scorer.score(texts)
    return np.nan_to_num(res.probs[task], nan=0.0).argmax(-1)


def evaluate(task: str, texts_file: Path, labels_file: Path, model: str = DEFAULT_REF,
             quantize: bool = False, threads: int = 0) -> tuple[str, float, dict]:
    if task not in LABELS:
        raise SystemExit(f"unknown task {task!r}; one of {sorted(LABELS)}")
    texts, labels = read_tweeteval(Path(texts_file), Path(labels_file))
    texts = [_clean_tweeteval(task, t) for t in texts]
    t0 = time.time()
    pred = predict_labels(task, texts, model, quantize, threads)
    name, value = task_metric(task, labels, pred)
    return name, value, {"n": len(labels), "seconds": round(time.time() - t0, 1)}
