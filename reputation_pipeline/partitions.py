"""Partitioning shared by every stage: event-time hours.

Raw posts, scores and the dbt models are partitioned by the hour of the post's
event time (UTC). Ingest admits event times from ``PARTITIONS_START`` to 24 h
after the plan's reference time (``ingest.validate.event_time_bounds_ms``) and
quarantines the rest, so every admitted post lands in an hour defined here:
``end_offset`` 25 covers the current hour and the 24 after it (a plan's
reference time is never later than now).
"""
import dagster as dg

PARTITIONS_START = "2000-01-01-00:00"

hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=PARTITIONS_START, end_offset=25, timezone="UTC"
)


def hour_partition_key(dt: str, hour: str | int) -> str:
    """'2026-11-26', 3 -> '2026-11-26-03:00' (the Dagster partition key)."""
    return f"{dt}-{int(hour):02d}:00"


def split_partition_key(key: str) -> tuple[str, str]:
    """'2026-11-26-03:00' -> ('2026-11-26', '03') as used in lake paths."""
    return key[:10], key[11:13]
