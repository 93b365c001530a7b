"""The Kafka sensor: reads watermarks only, records plans, requests runs.

A tick never polls messages (that would hang the daemon past the tick
timeout). Its cursor is only a hint that shortens listings; the plan log in
the lake is the source of truth, so a lost cursor re-derives the same state."""

import json
import time

import dagster as dg

from reputation_pipeline.ingest.assets import ingest_job
from reputation_pipeline.ingest.drain import metadata_consumer
from reputation_pipeline.ingest.kafka_client import KafkaResource
from reputation_pipeline.ingest.planner import PlanningPolicy
from reputation_pipeline.ingest.plans import PlanLog
from reputation_pipeline.ingest.tick import Batch, plan_tick, skipped_summary
from reputation_pipeline.resources import LakeResource, platform_selection
from reputation_pipeline import settings

RETRY_AFTER_S = 300.0  # a plan still uncommitted this long after planning is re-requested


def policy_from_env() -> PlanningPolicy:
    return PlanningPolicy(
        max_records=settings.INGEST_MAX_RECORDS.get(),
        min_records=settings.INGEST_MIN_RECORDS.get(),
        max_delay_s=settings.INGEST_MAX_DELAY_S.get(),
    )


def run_request(batch: Batch, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"drain_kafka_batch": {"config": {"topic": batch.topic, "plans": batch.refs()}}}},
        tags={"reputation/batch": batch.batch_id, "reputation/topic": batch.topic},
    )


def retry_requests(pending: list[Batch], now: float) -> list[dg.RunRequest]:
    """Pending plans older than RETRY_AFTER_S get a new run; the run key changes
    once per retry window so Dagster's run-key dedup does not swallow it.
    Two runs of one plan are harmless: same files, one conditional commit."""
    out = []
    for batch in pending:
        oldest = min(p.planned_at for p in batch.plans)
        if now - oldest >= RETRY_AFTER_S:
            out.append(run_request(batch, f"{batch.batch_id}#retry-{int(now // RETRY_AFTER_S)}"))
    return out


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Plans offset ranges on every social.posts.<platform> topic and requests one ingest run per batch.",
)
def kafka_posts_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    consumer = metadata_consumer(kafka.settings().client_config())
    now = time.time()
    tick = plan_tick(consumer, PlanLog(lake.open()), platform_selection(), policy_from_env(), cursor, now)
    for warning in tick.warnings:
        context.log.warning(warning)
    requests = [run_request(b, b.batch_id) for b in tick.new_batches]
    requests += retry_requests(tick.pending_batches, now)
    total_lag = sum(n for parts in tick.lag.values() for n in parts.values())
    if not requests:
        skipped = f"; {skipped_summary(tick.skipped)}" if tick.skipped else ""
        return dg.SensorResult(skip_reason=f"nothing to plan; lag {total_lag} offsets{skipped}",
                               cursor=json.dumps(tick.cursor))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(tick.cursor))
