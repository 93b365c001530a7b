"""``reputation-pipeline run --until-idle``: the whole chain, headless.

It evaluates the real ``kafka_posts_sensor`` and executes the run requests with
the real ``ingest_job``, then materializes the touched hour partitions with the
same asset code the daemon would run, against a Dagster instance
(``DAGSTER_HOME``) so runs, materializations and checks show in the UI.

Two cadences (docs/operations.md, "Alert latency"):

- every cycle, the hours that got posts and can still page someone (window
  within ``REPUTATION_ALERT_HORIZON_HOURS``) go through ``micro_batch_job``, one
  run per contiguous range: scores, the dbt models and seeds on the alert path
  (no dbt tests) and ``brand_alerts``;
- when ``run_until_idle`` finds nothing left to ingest, and every
  ``REPUTATION_FULL_BUILD_INTERVAL_S`` (default 600 s) in a loop that never
  idles, every hour touched since the last full build goes through
  ``aggregation_job``: the full ``dbt build`` with every dbt
  test as an asset check, ``published_marts`` and ``brand_alerts`` again (which
  publishes nothing twice). Hours older than the horizon (late posts, whose
  alerts are recorded as history and never published) are scored and
  aggregated here, off the alert path.

``run_until_idle`` repeats cycles until a tick plans nothing, then runs the
full build."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import dagster as dg

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
KEY_FORMAT = "%Y-%m-%d-%H:%M"
FULL_BUILD_INTERVAL_ENV = "REPUTATION_FULL_BUILD_INTERVAL_S"


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
    hours = sorted(datetime.strptime(p, KEY_FORMAT) for p in partitions)
    ranges: list[list[datetime]] = []
    for h in hours:
        if ranges and h - ranges[-1][1] <= timedelta(hours=max_gap_hours):
            ranges[-1][1] = h
        else:
            ranges.append([h, h])
    return [(a.strftime(KEY_FORMAT), b.strftime(KEY_FORMAT)) for a, b in ranges]


def split_by_horizon(partitions: set[str], horizon: datetime | None) -> tuple[set[str], set[str]]:
    """(hours whose window ends after the alerting horizon: alerts may still be
    published, so they are on the alert path; older hours: history only)."""
    if horizon is None:
        return set(partitions), set()
    live = {p for p in partitions
            if datetime.strptime(p, KEY_FORMAT).replace(tzinfo=timezone.utc) + timedelta(hours=1) > horizon}
    return live, set(partitions) - live


def _alerts_published(result) -> int:
    # a ranged run reports the run's total on every partition's materialization
    return max((m.metadata["published"].value for m in _materialized(result, "brand_alerts")), default=0)


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, first: str, last: str):
    res = defs.get_job_def(job).execute_in_process(instance=instance, tags={RANGE_START: first, RANGE_END: last},
                                                   raise_on_error=False)
    if not res.success:
        raise RuntimeError(f"{job} failed for [{first}, {last}] (run {res.run_id})")
    return res


def micro_batch(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str,
                run_ids: list[str] | None = None) -> int:
    """Scores, the alert path of dbt (models and seeds, no tests) and brand_alerts over
    [first, last] in one run; returns alerts published."""
    res = _run(defs, instance, "micro_batch_job", first, last)
    if run_ids is not None:
        run_ids.append(res.run_id)
    return _alerts_published(res)


def score(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> None:
    _run(defs, instance, "scoring_job", first, last)


def aggregate(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> int:
    """The full aggregation over [first, last] in one run: dbt build with every test as
    an asset check, published marts and alerts; returns alerts published."""
    return _alerts_published(_run(defs, instance, "aggregation_job", first, last))


def downstream(defs: dg.Definitions, instance: dg.DagsterInstance, partitions: set[str], log=print) -> dict:
    """Backfill the given hours (e.g. after ``reputation-pipeline import``): per contiguous
    range one scoring_job run, then one aggregation_job run (every dbt test as a check,
    published marts, alerts)."""
    if not partitions:
        return {}
    started = time.monotonic()
    ranges = contiguous_ranges(partitions)
    for lo, hi in ranges:  # the models load once per run
        score(defs, instance, lo, hi)
    scored_s = time.monotonic() - started
    published = sum(aggregate(defs, instance, lo, hi) for lo, hi in ranges)
    return {"scored_partitions": len(partitions), "scoring_s": round(scored_s, 1), "ranges": ranges,
            "aggregation_s": round(time.monotonic() - started - scored_s, 1), "alerts_published": published}


def full_build_interval_s() -> float:
    return float(os.environ.get(FULL_BUILD_INTERVAL_ENV) or 600)


class Driver:
    """The headless loop's state: the sensor cursor, the hours touched since the last
    full build (``unchecked``) and the late hours not scored yet (``unscored``)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, log=print,
                 full_build_every_s: float | None = None):
        # Headless, the cycle is the batching: a tick plans every backlog at once instead of
        # waiting for a minimum batch size (REPUTATION_INGEST_MIN_RECORDS set explicitly wins).
        # The posts that arrive while a cycle runs make the next batch; waiting up to
        # REPUTATION_INGEST_MAX_DELAY_S more on top of it would only add latency.
        os.environ.setdefault("REPUTATION_INGEST_MIN_RECORDS", "1")
        self.defs, self.instance, self.log = defs, instance, log
        self.cursor: str | None = None
        self.unchecked: set[str] = set()
        self.unscored: set[str] = set()
        self.full_build_every_s = full_build_interval_s() if full_build_every_s is None else full_build_every_s
        self.last_full_build = time.monotonic()

    def downstream(self, partitions: set[str]) -> dict:
        """The alert path for the touched hours that can still page someone."""
        from reputation_pipeline.alerts.assets import alerting_horizon

        if not partitions:
            return {}
        started = time.monotonic()
        live, late = split_by_horizon(partitions, alerting_horizon({}))
        ranges = contiguous_ranges(live)
        run_ids: list[str] = []
        published = sum(micro_batch(self.defs, self.instance, lo, hi, run_ids) for lo, hi in ranges)
        self.unchecked |= partitions
        self.unscored |= late
        return {"partitions": len(partitions), "ranges": ranges, "late_partitions_deferred": len(late),
                "micro_batch_s": round(time.monotonic() - started, 1), "alerts_published": published,
                "run_ids": run_ids}

    def full_build_due(self) -> bool:
        return bool(self.unchecked) and time.monotonic() - self.last_full_build >= self.full_build_every_s

    def full_build(self) -> dict:
        """Score the deferred late hours, then the full aggregation of every hour touched
        since the last full build."""
        if not self.unchecked:
            return {}
        started = time.monotonic()
        for lo, hi in contiguous_ranges(self.unscored):
            score(self.defs, self.instance, lo, hi)
        ranges = contiguous_ranges(self.unchecked)
        published = sum(aggregate(self.defs, self.instance, lo, hi) for lo, hi in ranges)
        self.unchecked.clear()
        self.unscored.clear()
        self.last_full_build = time.monotonic()
        return {"full_build_ranges": ranges, "full_build_s": round(time.monotonic() - started, 1),
                "alerts_published": published}

    def cycle(self) -> tuple[CycleSummary, dict]:
        """One sensor tick, its ingest runs, the alert path for what they touched, and the
        full build when it is due."""
        summary, self.cursor = ingest_cycle(self.defs, self.instance, self.cursor, self.log)
        down = self.downstream(summary.partitions)
        if self.full_build_due():
            full = self.full_build()
            down = {**down, **full, "alerts_published": down.get("alerts_published", 0) + full["alerts_published"]}
        return summary, down


