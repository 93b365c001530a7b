"""Execute one plan: read exactly ``[start, end)`` of a partition, validate,
write Parquet by event hour plus a quarantine file, then commit.

Order of effects (what makes a kill at any instant safe):
1. data files and the quarantine file, each an atomic PUT/rename under a name
   fixed by (topic, partition, start, end): a retry overwrites them with
   identical content;
2. the commit manifest, a conditional create, written last;
3. optionally the consumer group's offset, for lag dashboards only.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from reputation_pipeline.ingest import fastpath
from reputation_pipeline.ingest.kafka_client import platform_of, watermarks
from reputation_pipeline.ingest.plans import Commit, Plan, PlanLog
from reputation_pipeline.ingest.validate import Limits
from reputation_pipeline.lake.layout import drain_file_key, drain_quarantine_key
from reputation_pipeline.lake.schemas import QUARANTINE
from reputation_pipeline.lake.store import LakeStore
from reputation_pipeline.partitions import hour_partition_key
from reputation_pipeline import settings
from reputation_pipeline.lake.parquet import parquet_bytes

log = logging.getLogger(__name__)

CONSUMER_GROUP = "reputation-pipeline-ingest"


FIRST_CONSUME = 64  # messages in a plan's first consume call, before any size is known


class RetentionGapError(RuntimeError):
    """The planned range starts below the log-start offset: data expired unread."""


class DrainStalledError(RuntimeError):
    """The broker stopped returning the planned range (no progress for too long)."""


@dataclass
class DrainSettings:
    consume_batch: int = 10_000  # messages per consume call, converted together
    batches_in_flight: int = 2  # converted batches the consumer may run ahead of
    stall_timeout_s: float = 120.0
    commit_group_offsets: bool = True
    # message bytes per part of a plan (one file per hour and part): what a drain holds at once
    part_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_env(cls) -> "DrainSettings":
        return cls(part_bytes=settings.INGEST_PART_BYTES.get())


def raw_file_key(platform: str, dt: str, hour: str, plan: Plan, part: int = 0) -> str:
    return drain_file_key(platform, dt, hour, plan.topic, plan.partition, plan.start, plan.end, part)


def quarantine_key(plan: Plan, part: int = 0) -> str:
    return drain_quarantine_key(plan.topic, plan.partition, plan.start, plan.end, part)


def make_consumer(client_config: dict) -> Consumer:
    return Consumer({
        **client_config,
        "group.id": CONSUMER_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",  # never jump silently; we always seek explicitly
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "fetch.max.bytes": 16 * 1024 * 1024,
        "queued.max.messages.kbytes": 16384,  # librdkafka prefetch (plus up to fetch.max.bytes)
        # the default 1000 ms pause each time that queue is full caps a drain at ~16 MB/s (measured)
        "fetch.queue.backoff.ms": 10,
        # A drain reads a bounded range and stops: a long-polling fetch (the default waits up to
        # 500 ms for new data) only holds up the requests queued behind it on the broker
        # connection, i.e. the next plan's watermarks and fetch: 0.2 s a plan, measured.
        "fetch.wait.max.ms": 10,
    })


_METADATA_CONSUMERS: dict[tuple, Consumer] = {}
_METADATA_LOCK = threading.Lock()


def metadata_consumer(client_config: dict) -> Consumer:
    """A consumer for topic metadata and watermarks only (never assigned, never polled),
    kept for the process: a new one spends about 60 ms connecting before its first answer,
    on every sensor tick. librdkafka reconnects it by itself, and its queries are
    thread-safe; the key holds the pid because a forked child cannot use its parent's."""
    key = (os.getpid(), tuple(sorted(client_config.items())))
    with _METADATA_LOCK:
        consumer = _METADATA_CONSUMERS.get(key)
        if consumer is None:
            consumer = _METADATA_CONSUMERS[key] = make_consumer(client_config)
        return consumer


@atexit.register
def close_metadata_consumers() -> None:
    """Close the kept consumers (before their broker goes away, or they log reconnects)."""
    with _METADATA_LOCK:
        kept = [c for (pid, _), c in _METADATA_CONSUMERS.items() if pid == os.getpid()]
        _METADATA_CONSUMERS.clear()
    for consumer in kept:
        consumer.close()


