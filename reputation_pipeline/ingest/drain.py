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

import io
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from reputation_pipeline.ingest.kafka_client import platform_of
from reputation_pipeline.ingest.plans import Commit, Plan, PlanLog
from reputation_pipeline.ingest.validate import Limits, Rejection, validate_post
from reputation_pipeline.lake.schemas import QUARANTINE, RAW_POSTS
from reputation_pipeline.lake.store import LakeStore
from reputation_pipeline.partitions import hour_partition_key

log = logging.getLogger(__name__)

CONSUMER_GROUP = "reputation-pipeline-ingest"


class RetentionGapError(RuntimeError):
    """The planned range starts below the log-start offset: data expired unread."""


class DrainStalledError(RuntimeError):
    """The broker stopped returning the planned range (no progress for too long)."""


@dataclass
class DrainSettings:
    consume_batch: int = 10_000
    stall_timeout_s: float = 120.0
    compression: str = "zstd"
    row_group_size: int = 50_000
    commit_group_offsets: bool = True


def raw_file_key(platform: str, dt: str, hour: str, plan: Plan) -> str:
    return (f"raw/posts/platform={platform}/dt={dt}/hour={hour}/"
            f"{plan.topic}-p{plan.partition}-{plan.start:020d}-{plan.end:020d}.parquet")


def quarantine_key(plan: Plan) -> str:
    return f"quarantine/topic={plan.topic}/p={plan.partition}/{plan.topic}-p{plan.partition}-{plan.start:020d}-{plan.end:020d}.parquet"


def _parquet_bytes(rows: list[dict], schema: pa.Schema, settings: DrainSettings) -> bytes:
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=settings.compression, row_group_size=settings.row_group_size)
    return buf.getvalue()


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
        "queued.max.messages.kbytes": 65536,  # bounds librdkafka's prefetch memory
    })


def read_range(consumer: Consumer, plan: Plan, settings: DrainSettings, log_start: int):
    """Yield messages with ``start <= offset < end``, tolerating offset gaps."""
    tp = TopicPartition(plan.topic, plan.partition, plan.start)
    consumer.assign([tp])
    position, last_progress = plan.start, time.monotonic()
    while position < plan.end:
        msgs = consumer.consume(num_messages=min(settings.consume_batch, plan.end - position), timeout=1.0)
        progressed = False
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
            yield msg
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

    low, _high = consumer.get_watermark_offsets(TopicPartition(plan.topic, plan.partition), timeout=30)
    if plan.start < low:
        plan_log.record_gap(plan.topic, plan.partition, plan.start, low)
        raise RetentionGapError(
            f"{plan.plan_id}: offsets {plan.start}..{low - 1} expired before they were drained "
            f"(log start offset {low}); gap recorded under _ingest/gaps/. Refusing to skip silently.")

    platform = platform_of(plan.topic)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    quarantined: list[dict] = []
    last_offset = plan.start - 1
    for msg in read_range(consumer, plan, settings, low):
        offset, (_ts_type, ts_ms) = msg.offset(), msg.timestamp()
        last_offset = offset
        value = msg.value()
        result = validate_post(value, topic_platform=platform, known_platforms=platforms,
                               kafka_timestamp_ms=ts_ms, limits=limits)
        kafka_ts = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
        if isinstance(result, Rejection):
            quarantined.append({"reason": result.reason, "detail": result.detail, "topic": plan.topic,
                                "partition": plan.partition, "offset": offset, "kafka_timestamp": kafka_ts,
                                "key": msg.key(), "raw": value})
            continue
        result.update(kafka_topic=plan.topic, kafka_partition=plan.partition, kafka_offset=offset,
                      kafka_timestamp=kafka_ts)
        et = result["event_time"]
        groups[(et.strftime("%Y-%m-%d"), et.strftime("%H"))].append(result)

    files = []
    for (dt, hour), rows in sorted(groups.items()):
        key = raw_file_key(platform, dt, hour, plan)
        store.put(key, _parquet_bytes(rows, RAW_POSTS, settings))
        files.append({"key": key, "rows": len(rows), "partition_key": hour_partition_key(dt, hour)})
    qfiles = []
    if quarantined:
        key = quarantine_key(plan)
        store.put(key, _parquet_bytes(quarantined, QUARANTINE, settings))
        qfiles.append({"key": key, "rows": len(quarantined)})

    commit = Commit(
        topic=plan.topic, partition=plan.partition, start=plan.start, end=plan.end,
        rows=sum(f["rows"] for f in files), quarantined=len(quarantined), files=files,
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
