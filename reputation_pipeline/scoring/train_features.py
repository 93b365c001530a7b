"""Training support shared by the trainers: frozen-encoder features cached on disk, file digests."""
from __future__ import annotations

import hashlib
import json
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
    """What a cached feature depends on besides the texts: the encoder and its inputs, and the
    kernels this process computes with (torch's version, the pinned or native numerics, the CPU
    and the thread count), so features from a native run never stand in for a pinned one."""
    import torch

    from reputation_pipeline.scoring.numerics import describe

    kernels = json.dumps({**describe(), "torch": torch.__version__, "threads": torch.get_num_threads()},
                         sort_keys=True)
    parts = [encoder_ref, emoji, str(max_length), ",".join(features), kernels]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


def cached_features(texts: list[str], encoder_ref: str, emoji: str, max_length: int, cache_dir: Path,
                    features=ALL_FEATURES, log=print) -> np.ndarray:
    """Features for ``texts`` (rows in the given order), cached as
    ``feats-<config>-<texts>.npy`` with a ``.index`` of per-row text sha256.

    Only a file of exactly this list is reused, never one of a longer list that holds these
    texts too: ``encode`` batches by length, so a text's padding, and with it the last bits of
    its features, depend on the other texts of the list (measured: a 50-text list read from a
    200-text file differed from its own encoding in 20 rows). A warm cache must return what a
    cold one computes, or two runs of one training command drift apart."""
    cfg = _config_key(encoder_ref, emoji, max_length, features)
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    key = hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"feats-{cfg}-{key}.npy"
    index = path.with_suffix(".index")
    if path.is_file() and index.is_file() and index.read_text().split() == hashes:
        log(f"features: cache hit {path}")
        return np.load(path).astype(np.float32)
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
    index.write_text("\n".join(hashes) + "\n")
    # what a cache hit returns, so a run gets the same features whether or not the cache was warm
    return stored.astype(np.float32)

