"""Sensor tick cost against the length of a partition's ingest history.

    .venv/bin/python bench/bench_tick.py --plans 1000000            # local lake
    .venv/bin/python bench/bench_tick.py --plans 20000 --s3          # the stack's S3 endpoint

One partition with ``--plans`` committed plans of history. The baseline, measured in
the same run on the same files, is what a tick read before the checkpoint: the plan
folder listed behind the cursor's hint (every plan ever written is in that folder). Then
the history is laid out as this version leaves it (plans behind the checkpoint archived,
every commit in place) and full ``plan_tick`` calls are timed, with a warm cursor and
with a lost one. Setup writes the history files directly (not through the store, whose
fsync per object would take hours for a million); the tick reads them through the store.
Uses the running local stack (started here if it is not). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from reputation_pipeline.ingest.drain import make_consumer
from reputation_pipeline.ingest.kafka_client import KafkaSettings, topic_for
from reputation_pipeline.ingest.planner import PlanningPolicy
from reputation_pipeline.ingest.plans import Commit, Plan, PlanLog, archived_key, checkpoint_key, plan_key
from reputation_pipeline.ingest.produce import produce
from reputation_pipeline.ingest.tick import plan_tick
from reputation_pipeline.lake.store import open_lake, s3_client_from_env
from reputation_pipeline.stack import local


def history(topic: str, n: int):
    """(plan key, plan bytes, commit key, commit bytes) of n committed one-offset plans."""
    for start in range(n):
        plan = Plan(topic, 0, start, start + 1, planned_at=1.7e9 + start)
        commit = Commit(topic, 0, start, start + 1, 1, 0, [], [], [], start, committed_at=1.7e9 + start)
        yield plan_key(topic, 0, start), plan.to_json(), plan_key(topic, 0, start, "commits"), commit.to_json()


def write_local(root: str, items) -> None:
    made = set()
    for key, data in items:
        path = os.path.join(root, key)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(path, "wb") as fh:
            fh.write(data)


def write_s3(client, bucket: str, prefix: str, items) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=f"{prefix}/{kv[0]}", Body=kv[1]), items))


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plans", type=int, default=200_000)
    ap.add_argument("--s3", action="store_true", help="the lake on the stack's S3 endpoint instead of a folder")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    local.ensure_env()
    settings = KafkaSettings.from_env()
    platform = f"tick{uuid.uuid4().hex[:8]}"
    topic = topic_for(platform)
    produce(settings, platform, 1, partitions=1, progress=False)  # high watermark below the history: nothing to plan
    n, last = args.plans, args.plans - 1
    work = tempfile.mkdtemp(prefix="bench-tick-")
    t0 = time.perf_counter()
    if args.s3:
        client = s3_client_from_env()
        bucket = f"bench-tick-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=bucket)
        uri, prefix = f"s3://{bucket}/lake", "lake"
        write_s3(client, bucket, prefix, [kv for p, pb, c, cb in history(topic, n) for kv in ((p, pb), (c, cb))])
        store = open_lake(uri, client)
    else:
        uri = os.path.join(work, "lake")
        write_local(uri, (kv for p, pb, c, cb in history(topic, n) for kv in ((p, pb), (c, cb))))
        store = open_lake(uri)
    setup_s = time.perf_counter() - t0
    log = PlanLog(store)

    # baseline: the listing every tick did, behind a hint at the last committed plan
    baseline = timed(lambda: log.plans(topic, 0, after_start=last), args.repeat)

    # this version's layout: history behind the checkpoint archived, the checkpoint's plan live
    t0 = time.perf_counter()
    moves = [(plan_key(topic, 0, s), archived_key(plan_key(topic, 0, s))) for s in range(last)]
    if args.s3:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda m: (client.copy_object(Bucket=bucket, Key=f"{prefix}/{m[1]}",
                                                        CopySource={"Bucket": bucket, "Key": f"{prefix}/{m[0]}"}),
                                     client.delete_object(Bucket=bucket, Key=f"{prefix}/{m[0]}")), moves))
    else:
        for src, dst in moves:
            os.makedirs(os.path.dirname(os.path.join(uri, dst)), exist_ok=True)
            os.rename(os.path.join(uri, src), os.path.join(uri, dst))
    store.put(checkpoint_key(topic, 0), json.dumps({"committed_through": last}).encode())
    layout_s = time.perf_counter() - t0

    consumer = make_consumer(settings.client_config())
    try:
        policy = PlanningPolicy()
        first = plan_tick(consumer, log, frozenset({platform}), policy, {}, time.time())
        assert not first.new_batches and not first.pending_batches, "the history is committed, nothing to plan"
        warm = first.cursor
        tick_warm = timed(lambda: plan_tick(consumer, log, frozenset({platform}), policy, warm, time.time()), args.repeat)
        tick_lost = timed(lambda: plan_tick(consumer, log, frozenset({platform}), policy, {}, time.time()), args.repeat)
        # a tick of the same partition with no history at all: the floor (watermarks, metadata)
        empty_platform = f"tick{uuid.uuid4().hex[:8]}"
        produce(settings, empty_platform, 1, partitions=1, progress=False)
        fresh = PlanLog(open_lake(os.path.join(work, "empty")))
        floor = timed(lambda: plan_tick(consumer, fresh, frozenset({empty_platform}), policy, {}, time.time(),
                                        force=False), args.repeat)
    finally:
        consumer.close()
    out = {"lake": "s3" if args.s3 else "local", "history_plans": n, "setup_s": round(setup_s, 1),
           "baseline_listing_s": round(baseline, 4), "tick_warm_cursor_s": round(tick_warm, 4),
           "tick_lost_cursor_s": round(tick_lost, 4), "tick_without_history_s": round(floor, 4),
           "baseline_over_tick": round(baseline / tick_warm, 1), "layout_s": round(layout_s, 1)}
    print(json.dumps(out), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if max(tick_warm, tick_lost) <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
