"""Dagster side of ingest: the assets the drain materializes and the run's op.

``raw_posts`` is hourly-partitioned by event time. One Kafka batch may touch
several hours (late posts), which a partitioned asset run cannot express, so
the drain runs as an op job that reports a materialization for every hour it
touched; downstream assets see exactly which partitions changed."""

from collections import defaultdict
from collections.abc import Iterator

import dagster as dg

from reputation_pipeline.ingest.batch import run_batch
from reputation_pipeline.ingest.kafka_client import KafkaResource, platform_of
from reputation_pipeline.partitions import hourly_partitions
from reputation_pipeline.resources import LakeResource, admitted_platforms, platform_selection
from reputation_pipeline.lake.layout import LAKE_GLOBS

OWNERS = ["team:data-platform"]

raw_posts = dg.AssetSpec(
    "raw_posts",
    partitions_def=hourly_partitions,
    group_name="ingest",
    kinds={"kafka", "parquet"},
    owners=OWNERS,
    description=(
        "Posts drained exactly once from the social.posts.<platform> Kafka topics into "
        "<lake>/raw/posts/platform=…/dt=…/hour=…, partitioned by event time. A file is "
        "complete once the commit manifest under _ingest/commits lists it."
    ),
    metadata={"lake_path": LAKE_GLOBS["raw_posts"]},
)

quarantined_posts = dg.AssetSpec(
    "quarantined_posts",
    group_name="ingest",
    kinds={"parquet"},
    owners=OWNERS,
    description="Messages that failed validation, with reason, topic, partition, offset and raw bytes.",
    metadata={"lake_path": "quarantine/topic=*/p=*/*.parquet"},
)


class IngestBatchConfig(dg.Config):
    """References to durable plans; payloads never travel in run config."""

    topic: str
    plans: list[list[int]]  # [[partition, start], ...]


@dg.op(tags={"kind": "kafka"}, out={})
def drain_kafka_batch(context: dg.OpExecutionContext, config: IngestBatchConfig, kafka: KafkaResource,
                      lake: LakeResource) -> Iterator[dg.AssetMaterialization]:
    outcome = run_batch(config.topic, config.plans, kafka=kafka.settings(), store=lake.open(),
                        platforms=admitted_platforms(platform_of(config.topic), platform_selection()))
    # yielded, not logged: Dagster stores a yielded event at once, a logged one only if the op returns
    yield from materialization_events(config.topic, outcome)
    for plan_id, exc in outcome.failures:
        context.log.error(f"plan {plan_id} not committed: {type(exc).__name__}: {exc}")
    outcome.raise_failures()


def materialization_events(topic: str, outcome) -> list[dg.AssetMaterialization]:
    """One materialization per touched hour, plus one for quarantine if any."""
    per_hour: dict[str, dict] = defaultdict(lambda: {"rows": 0, "files": []})
    for commit in outcome.commits:
        for f in commit.files:
            per_hour[f["partition_key"]]["rows"] += f["rows"]
            per_hour[f["partition_key"]]["files"].append(f["key"])
    ranges = [f"{c.topic}/{c.partition}: [{c.start}, {c.end})" for c in outcome.commits]
    events = [
        dg.AssetMaterialization(
            asset_key="raw_posts",
            partition=pk,
            metadata={
                "rows": dg.MetadataValue.int(stats["rows"]),
                "files": dg.MetadataValue.json(stats["files"]),
                "offset_ranges": dg.MetadataValue.json(ranges),
                "topic": topic,
                "consumer_lag": dg.MetadataValue.json({str(p): n for p, n in outcome.lag.items()}),
            },
        )
        for pk, stats in sorted(per_hour.items())
    ]
    quarantined = sum(c.quarantined for c in outcome.commits)
    if quarantined:
        events.append(dg.AssetMaterialization(
            asset_key="quarantined_posts",
            metadata={"quarantined_rows": dg.MetadataValue.int(quarantined), "topic": topic,
                      "files": dg.MetadataValue.json([q["key"] for c in outcome.commits for q in c.quarantine_files]),
                      "offset_ranges": dg.MetadataValue.json(ranges)},
        ))
    return events


@dg.job(
    description="Drain one planned batch of Kafka offset ranges into the raw-posts lake.",
    executor_def=dg.in_process_executor,  # one op: no second process to start
    tags={"team": "data-platform"},
)
def ingest_job():
    drain_kafka_batch()
