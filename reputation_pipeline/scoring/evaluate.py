"""``reputation-pipeline models eval``: a task's TweetEval metric for text/label files,
or for one of the project's own splits (``--split``)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from reputation_pipeline.scoring.calibrate import dev_description, selection_split
from reputation_pipeline.scoring.data import (LABELS, NEWER_DEV_SOURCES, SEED, _clean_tweeteval, load_task,
                                               read_tweeteval)
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
    return _measure(task, [_clean_tweeteval(task, t) for t in texts], labels, model, quantize, threads)


def _measure(task: str, texts: list[str], labels: list[int], model: str, quantize: bool,
             threads: int) -> tuple[str, float, dict]:
    t0 = time.time()
    pred = predict_labels(task, texts, model, quantize, threads)
    name, value = task_metric(task, labels, pred)
    return name, value, {"n": len(labels), "seconds": round(time.time() - t0, 1)}


SPLITS = ("val", "dev")


def split_rows(task: str, split: str, data_dir: Path | None = None) -> tuple[list[str], list[int], str]:
    """(texts, labels, description) of a named split: ``val`` is TweetEval's
    validation split, ``dev`` the dev split the default training selects and
    calibrates on (sentiment: the newer-data split, the SemEval 2016 dev sets;
    offensive and hate: the seeded 10% of train)."""
    train, val = load_task(task, data_dir)
    if split == "val":
        return val.texts, val.labels, f"tweeteval/{task}/val"
    if split != "dev":
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    _, dev = selection_split(train, SEED, NEWER_DEV_SOURCES)
    return [train.texts[i] for i in dev], [train.labels[i] for i in dev], dev_description(train, NEWER_DEV_SOURCES)


def evaluate_split(task: str, split: str, model: str = DEFAULT_REF, data_dir: Path | None = None,
                   quantize: bool = False, threads: int = 0) -> tuple[str, float, dict]:
    texts, labels, source = split_rows(task, split, data_dir)
    name, value, info = _measure(task, texts, labels, model, quantize, threads)
    return name, value, {**info, "source": source}