def read_range(consumer: Consumer, plan: Plan, settings: DrainSettings, log_start: int) -> Iterator[list[Message]]:
    """Yield batches of messages with ``start <= offset < end``, tolerating offset gaps."""
    tp = TopicPartition(plan.topic, plan.partition, plan.start)
    consumer.assign([tp])
    position, last_progress = plan.start, time.monotonic()
    # consume() gathers messages while librdkafka keeps fetching: count what one call may take
    # by bytes too (a quarter of a part), from the sizes seen so far; the first call is small
    per_call, seen_bytes, seen = FIRST_CONSUME, 0, 0
    while position < plan.end:
        msgs = consumer.consume(num_messages=min(per_call, plan.end - position), timeout=1.0)
        for m in msgs:
            seen_bytes += _size(m)
        seen += len(msgs)
        if seen:
            per_call = max(1, min(settings.consume_batch, settings.part_bytes // 4 * seen // max(seen_bytes, 1)))
        progressed = False
        batch = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.code() == KafkaError.OFFSET_OUT_OF_RANGE:
                    raise RetentionGapError(f"{plan.plan_id}: offset out of range (log start {log_start})")
                if err.retriable() or err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                    continue  # librdkafka reconnects by itself; the stall timeout bounds this
                raise KafkaException(err)
            offset = msg.offset()
            if offset >= plan.end:
                position = plan.end
                break
            position, progressed = offset + 1, True
            batch.append(msg)
        if batch:
            yield batch
        if not progressed and position < plan.end:
            # transaction markers or compaction leave gaps: trust the fetch position
            pos = consumer.position([TopicPartition(plan.topic, plan.partition)])[0].offset
            if pos >= plan.end:
                break
            if pos > position:
                position, progressed = pos, True
        if progressed:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > settings.stall_timeout_s:
            raise DrainStalledError(f"{plan.plan_id}: no progress at offset {position} for {settings.stall_timeout_s:.0f}s")


def _convert_batch(batch: list[Message], ctx: fastpath.Context) -> fastpath.ChunkResult:
    return fastpath.convert([m.value() for m in batch], [m.offset() for m in batch],
                            [m.timestamp()[1] for m in batch], [m.key() for m in batch], ctx)


def _size(msg: Message) -> int:
    return len(msg) + len(msg.key() or b"")  # len(): the value's size, without copying it


def _convert_parts(consumer: Consumer, plan: Plan, settings: DrainSettings, log_start: int,
                   ctx: fastpath.Context) -> Iterator[tuple[list[fastpath.ChunkResult], int]]:
    """The plan's messages converted, one batch in a worker thread while the next is consumed
    (Arrow releases the GIL), yielded in parts: (results in offset order, last offset read).

    A part closes at the message whose bytes (value and key) bring the part to
    ``part_bytes``: a cut fixed by the offsets and their sizes, so a retry cuts the same
    parts whatever the consume batching, and the memory a drain holds is bounded by bytes,
    not by the plan's record count (a 1 MB message is as valid as a 1 kB one)."""
    results, pending, last_offset, held, in_flight = [], deque(), plan.start - 1, 0, 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-convert") as pool:
        for batch in read_range(consumer, plan, settings, log_start):
            lo, sizes = 0, [_size(m) for m in batch]
            for i, msg in enumerate(batch):
                held += sizes[i]
                if held >= settings.part_bytes:
                    pending.append((pool.submit(_convert_batch, batch[lo:i + 1], ctx), 0))
                    results.extend(f.result() for f, _ in pending)
                    pending.clear()
                    in_flight = held = 0
                    lo = i + 1
                    yield results, msg.offset()
                    results = []
            last_offset = batch[-1].offset()
            if lo < len(batch):
                size = sum(sizes[lo:])
                pending.append((pool.submit(_convert_batch, batch[lo:], ctx), size))
                in_flight += size
                # bounds the raw bytes held: batches, and bytes (a batch of large messages)
                while len(pending) > settings.batches_in_flight or (len(pending) > 1 and in_flight > settings.part_bytes):
                    future, size = pending.popleft()
                    results.append(future.result())
                    in_flight -= size
            del batch
        results.extend(f.result() for f, _ in pending)
    yield results, last_offset


def execute_plan(
    plan: Plan,
    *,
    consumer: Consumer,
    store: LakeStore,
    platforms: frozenset[str],
    limits: Limits = Limits(),
    settings: DrainSettings = DrainSettings(),
) -> Commit:
    plan_log = PlanLog(store)
    existing = plan_log.get_commit(plan.topic, plan.partition, plan.start)
    if existing is not None:
        return existing  # already committed: a replayed run is a no-op

    low, _high = watermarks(consumer, plan.topic, plan.partition, timeout=30)
    if plan.start < low:
        plan_log.record_gap(plan.topic, plan.partition, plan.start, low)
        raise RetentionGapError(
            f"{plan.plan_id}: offsets {plan.start}..{low - 1} expired before they were drained "
            f"(log start offset {low}); gap recorded under _ingest/gaps/. Refusing to skip silently.")

    platform = platform_of(plan.topic)
    ctx = fastpath.Context(plan.topic, plan.partition, platform, frozenset(platforms),
                           reference_ms=int(plan.planned_at * 1000), limits=limits)
    files, qfiles, last_offset = [], [], plan.start - 1
    for part, (results, last_offset) in enumerate(_convert_parts(consumer, plan, settings, low, ctx)):
        for dt, hour, rows in fastpath.split_by_hour([r.posts for r in results]):
            key = raw_file_key(platform, dt, hour, plan, part)
            store.put(key, parquet_bytes(rows))
            files.append({"key": key, "rows": rows.num_rows, "partition_key": hour_partition_key(dt, hour)})
        quarantined = [row for r in results for row in r.quarantine]
        if quarantined:
            key = quarantine_key(plan, part)
            store.put(key, parquet_bytes(pa.Table.from_pylist(quarantined, schema=QUARANTINE)))
            qfiles.append({"key": key, "rows": len(quarantined)})
        del results, quarantined
    commit = Commit(
        topic=plan.topic, partition=plan.partition, start=plan.start, end=plan.end,
        rows=sum(f["rows"] for f in files), quarantined=sum(q["rows"] for q in qfiles), files=files,
        quarantine_files=qfiles, partition_keys=sorted({f["partition_key"] for f in files}),
        last_offset_read=last_offset,
    )
    if not plan_log.commit(commit):
        # a concurrent run of the same plan committed first; its files are identical
        commit = plan_log.get_commit(plan.topic, plan.partition, plan.start) or commit
    if settings.commit_group_offsets:
        try:  # for lag dashboards only; the lake's commit log is the source of truth
            consumer.commit(offsets=[TopicPartition(plan.topic, plan.partition, plan.end)], asynchronous=False)
        except KafkaException as exc:
            log.warning("could not commit group offset for %s: %s", plan.plan_id, exc)
    return commit
