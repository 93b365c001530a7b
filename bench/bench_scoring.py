"""Scoring throughput benchmark (a benchmark, not a timed test).

    .venv/bin/python bench/bench_scoring.py [--n 400] [--repost-rate 0.2] [--threads 2] [--metrics]

Texts: a seeded sample of the TweetEval validation texts of the three tasks
(sentiment, offensive, hate), normalized like production posts. Two streams
are measured on the same texts in the same run:

- ``unique``: every text distinct;
- ``reposts``: the same texts where a share ``--repost-rate`` of the posts are
  reposts of an earlier post (identical text after normalization), as in a
  social stream.

Paths (same model weights, the committed default bundle, the default CPU engine:
ONNX Runtime, scoring/onnx_heads.py, --threads intra-op threads):
- ``naive``: a loop over posts, batch 1, no sorting, one encoder pass per
  analysis (what three separate per-analysis models would do);
- ``naive-shared``: as naive, but one encoder pass feeds the three heads;
- ``default``: the production path (``Scorer``): reposts scored once (content
  hash), length-bucketed batches, one encoder pass for all heads; int8 dynamic
  quantization (the torch engine) only with --quantize on (off by default, see
  docs/scoring.md). The posts state no language, so the language detector
  (scoring/language.py) runs on every distinct text, as it does for such posts
  in production;
- ``no-detect``: the default path with language detection off.

The detector's own cost is printed per post (each text detected once, alone).
Where torch is installed, the torch engine (fp32, CPU) scores the distinct texts
too, in the same batches, for the ratio between the engines and the largest
difference between their probabilities.

``--metrics`` also scores the full validation splits with the default path and
with the unoptimized model (fp32, no bucketing) and prints both metrics.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reputation_pipeline.scoring.data import TASKS, _clean_tweeteval, default_data_dir, read_tweeteval  # noqa: E402
from reputation_pipeline.scoring.metrics import task_metric  # noqa: E402
from reputation_pipeline.scoring.models import (  # noqa: E402
    DEFAULT_REF, HeadsBackend, InferenceOptions, LanguageOptions, ModelConfig, Scorer,
)
from reputation_pipeline.scoring.language import LanguageDetector  # noqa: E402
from reputation_pipeline.scoring.normalize import model_input, normalize_text  # noqa: E402


def val_texts(task: str) -> tuple[list[str], list[int]]:
    d = default_data_dir() / "tweeteval" / task
    t, y = read_tweeteval(d / "val_text.txt", d / "val_labels.txt")
    return [_clean_tweeteval(task, x) for x in t], y


def naive_scores(be: HeadsBackend, texts: list[str], shared: bool) -> dict[str, np.ndarray]:
    """Batch 1, arrival order; one encoder pass per analysis unless shared."""
    out: dict[str, list] = {t: [] for t in TASKS}
    for text in texts:
        x = model_input(normalize_text(text), be.emoji)
        for tasks in ([list(TASKS)] if shared else [[t] for t in TASKS]):
            res = be.engine.predict(be.tokenizer, [x], tasks, max_length=be.max_length, max_batch=1, token_budget=2048)
            for t in tasks:
                out[t].append(res[t][0])
    return {t: np.stack(v) for t, v in out.items()}


def engines(be: HeadsBackend, texts: list[str], threads: int) -> str | None:
    """The ONNX Runtime engine against the torch engine (CPU, fp32) on the same distinct
    texts and batches; None where torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    from reputation_pipeline.scoring.models import TorchHeads

    torch.set_num_threads(threads)
    th = TorchHeads(be.path, be.meta, InferenceOptions())
    inputs = [model_input(normalize_text(t), be.emoji) for t in texts]
    kw = dict(max_length=be.max_length, max_batch=64, token_budget=2048)
    th.predict(be.tokenizer, inputs[:32], TASKS, **kw)  # warm-up
    timings, probs = {}, {}
    for name, engine in (("onnxruntime", be.engine), ("torch", th)):
        t0 = time.perf_counter()
        probs[name] = engine.predict(be.tokenizer, inputs, TASKS, **kw)
        timings[name] = len(inputs) / (time.perf_counter() - t0)
    diff = max(float(np.abs(probs["onnxruntime"][t] - probs["torch"][t]).max()) for t in TASKS)
    return (f"engines on the distinct texts: onnxruntime {timings['onnxruntime']:.1f} posts/s, torch "
            f"{timings['torch']:.1f} posts/s ({timings['onnxruntime'] / timings['torch']:.2f}x); "
            f"max |p_onnx - p_torch| = {diff:.1e}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400, help="posts per stream")
    ap.add_argument("--repost-rate", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", action="store_true", help="also compare validation metrics (slower)")
    ap.add_argument("--quantize", choices=["resource", "on", "off"], default="resource",
                    help="int8 in the default path: as the resource default (ScoringModelsResource.quantize), on, off")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool_texts = sorted({t for task in TASKS for t in val_texts(task)[0]})
    unique = rng.sample(pool_texts, args.n)
    reposts = list(unique)
    for i in range(len(reposts)):
        if i > 0 and rng.random() < args.repost_rate:
            reposts[i] = reposts[rng.randrange(i)]
    naive_be = HeadsBackend(DEFAULT_REF, InferenceOptions(quantize=False, bucketing=False, threads=args.threads))
    from reputation_pipeline.scoring.resources import ScoringModelsResource

    q = ScoringModelsResource().quantize if args.quantize == "resource" else args.quantize == "on"
    if q:
        from reputation_pipeline.scoring.models import require_torch

        require_torch("--quantize on").set_num_threads(args.threads)
    opts = InferenceOptions(quantize=q, threads=args.threads)
    default = Scorer(ModelConfig(options=opts))
    no_detect = Scorer(ModelConfig(options=opts, language=LanguageOptions(detect=False)))
    default.score(unique[:32])  # warm-up
    no_detect.score(unique[:32])
    naive_scores(naive_be, unique[:4], shared=False)
    print(f"model_version={default.model_version} default_path_int8={q} threads={args.threads} n={args.n} "
          f"repost_rate={args.repost_rate} distinct_in_reposts_stream={len(set(reposts))}")
    rows = []
    for name, texts in (("unique", unique), ("reposts", reposts)):
        t0 = time.perf_counter()
        naive_scores(naive_be, texts, shared=False)
        t_naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive_scores(naive_be, texts, shared=True)
        t_shared = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = default.score(texts)
        t_def = time.perf_counter() - t0
        t0 = time.perf_counter()
        no_detect.score(texts)
        t_nd = time.perf_counter() - t0
        n = len(texts)
        left = sum((r or "").startswith("unsupported_language") for r in res.unscored_reason)
        rows.append((name, n / t_naive, n / t_shared, n / t_def, n / t_nd, left))
    print(f"{'stream':8s} {'naive posts/s':>14s} {'naive-shared':>13s} {'default':>9s} {'no-detect':>10s} "
          f"{'speedup':>8s} {'vs shared':>9s} {'not covered':>11s}")
    for name, a, b, c, d, left in rows:
        print(f"{name:8s} {a:14.1f} {b:13.1f} {c:9.1f} {d:10.1f} {c / a:7.2f}x {c / b:8.2f}x {left:11d}")
    det = LanguageDetector()
    normalized = [normalize_text(t) for t in unique]
    for text in normalized[:32]:
        det.detect(text, [("en",)])  # warm-up
    t0 = time.perf_counter()
    for text in normalized:
        det.detect(text, [("en",)])
    per_post = (time.perf_counter() - t0) / len(normalized)
    print(f"language detection (py3langid, min_confidence={det.min_confidence}): {1e6 * per_post:.0f} us/post, "
          f"{100 * per_post * rows[0][3]:.1f}% of the default path's time per distinct post")
    line = engines(naive_be, unique, args.threads)
    print(line or "engines: torch is not installed (the CPU install), the torch engine is not measured")
    if args.metrics:
        fp32 = Scorer(ModelConfig(options=InferenceOptions(quantize=False, bucketing=False, threads=args.threads)))
        print(f"{'task':10s} {'metric':13s} {'default':>8s} {'unoptimized':>12s} {'diff':>7s}")
        for task in TASKS:
            texts, labels = val_texts(task)
            m_def = task_metric(task, labels, default.score(texts).probs[task].argmax(-1))
            m_ref = task_metric(task, labels, fp32.score(texts).probs[task].argmax(-1))
            print(f"{task:10s} {m_def[0]:13s} {m_def[1]:8.4f} {m_ref[1]:12.4f} {100 * (m_def[1] - m_ref[1]):+6.2f}pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