def run_until_idle(defs: dg.Definitions, instance: dg.DagsterInstance, *, max_cycles: int = 100, log=print) -> dict:
    driver = Driver(defs, instance, log)
    totals = {"cycles": 0, "ingest_runs": 0, "rows": 0, "quarantined": 0, "partitions": 0,
              "alerts_published": 0, "ranges": []}
    touched: set[str] = set()
    for _ in range(max_cycles):
        summary, down = driver.cycle()
        if summary.ingest_runs == 0:
            break
        touched |= summary.partitions
        totals["cycles"] += 1
        totals["ingest_runs"] += summary.ingest_runs
        totals["rows"] += summary.rows
        totals["quarantined"] += summary.quarantined
        totals["partitions"] += len(summary.partitions)
        totals["alerts_published"] += down.get("alerts_published", 0)
        log(f"cycle {totals['cycles']}: {summary.rows} posts ({summary.quarantined} quarantined) into "
            f"{len(summary.partitions)} hour partitions in {summary.seconds:.1f}s; "
            f"{ {k: v for k, v in down.items() if k != 'run_ids'} }")
    full = driver.full_build()  # idle: the tests, published marts and the late hours
    if full:
        totals["alerts_published"] += full["alerts_published"]
        log(f"idle: full build {full}")
    totals["ranges"] = contiguous_ranges(touched)
    return totals
