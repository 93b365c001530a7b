"""What the distillation teacher costs against the default encoder (a benchmark, not a test).

    <torch env>/bin/python bench/bench_teacher.py [--n 400] [--threads 2] [--numerics reproducible|native]

Both encoders encode the same seeded sample of TweetEval validation texts (the three tasks,
normalized like production posts) with the same code, ``scoring/encoder.py``'s ``encode``:
length-bucketed batches, the masked mean of the last layer, which is what ``models train
--distill-weight`` asks of the teacher and a frozen-encoder scorer asks of its encoder. Printed:
texts/s of each and the ratio. The teacher is all-mpnet-base-v2 (``scoring/teacher.py``; needs
``scripts/setup.sh --teacher``), the baseline the default encoder (all-MiniLM-L6-v2), both in
PyTorch fp32 on the CPU. ``--numerics`` pins the kernels as ``models train`` does (the default)
or leaves them native.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reputation_pipeline.scoring import numerics  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--numerics", choices=numerics.MODES, default="reproducible")
    args = ap.parse_args()
    numerics.pin(args.numerics)  # before torch loads

    import torch

    from reputation_pipeline.scoring import teacher
    from reputation_pipeline.scoring.data import TASKS, _clean_tweeteval, default_data_dir, read_tweeteval
    from reputation_pipeline.scoring.encoder import BUILTIN_ENCODER, encode, load_encoder
    from reputation_pipeline.scoring.normalize import model_input, normalize_text

    torch.set_num_threads(args.threads)
    pool = set()
    for task in TASKS:
        d = default_data_dir() / "tweeteval" / task
        pool.update(_clean_tweeteval(task, t) for t in read_tweeteval(d / "val_text.txt", d / "val_labels.txt")[0])
    texts = [model_input(normalize_text(t), "keep") for t in random.Random(args.seed).sample(sorted(pool), args.n)]

    rates = {}
    for name, ref in (("default encoder (MiniLM-L6)", BUILTIN_ENCODER), ("teacher (mpnet-base)", str(teacher.teacher_dir()))):
        tok, model = load_encoder(ref)
        feats = [f"mean:{model.config.num_hidden_layers}"]
        encode(tok, model, texts[:32], feats)  # warm-up
        t0 = time.perf_counter()
        encode(tok, model, texts, feats)
        rates[name] = len(texts) / (time.perf_counter() - t0)
        print(f"{name}: {rates[name]:.1f} texts/s ({args.n} texts, {args.threads} threads, numerics {args.numerics})")
        del model
    base, t = rates.values()
    print(f"teacher / default encoder: {t / base:.3f}x the speed ({base / t:.1f}x the cost)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
