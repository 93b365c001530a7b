"""``brand_alerts``: evaluate the alert candidates of the partition's windows and
publish to Kafka ``reputation.alerts`` through the outbox (see evaluate.py)."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from reputation_pipeline.aggregation.warehouse import DUCKDB_POOL, WarehouseResource
from reputation_pipeline.alerts.evaluate import deliver, evaluate
from reputation_pipeline.alerts.publisher import AlertPublisherResource
from reputation_pipeline.alerts.store import AlertStore
from reputation_pipeline.partitions import hourly_partitions
from reputation_pipeline.resources import LakeResource
from reputation_pipeline import settings


PUBLISH_HISTORY_TAG = "reputation/publish_history"


def alerting_horizon(run_tags: dict, now: datetime | None = None) -> datetime | None:
    """Windows that ended before this are recorded, not published (a backfill
    never pages anyone), unless the run is tagged ``reputation/publish_history=true``.
    ``REPUTATION_ALERT_HORIZON_HOURS`` (default 6) sets how far back is still news."""
    if str(run_tags.get(PUBLISH_HISTORY_TAG, "")).lower() == "true":
        return None
    hours = settings.ALERT_HORIZON_HOURS.get()
    return (now or datetime.now(timezone.utc)) - timedelta(hours=hours)


@dg.asset(
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    deps=[dg.AssetKey("mart_alert_candidates"), dg.AssetKey("fct_brand_mentions"), dg.AssetKey("stg_alert_silences")],
    kinds={"kafka", "duckdb"},
    group_name="alerts",
    description="Alerts of the partition's windows (threshold, spike vs baseline, toxic high-reach post, no data) "
    "published to Kafka reputation.alerts; history in the warehouse table alerting.alert_history.",
)
def brand_alerts(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    lake: LakeResource,
    alert_publisher: AlertPublisherResource,
) -> dg.MaterializeResult:
    window = context.partition_time_window
    publish_after = alerting_horizon(context.run.tags)
    alert_publisher.ensure_topic()
    conn = warehouse.connect(lake.uri)
    try:
        evaluated = evaluate(conn, window.start, window.end, run_id=context.run_id, publish_after=publish_after)
        delivered = deliver(conn, alert_publisher)
        pending = len(AlertStore(conn).pending())
    finally:
        conn.close()
    context.log.info(f"alerts [{window.start}, {window.end}): {evaluated.decisions}; "
                     f"published {len(delivered.published)}, reconciled {len(delivered.reconciled)}")
    return dg.MaterializeResult(
        metadata={
            "candidates": evaluated.candidates,
            "firing_candidates": evaluated.firing,
            "decisions": dg.MetadataValue.json(evaluated.decisions),
            "recorded": evaluated.recorded,
            "published": len(delivered.published),
            "reconciled": len(delivered.reconciled),
            "pending_after_run": pending,
            "topic": alert_publisher.topic,
        }
    )


# Partitioned like its asset: an unpartitioned check on an hourly asset makes Dagster
# enumerate every hour since PARTITIONS_START (~236k keys, 6-10 s) on every evaluation.
@dg.asset_check(asset=brand_alerts, partitions_def=hourly_partitions,
                description="Every alert decided to notify has been acknowledged by Kafka (the whole outbox, "
                "evaluated after the run's windows).")
def alert_outbox_drained(warehouse: WarehouseResource, lake: LakeResource) -> dg.AssetCheckResult:
    conn = warehouse.connect(lake.uri)
    try:
        pending = AlertStore(conn).pending()
    finally:
        conn.close()
    return dg.AssetCheckResult(passed=not pending, metadata={"unsent": len(pending),
                                                             "alert_ids": [p.alert_id for p in pending[:20]]})
