"""Decision calibration of a heads bundle: one additive logit bias per task and
label, fitted on the dev split the bundle was selected on (:func:`selection_split`:
held-out source files where the training named them, else a seeded 10% of the
training data; never TweetEval val) to maximize the task's metric.

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

from reputation_pipeline.scoring.data import LABELS, TASKS, Split, default_data_dir, load_task, overlap_key
from reputation_pipeline.scoring.bundle import ADAPTER_FILE, HEADS_FILE, META_FILE
from reputation_pipeline.scoring.metrics import task_metric


def dev_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, dev) row indices: the seeded 10% dev split used for model selection."""
    idx = np.random.default_rng(seed).permutation(n)
    n_dev = max(1, n // 10)
    return idx[n_dev:], idx[:n_dev]


def selection_split(split: Split, seed: int, dev_sources=()) -> tuple[np.ndarray, np.ndarray]:
    """(fit, dev) row indices of a task's training data. Where the task has rows
    from ``dev_sources`` (held-out source files, e.g. the newest sets), those rows
    are the dev split and fit rows that are copies of one of them (same
    :func:`overlap_key`) are dropped; otherwise the seeded 10% of
    :func:`dev_split`. Fit rows come in a seeded order either way."""
    held = set(dev_sources)
    dev = np.asarray([i for i, s in enumerate(split.sources) if s in held], dtype=np.int64)
    if not len(dev):
        return dev_split(len(split.labels), seed)
    keys = {overlap_key(split.texts[i]) for i in dev} - {""}
    fit = np.asarray([i for i, (t, s) in enumerate(zip(split.texts, split.sources))
                      if s not in held and overlap_key(t) not in keys], dtype=np.int64)
    return np.random.default_rng(seed).permutation(fit), dev


def dev_description(split: Split, dev_sources=()) -> str:
    held = sorted(set(dev_sources) & set(split.sources))
    return f"held-out sources {', '.join(held)}" if held else "seeded 10% of train"


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
    return [round(b, 4) + 0.0 for b in best[2]], float(before), float(best[0])  # + 0.0: no "-0.0"


def without_bias(probs: np.ndarray, bias) -> np.ndarray:
    """The probabilities a bundle gives with its logit bias removed. The bias is
    added to the logits before the softmax, so subtracting it from the log
    probabilities and normalizing again recovers them exactly, up to rounding."""
    bias = np.asarray(bias, dtype=np.float64)
    if not bias.any():
        return probs
    z = np.log(np.clip(probs, 1e-9, 1.0)) - bias
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def cross_fit(task: str, probs: np.ndarray, y: np.ndarray, groups: list[str]) -> dict[str, dict]:
    """Whether a bias fitted on some sets carries to another: for each group of
    a dev split made of two or more (e.g. its source files), the bias fitted on
    the other groups, measured on that one ({} for a single group)."""
    y, groups_arr = np.asarray(y), np.asarray(groups)
    names = sorted(set(groups))
    out: dict[str, dict] = {}
    if len(names) < 2:
        return out
    logp = np.log(np.clip(probs, 1e-9, 1.0))
    for g in names:
        held = groups_arr == g
        bias, _, _ = fit_bias(task, probs[~held], y[~held])
        before = task_metric(task, y[held], logp[held].argmax(-1))[1]
        after = task_metric(task, y[held], (logp[held] + np.asarray(bias)).argmax(-1))[1]
        out[g] = {"n": int(held.sum()), "bias_from_the_others": bias, "before": round(before, 4), "after": round(after, 4)}
    return out


def bias_carries(crossed: dict[str, dict]) -> bool:
    """A bias that does not carry from one held-out set to another (the sets, each
    measured with the bias fitted on the others, lose on average) is a fit to the
    sets, not a shift of the data: the boundary then stays where training put it.
    A dev split of one set cannot tell, and keeps its bias."""
    return not crossed or float(np.mean([r["after"] - r["before"] for r in crossed.values()])) >= 0


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
    dev_sources = tuple(train_cfg.get("config", {}).get("dev_sources", ()))  # the split the bundle was selected on
    tasks = [t for t in TASKS if t in meta["tasks"]]

    def scorer() -> Scorer:  # a fresh scorer: the bundle's biases are read at load time
        return Scorer(ModelConfig(models={t: str(folder) for t in tasks}, options=InferenceOptions(threads=threads)))

    current = scorer()
    report = {}
    for task in tasks:
        tr, _ = load_task(task, data_dir)
        _, dev = selection_split(tr, seed, dev_sources)
        spec = meta["tasks"][task]
        old = spec.get("logit_bias") or [0.0] * len(LABELS[task])
        # fitted from the unbiased outputs every time, so a second pass keeps the first one's bias
        probs = without_bias(current.score([tr.texts[i] for i in dev]).probs[task], old)
        y_dev = np.asarray(tr.labels)[dev]
        delta, before, after = fit_bias(task, probs, y_dev)
        crossed = cross_fit(task, probs, y_dev, [tr.sources[i] for i in dev])
        carries = bias_carries(crossed)
        if not carries:
            delta, after = [0.0] * len(delta), before
        spec["logit_bias"] = delta
        report[task] = {"dev": dev_description(tr, dev_sources), "n_dev": int(len(dev)), "dev_before": round(before, 4),
                        "dev_after": round(after, 4), "logit_bias": spec["logit_bias"], "bias_carries": bool(carries)}
        log(f"[{task}] dev {before:.4f} -> {after:.4f} with logit bias {spec['logit_bias']}"
            + ("" if carries else " (the fitted bias does not carry across the held-out sets: none kept)"))
        if crossed:
            report[task]["cross_fit"] = crossed
            for g, r in crossed.items():
                log(f"[{task}]   fitted without {g}: {r['before']:.4f} -> {r['after']:.4f} on it "
                    f"(bias {r['bias_from_the_others']})")
    meta["calibration"] = {"method": "per-task additive logit bias, grid search on the dev split the bundle was selected "
                                     "on, from the unbiased outputs; none where the dev split's sets, fitted on the others, lose on average",
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
