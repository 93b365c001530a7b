"""``reputation-pipeline run --until-idle``: the whole chain, headless.

It evaluates the real ``kafka_posts_sensor`` and executes the run requests with
the real ``ingest_job``, then materializes the touched hour partitions with the
same asset code the daemon would run (``scoring_job`` per partition, then one
``aggregation_job`` run over the touched range), against a Dagster instance
(``DAGSTER_HOME``) so runs, materializations and checks show in the UI. It
repeats until a tick plans nothing and nothing is pending."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from dataclasses import dataclass, field

import dagster as dg

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@dataclass
class CycleSummary:
    ingest_runs: int = 0
    rows: int = 0
    quarantined: int = 0
    partitions: set[str] = field(default_factory=set)
    seconds: float = 0.0


def _materialized(result, asset: str) -> list[dg.AssetMaterialization]:
    return [e.event_specific_data.materialization for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
            and e.event_specific_data.materialization.asset_key == dg.AssetKey(asset)]


def ingest_cycle(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None, log=print) -> tuple[CycleSummary, str | None]:
    """One sensor tick and the runs it requests."""
    started = time.monotonic()
    sensor = defs.get_sensor_def("kafka_posts_sensor")
    job = defs.get_job_def("ingest_job")
    resources = {k: v for k, v in (defs.resources or {}).items() if k in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as ctx:
        result = sensor(ctx)
    summary = CycleSummary()
    for req in result.run_requests or []:
        run = job.execute_in_process(run_config=req.run_config, instance=instance, tags=req.tags, raise_on_error=False)
        if not run.success:
            # the plan stays pending; the next tick's retry (or this driver) runs it again
            log(f"ingest run {run.run_id} failed for {req.tags.get('reputation/batch')}; it will be retried")
            continue
        summary.ingest_runs += 1
        for m in _materialized(run, "raw_posts"):
            summary.partitions.add(m.partition)
            summary.rows += m.metadata["rows"].value
        for m in _materialized(run, "quarantined_posts"):
            summary.quarantined += m.metadata["quarantined_rows"].value
    summary.seconds = time.monotonic() - started
    return summary, result.cursor


def contiguous_ranges(partitions: set[str], max_gap_hours: int = 3) -> list[tuple[str, str]]:
    """Touched hours grouped into ranges; a post a month late does not drag every
    hour in between into the run. Small gaps are bridged (one run beats three)."""
    hours = sorted(datetime.strptime(p, "%Y-%m-%d-%H:%M") for p in partitions)
    ranges: list[list[datetime]] = []
    for h in hours:
        if ranges and h - ranges[-1][1] <= timedelta(hours=max_gap_hours):
            ranges[-1][1] = h
        else:
            ranges.append([h, h])
    fmt = "%Y-%m-%d-%H:%M"
    return [(a.strftime(fmt), b.strftime(fmt)) for a, b in ranges]


def downstream(defs: dg.Definitions, instance: dg.DagsterInstance, partitions: set[str], log=print) -> dict:
    """Score, then aggregate + alert, per contiguous range of touched hours: one run each."""
    if not partitions:
        return {}
    started = time.monotonic()
    ranges = contiguous_ranges(partitions)
    for lo, hi in ranges:  # the models load once per run
        res = defs.get_job_def("scoring_job").execute_in_process(instance=instance, tags={RANGE_START: lo, RANGE_END: hi})
        if not res.success:
            raise RuntimeError(f"scoring failed for [{lo}, {hi}] (run {res.run_id})")
    scored_s = time.monotonic() - started
    published = sum(aggregate(defs, instance, lo, hi) for lo, hi in ranges)
    return {"scored_partitions": len(partitions), "scoring_s": round(scored_s, 1), "ranges": ranges,
            "aggregation_s": round(time.monotonic() - started - scored_s, 1), "alerts_published": published}


def aggregate(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> int:
    """dbt, published marts and alerts over [first, last] in one run; returns alerts published."""
    agg = defs.get_job_def("aggregation_job").execute_in_process(
        instance=instance, tags={RANGE_START: first, RANGE_END: last})
    if not agg.success:
        raise RuntimeError(f"aggregation failed for [{first}, {last}] (run {agg.run_id})")
    # a ranged run reports the run's total on every partition's materialization
    return max((m.metadata["published"].value for m in _materialized(agg, "brand_alerts")), default=0)


def run_until_idle(defs: dg.Definitions, instance: dg.DagsterInstance, *, max_cycles: int = 100, log=print) -> dict:
    # Headless: flush every backlog at once instead of waiting for a minimum batch size.
    os.environ.setdefault("REPUTATION_INGEST_MIN_RECORDS", "1")
    cursor, totals = None, {"cycles": 0, "ingest_runs": 0, "rows": 0, "quarantined": 0, "partitions": 0,
                            "alerts_published": 0, "ranges": []}
    for _ in range(max_cycles):
        summary, cursor = ingest_cycle(defs, instance, cursor, log)
        if summary.ingest_runs == 0:
            break
        totals["cycles"] += 1
        totals["ingest_runs"] += summary.ingest_runs
        totals["rows"] += summary.rows
        totals["quarantined"] += summary.quarantined
        totals["partitions"] += len(summary.partitions)
        down = downstream(defs, instance, summary.partitions, log)
        totals["alerts_published"] += down.get("alerts_published", 0)
        totals["ranges"].extend(down.get("ranges", []))
        log(f"cycle {totals['cycles']}: {summary.rows} posts ({summary.quarantined} quarantined) into "
            f"{len(summary.partitions)} hour partitions in {summary.seconds:.1f}s; {down}")
    return totals
