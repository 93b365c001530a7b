"""Scores on a device against the CPU path, for a machine with a GPU (the test suite is
CPU-only). Exit status 0 when the model version is the same and every probability is
within --atol (default 1e-3) of the CPU's.

    .venv/bin/python scripts/check_scoring_device.py [--device cuda] [--n 2000]

Texts: the TweetEval validation texts of the three tasks (../shared/data), or a built-in
handful when they are absent.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reputation_pipeline.scoring.resources import ScoringModelsResource  # noqa: E402

FALLBACK = ["I absolutely love the new phone, best purchase ever!", "your customer service is a disgrace, idiots",
            "Honestly the update is fine, nothing special", "These people should all be deported, they are vermin"]


def texts(n: int) -> list[str]:
    try:
        from reputation_pipeline.scoring.data import TASKS, _clean_tweeteval, default_data_dir, read_tweeteval

        out = []
        for task in TASKS:
            d = default_data_dir() / "tweeteval" / task
            out += [_clean_tweeteval(task, t) for t in read_tweeteval(d / "val_text.txt", d / "val_labels.txt")[0]]
        return out[:n]
    except OSError:
        return FALLBACK


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--atol", type=float, default=1e-3)
    args = ap.parse_args()
    sample = texts(args.n)
    results = {}
    for device in ("cpu", args.device):
        resource = ScoringModelsResource(device=device)
        scorer = resource.get_scorer()
        scorer.score(sample[:64])  # warm-up
        t0 = time.perf_counter()
        results[device] = (resource.model_version(), scorer.model_version, scorer.score(sample))
        print(f"{device}: {len(sample) / (time.perf_counter() - t0):.1f} posts/s, "
              f"batch {scorer.config.options.max_batch} rows / {scorer.config.options.token_budget} tokens")
    (v_cpu, s_cpu, cpu), (v_dev, s_dev, dev) = results["cpu"], results[args.device]
    ok = v_cpu == v_dev == s_cpu == s_dev and cpu.unscored_reason == dev.unscored_reason
    print(f"model version cpu={v_cpu} {args.device}={v_dev}")
    for task in cpu.probs:
        diff = float(np.nanmax(np.abs(cpu.probs[task] - dev.probs[task])))
        ok &= diff <= args.atol
        print(f"{task}: max |p_cpu - p_{args.device}| = {diff:.2e}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
