"""Decision calibration of a heads bundle: one additive logit bias per task and
label, fitted on the seeded dev split of the training data (never on TweetEval
val) to maximize the task's metric.

Class-balanced training does not put the decision boundary where macro-F1 /
macro-recall is best; a bias moves it. It is applied to the logits before the
softmax, so the stored probabilities and the labels (argmax) agree: a post is
``offensive`` exactly when its offensive probability is above 0.5.
``reputation-pipeline models calibrate`` runs it on any bundle; ``models
train`` runs it after training.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from reputation_pipeline.scoring.data import LABELS, TASKS, default_data_dir, load_task
from reputation_pipeline.scoring.bundle import ADAPTER_FILE, HEADS_FILE, META_FILE
from reputation_pipeline.scoring.metrics import task_metric


def dev_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, dev) row indices: the seeded 10% dev split used for model selection."""
    idx = np.random.default_rng(seed).permutation(n)
    n_dev = max(1, n // 10)
    return idx[n_dev:], idx[:n_dev]


def fit_bias(task: str, probs: np.ndarray, y: np.ndarray) -> tuple[list[float], float, float]:
    """(bias per label, metric before, metric after) on held-out predictions.
    Binary tasks: a grid over the decision threshold; three classes: a grid
    over the two outer labels' biases. Ties go to the smallest bias."""
    logp = np.log(np.clip(probs, 1e-9, 1.0))
    before = task_metric(task, y, logp.argmax(-1))[1]
    n = logp.shape[1]
    if n == 2:
        grid = [[0.0, -float(np.log(t / (1 - t)))] for t in np.arange(0.2, 0.8001, 0.025)]
    else:
        steps = np.round(np.arange(-1.0, 1.0001, 0.1), 2)
        grid = [[float(a), 0.0, float(b)] for a in steps for b in steps]
    best = (before, 0.0, [0.0] * n)
    for bias in grid:
        m = task_metric(task, y, (logp + np.asarray(bias)).argmax(-1))[1]
        size = float(np.abs(bias).sum())
        if m > best[0] + 1e-9 or (abs(m - best[0]) <= 1e-9 and size < best[1]):
            best = (m, size, bias)
    return [round(b, 4) for b in best[2]], float(before), float(best[0])


def bundle_version(folder: Path, meta: dict, prefix: str) -> str:
    """``<prefix>-<digest>`` over the weights and the decision biases."""
    h = hashlib.sha256((folder / HEADS_FILE).read_bytes())
    if (folder / ADAPTER_FILE).is_file() and meta.get("adapter"):
        h.update((folder / ADAPTER_FILE).read_bytes())
    biases = {t: spec.get("logit_bias") for t, spec in sorted(meta["tasks"].items()) if spec.get("logit_bias")}
    if biases:
        h.update(json.dumps(biases, sort_keys=True).encode())
    return f"{prefix}-{h.hexdigest()[:10]}"


def calibrate(folder: Path, *, data_dir: Path | None = None, seed: int | None = None, threads: int = 0,
              log=print) -> dict:
    """Fit and store the biases of a bundle in place; re-measures validation."""
    from reputation_pipeline.scoring.models import InferenceOptions, ModelConfig, Scorer

    folder = Path(folder)
    data_dir = Path(data_dir or default_data_dir())
    meta = json.loads((folder / META_FILE).read_text())
    train_cfg = meta.get("training", {})
    seed = seed if seed is not None else int(train_cfg.get("config", {}).get("seed", train_cfg.get("seed", 13)))
    tasks = [t for t in TASKS if t in meta["tasks"]]

    def scorer() -> Scorer:  # a fresh scorer: the bundle's biases are read at load time
        return Scorer(ModelConfig(models={t: str(folder) for t in tasks}, options=InferenceOptions(threads=threads)))

    current = scorer()
    report = {}
    for task in tasks:
        tr, _ = load_task(task, data_dir)
        _, dev = dev_split(len(tr.labels), seed)
        probs = current.score([tr.texts[i] for i in dev]).probs[task]
        delta, before, after = fit_bias(task, probs, np.asarray(tr.labels)[dev])
        spec = meta["tasks"][task]
        old = spec.get("logit_bias") or [0.0] * len(LABELS[task])
        spec["logit_bias"] = [round(a + b, 4) for a, b in zip(old, delta)]
        report[task] = {"dev_before": round(before, 4), "dev_after": round(after, 4), "logit_bias": spec["logit_bias"]}
        log(f"[{task}] dev {before:.4f} -> {after:.4f} with logit bias {spec['logit_bias']}")
    meta["calibration"] = {"method": "per-task additive logit bias, grid search on the seeded 10% dev split of train",
                           "seed": seed, "tasks": report}
    prefix = meta["model_version"].rsplit("-", 1)[0] if meta.get("model_version") else "bundle"
    meta["model_version"] = bundle_version(folder, meta, prefix)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    calibrated = scorer()
    for task in tasks:
        _, va = load_task(task, data_dir)
        pred = np.nan_to_num(calibrated.score(va.texts).probs[task], nan=0.0).argmax(-1)
        name, value = task_metric(task, va.labels, pred)
        meta["tasks"][task]["validation"] = {"source": f"tweeteval/{task}/val", name: round(value, 4), "n": len(va.labels)}
        meta.setdefault("validation_metrics", {})[task] = {name: round(value, 4), "n": len(va.labels)}
        log(f"[{task}] validation {name}={value:.4f} (calibrated)")
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    log(f"calibrated {folder} model_version={meta['model_version']}")
    return meta
