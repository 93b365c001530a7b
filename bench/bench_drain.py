"""Drain benchmark: posts/s drained to Parquet vs raw confluent-kafka consume
of the same topic in the same run, and the drain's peak memory.

    .venv/bin/python bench/bench_drain.py --posts 200000            # throughput
    .venv/bin/python bench/bench_drain.py --posts 1000000 --memory  # + peak RSS
    .venv/bin/python bench/bench_drain.py --posts 50000 --message-bytes 1000000 --memory
                                                   # a backlog of 1 MB junk messages: the byte bound

Uses the running local stack (`reputation-pipeline stack up`; started here if
it is not running). Prints one JSON line of figures at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from reputation_pipeline.ingest.drain import DrainSettings
from reputation_pipeline.ingest.kafka_client import KafkaSettings, topic_for
from reputation_pipeline.ingest.produce import produce
from reputation_pipeline.stack import local


def raw_consume(settings: KafkaSettings, topic: str, expected: int) -> float:
    """Baseline: the fastest plain consume loop over the same messages (no decoding)."""
    c = Consumer({**settings.client_config(), "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "enable.partition.eof": False,
                  "fetch.max.bytes": 16 * 1024 * 1024, "queued.max.messages.kbytes": 65536})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    seen, nbytes = 0, 0
    started = time.perf_counter()
    while seen < expected:
        for m in c.consume(num_messages=10_000, timeout=1.0):
            if m.error() is None:
                seen += 1
                nbytes += len(m.value())
    elapsed = time.perf_counter() - started
    c.close()
    return seen / elapsed


def watch_peak_rss(proc: subprocess.Popen) -> float:
    """The process's peak RSS in MB: the kernel's high-water mark (VmHWM), read until it exits.
    (getrusage's children maxrss would count the pages a forked child shares with this
    process before its exec.)"""
    peak = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    return peak / 1024


def produce_junk(settings: KafkaSettings, topic: str, count: int, size: int, partitions: int) -> None:
    """``count`` messages of ``size`` bytes that are not JSON (all quarantined), spread over partitions."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.client_config())
    admin.create_topics([NewTopic(topic, partitions, -1, config={"max.message.bytes": str(size + 4096)})])[topic].result(30)
    producer = Producer({**settings.client_config(), "message.max.bytes": size + 4096, "linger.ms": 50,
                         "queue.buffering.max.kbytes": 262144})
    for i in range(count):
        value = (b"%08d" % i) * (size // 8)
        while True:
            try:
                producer.produce(topic, value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--max-records", type=int, default=50_000, help="records per partition per plan")
    ap.add_argument("--memory", action="store_true", help="report peak RSS of the drain process")
    ap.add_argument("--message-bytes", type=int, default=0,
                    help="produce junk messages of this size instead of posts (each is quarantined)")
    args = ap.parse_args()

    local.ensure_env()
    settings = KafkaSettings.from_env()
    platform = f"bench{uuid.uuid4().hex[:8]}"
    topic = topic_for(platform)
    t0 = time.perf_counter()
    if args.message_bytes:
        produce_junk(settings, topic, args.posts, args.message_bytes, args.partitions)
    else:
        produce(settings, platform, args.posts, partitions=args.partitions, progress=False)
    produce_s = time.perf_counter() - t0

    consume_rate = raw_consume(settings, topic, args.posts)

    with tempfile.TemporaryDirectory() as lake:
        env = {**os.environ, "REPUTATION_LAKE": lake, "REPUTATION_PLATFORMS": platform}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "reputation_pipeline.cli", "ingest", "--until-drained",
                                 "--max-records", str(args.max_records)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        peak_mb = watch_peak_rss(proc)
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(stderr[-3000:], file=sys.stderr)
            return 1
        summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["rows" if not args.message_bytes else "quarantined"] == args.posts, summary
    drain_rate = args.posts / summary["seconds"]
    result = {
        "posts": args.posts, "partitions": args.partitions, "max_records_per_plan": args.max_records,
        "message_bytes": args.message_bytes or None,
        "part_bytes": DrainSettings.from_env().part_bytes,
        "produce_s": round(produce_s, 1),
        "raw_consume_posts_per_s": round(consume_rate),
        "drain_posts_per_s": round(drain_rate),
        "drain_wall_s_incl_startup": round(wall, 1),
        "ratio_drain_over_consume": round(drain_rate / consume_rate, 3),
        "drain_peak_rss_mb": round(peak_mb) if args.memory else None,
    }
    print(json.dumps(result), flush=True)
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.client_config())  # the backlog's disk back (50 GB at 50,000 x 1 MB)
    admin.delete_topics([topic])[topic].result(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
