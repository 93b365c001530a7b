"""``reputation-pipeline run --until-idle``: the whole chain, headless.

It evaluates the real ``kafka_posts_sensor`` and executes the run requests with
the real ``ingest_job``, then materializes the touched hour partitions with the
same asset code the daemon would run, against a Dagster instance
(``DAGSTER_HOME``) so runs, materializations and checks show in the UI.

Two stages (docs/operations.md, "Alert latency"), one after the other, or with
``REPUTATION_DRIVER_OVERLAP=1`` each on its own thread so that they overlap:

- scoring stage: one sensor tick, its ingest runs, then ``live_scoring_job`` over
  the hours that got posts and can still page someone (window within
  ``REPUTATION_ALERT_HORIZON_HOURS``); the scored hours are handed to
- alert stage: one ``micro_batch_job`` run per contiguous range of scored hours:
  the dbt models that depend on the window (no dbt tests) and ``brand_alerts``
  (``alert_path_job``, every dbt model and seed on the alert path, on the first
  run and whenever the seeds or the dbt project changed). Overlapped, the next
  micro-batch is ingested and scored meanwhile. Every DuckDB writer runs on this
  stage's thread, one at a time (and in the ``duckdb`` pool).
- when ``run_until_idle`` finds nothing left to ingest, and every
  ``REPUTATION_FULL_BUILD_INTERVAL_S`` (default 600 s) in a loop that never
  idles, every hour touched since the last full build goes through
  ``aggregation_job`` (on the alert stage's thread): the full ``dbt build`` with every dbt
  test as an asset check, ``published_marts`` and ``brand_alerts`` again (which
  publishes nothing twice). Hours older than the horizon (late posts, whose
  alerts are recorded as history and never published) are scored and
  aggregated here, off the alert path.

``run_until_idle`` repeats until a tick plans nothing and every scored hour went
through the alert stage, then runs the full build."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from reputation_pipeline.aggregation.dbt_inprocess import finish_parse_ahead
from reputation_pipeline.aggregation.reference import reference_fingerprint
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.pipeline.instance import headless_instance
from reputation_pipeline.resources import LakeResource

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
KEY_FORMAT = "%Y-%m-%d-%H:%M"
FULL_BUILD_INTERVAL_ENV = "REPUTATION_FULL_BUILD_INTERVAL_S"
# Overlap the scoring and alert stages on two threads. Off by default: on 2 cores dbt and
# DuckDB take a core from the encoder's two intra-op threads, which then score slower per
# post, and every micro-batch's latency grows (docs/operations.md).
OVERLAP_ENV = "REPUTATION_DRIVER_OVERLAP"


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
    job_def = defs.resolve_job_def(job)
    # a range run has no partition key, so Dagster would not apply the job's own config
    # (aggregation_job's merge_new_files: false): pass it, as for any of its partitions
    res = job_def.execute_in_process(instance=instance, tags={RANGE_START: first, RANGE_END: last},
                                     run_config=job_def.get_run_config_for_partition_key(first), raise_on_error=False)
    if not res.success:
        raise RuntimeError(f"{job} failed for [{first}, {last}] (run {res.run_id})")
    return res


def score(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> None:
    _run(defs, instance, "scoring_job", first, last)


def aggregate(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> int:
    """The full aggregation over [first, last] in one run: dbt build with every test as
    an asset check, published marts and alerts; returns alerts published."""
    return _alerts_published(_run(defs, instance, "aggregation_job", first, last))


def full_build_interval_s() -> float:
    return float(os.environ.get(FULL_BUILD_INTERVAL_ENV) or 600)


def overlap_from_env() -> bool:
    return os.environ.get(OVERLAP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class Driver:
    """The headless loop's state: the sensor cursor, the scored hours waiting for the alert
    stage (``pending``), the hours touched since the last full build (``unchecked``) and
    the late hours not scored yet (``unscored``). ``run`` drives the two stages, in turn or
    overlapped on two threads."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, log=print,
                 full_build_every_s: float | None = None):
        # Headless, the cycle is the batching: a tick plans every backlog at once instead of
        # waiting for a minimum batch size (REPUTATION_INGEST_MIN_RECORDS set explicitly wins).
        # The posts that arrive while a cycle runs make the next batch; waiting up to
        # REPUTATION_INGEST_MAX_DELAY_S more on top of it would only add latency.
        os.environ.setdefault("REPUTATION_INGEST_MIN_RECORDS", "1")
        self.defs, self.log = defs, log
        # one instance object per stage (each thread its own storage connections), both
        # without compute-log capture (pipeline/instance.py)
        if instance.is_ephemeral:  # in-memory storage (tests): one object, the stages in turn
            self.scoring_instance = self.alert_instance = instance
            self.overlap_safe = False
        else:
            self.scoring_instance, self.alert_instance = headless_instance(instance), headless_instance(instance)
            self.overlap_safe = self.alert_instance.overlap_safe
        self.cursor: str | None = None
        self.pending: set[str] = set()
        self.unchecked: set[str] = set()
        self.unscored: set[str] = set()
        self.unscored_live: set[str] = set()  # ingested, scoring run failed: retried next cycle
        self.reference: str | None = None  # reference_fingerprint() of the last alert_path_job
        self.full_build_every_s = full_build_interval_s() if full_build_every_s is None else full_build_every_s
        self.last_full_build = time.monotonic()
        self.overlap_used: bool | None = None  # how the last run() ran the stages
        self._cv = threading.Condition()  # guards pending / unchecked / unscored
        self._scoring = threading.Lock()  # one scoring run at a time: the models are shared
        self._warehouse: contextlib.ExitStack | None = None  # the warehouse hold while micro-batches come

    # -- scoring stage ---------------------------------------------------------------
    def ingest_and_score(self) -> tuple[CycleSummary, dict]:
        """One sensor tick, its ingest runs, and the scores of the live hours they touched;
        the scored hours are handed to the alert stage."""
        from reputation_pipeline.alerts.assets import alerting_horizon

        summary, self.cursor = ingest_cycle(self.defs, self.scoring_instance, self.cursor, self.log)
        live, late = split_by_horizon(summary.partitions, alerting_horizon({}))
        todo, self.unscored_live = live | self.unscored_live, set()
        started = time.monotonic()
        run_ids: list[str] = []
        try:
            with self._scoring:
                for lo, hi in contiguous_ranges(todo):
                    run_ids.append(_run(self.defs, self.scoring_instance, "live_scoring_job", lo, hi).run_id)
        except Exception:
            self.unscored_live = todo  # a re-run skips the files already scored
            raise
        finally:
            with self._cv:
                self.unchecked |= summary.partitions
                self.unscored |= late
                if not self.unscored_live:
                    self.pending |= todo
                    self._cv.notify_all()
        if not summary.partitions and not todo:
            return summary, {}
        return summary, {"partitions": len(summary.partitions), "late_partitions_deferred": len(late),
                         "scoring_s": round(time.monotonic() - started, 1), "run_ids": run_ids}

    # -- alert stage -----------------------------------------------------------------
    def take_pending(self, wait_s: float = 0.0) -> set[str]:
        with self._cv:
            if not self.pending and wait_s > 0:
                self._cv.wait(wait_s)
            out, self.pending = self.pending, set()
            return out

    def alert_path(self, partitions: set[str]) -> dict:
        """dbt and brand_alerts over the scored hours: micro_batch_job (the window's models),
        or alert_path_job (every model and seed on the path) when the reference data may
        have changed since this driver last built it."""
        if not partitions:
            return {}
        started = time.monotonic()
        ranges = contiguous_ranges(partitions)
        fingerprint = reference_fingerprint()
        job = "micro_batch_job" if fingerprint == self.reference else "alert_path_job"
        run_ids: list[str] = []
        published = 0
        try:
            for lo, hi in ranges:
                res = _run(self.defs, self.alert_instance, job, lo, hi)
                run_ids.append(res.run_id)
                published += _alerts_published(res)
        except Exception:
            self.reference = None  # whatever failed, rebuild the reference nodes next time
            with self._cv:
                self.pending |= partitions
            raise
        self.reference = fingerprint
        return {"alert_partitions": len(partitions), "ranges": ranges, "alert_job": job,
                "micro_batch_s": round(time.monotonic() - started, 1), "alerts_published": published,
                "run_ids": run_ids}

    def full_build_due(self) -> bool:
        return bool(self.unchecked) and time.monotonic() - self.last_full_build >= self.full_build_every_s

    def full_build(self) -> dict:
        """Score the deferred late hours, then the full aggregation of every hour touched
        since the last full build (on the alert stage's thread: it writes the warehouse)."""
        with self._cv:
            unchecked, unscored = set(self.unchecked), set(self.unscored)
        if not unchecked:
            return {}
        started = time.monotonic()
        fingerprint = reference_fingerprint()
        with self._scoring:
            for lo, hi in contiguous_ranges(unscored):
                score(self.defs, self.alert_instance, lo, hi)
        ranges = contiguous_ranges(unchecked)
        try:
            published = sum(aggregate(self.defs, self.alert_instance, lo, hi) for lo, hi in ranges)
        except Exception:
            self.reference = None
            raise
        self.reference = fingerprint  # the full build rebuilt every node
        with self._cv:
            self.unchecked -= unchecked
            self.unscored -= unscored
        self.last_full_build = time.monotonic()
        return {"full_build_ranges": ranges, "full_build_s": round(time.monotonic() - started, 1),
                "alerts_published": published}

    def _warehouse_resources(self, stack: contextlib.ExitStack) -> tuple[str, WarehouseResource, Any] | None:
        """(lake URI, warehouse, dbt) as a run gets them (the lake's and warehouse's EnvVar fields
        resolved, open in ``stack``; dbt's fields are plain settings); None unless dbt runs in this
        process against the project's warehouse."""
        resources = self.defs.resources or {}
        warehouse, lake, dbt = (resources.get(k) for k in ("warehouse", "lake", "dbt"))
        if not (isinstance(warehouse, WarehouseResource) and isinstance(lake, LakeResource)
                and getattr(dbt, "in_process", False)):
            return None
        return (stack.enter_context(lake.process_config_and_initialize_cm()).uri,
                stack.enter_context(warehouse.process_config_and_initialize_cm()), dbt)

    def parse_dbt_ahead(self) -> None:
        """On a warehouse dbt has not built yet, the first build would parse the whole dbt
        project on the alert path: start that parse now, in a subprocess that runs on the other
        core while the first scoring run loads the models (aggregation/dbt_inprocess.py
        ``parse_ahead``)."""
        try:
            with contextlib.ExitStack() as stack:
                found = self._warehouse_resources(stack)
                if found is not None and hasattr(found[2], "parse_ahead"):
                    uri, warehouse, dbt = found
                    if dbt.parse_ahead(warehouse.dbt_vars(uri)):
                        self.log("dbt: parsing the project ahead for a new warehouse")
        except Exception as exc:  # noqa: BLE001 -- only a head start: dbt parses in process as before
            self.log(f"dbt: no parse ahead ({type(exc).__name__}: {exc})")

    def hold_warehouse(self) -> None:
        """Keep the warehouse open between micro-batches (aggregation/warehouse.py ``hold``):
        the alert stage's steps then neither reopen it nor checkpoint it, 0.2-0.3 s of every
        micro-batch. Only with dbt in this process (a ``dbt`` subprocess could not open it)."""
        if self._warehouse is not None:  # held already
            return
        with contextlib.ExitStack() as stack:  # closed again if the file cannot be opened
            found = self._warehouse_resources(stack)
            if found is None:
                return
            uri, warehouse, _dbt = found
            stack.enter_context(warehouse.held(uri))
            self._warehouse = stack.pop_all()

    def release_warehouse(self) -> None:
        """Let other processes open the warehouse: the loop is idle or ends."""
        stack, self._warehouse = self._warehouse, None
        if stack is not None:
            stack.close()

    def alert_stage(self, wait_s: float = 0.0, keep_open: bool = False) -> dict:
        """The alert path for the hours scored so far (waiting up to ``wait_s`` for some),
        and the full build when it is due. ``keep_open`` (the loops of ``run``): the
        warehouse stays open after it while there is work, and is released when there is
        none."""
        partitions = self.take_pending(wait_s)
        if keep_open:
            if partitions or self.full_build_due():
                self.hold_warehouse()
            else:
                self.release_warehouse()
        down = self.alert_path(partitions)
        if self.full_build_due():
            full = self.full_build()
            down = {**down, **full, "alerts_published": down.get("alerts_published", 0) + full["alerts_published"]}
        return down

    # -- drivers ---------------------------------------------------------------------
    def run(self, *, until_idle: bool, stop: threading.Event | None = None, max_cycles: int = 100,
            poll_s: float = 1.0, retry_errors: bool = False,
            on_scored: Callable[[CycleSummary, dict], None] | None = None,
            on_alerted: Callable[[dict], None] | None = None, overlap: bool | None = None) -> None:
        """The scoring stage and then the alert stage, in turn; with ``overlap`` (default:
        ``REPUTATION_DRIVER_OVERLAP``) on two threads, so a micro-batch is ingested and
        scored while the previous one goes through dbt and alerts. Until
        ``stop`` is set, or with ``until_idle`` until a tick plans nothing (or after
        ``max_cycles`` ticks that ingested) and the alert stage has taken every scored
        hour. ``retry_errors``: log a failed stage and go on (the daemon's behaviour);
        otherwise the first error stops both stages and is raised here. An ephemeral
        instance or yaml-configured python_logs handlers (pipeline/instance.py) rule the
        overlap out."""
        stop = stop or threading.Event()
        overlap = overlap_from_env() if overlap is None else overlap
        if overlap and not self.overlap_safe:
            self.log("ephemeral instance or python_logs handlers configured: the stages run one after the other")
            overlap = False
        self.overlap_used = overlap
        self.parse_dbt_ahead()
        try:
            if not overlap:
                return self._run_serially(until_idle, stop, max_cycles, poll_s, retry_errors, on_scored, on_alerted)
            return self._run_overlapped(until_idle, stop, max_cycles, poll_s, retry_errors, on_scored, on_alerted)
        finally:
            self.release_warehouse()
            finish_parse_ahead()  # no dbt run needed it: let it finish rather than leave it behind

    def _run_overlapped(self, until_idle, stop, max_cycles, poll_s, retry_errors, on_scored, on_alerted) -> None:
        scoring_done = threading.Event()
        errors: list[BaseException] = []

        def failed(stage: str, exc: Exception) -> bool:
            if not retry_errors:
                return False
            self.log(f"{stage} stage failed ({type(exc).__name__}: {exc}); retrying")
            stop.wait(1)
            return True

        def scoring_loop() -> None:
            busy = 0
            try:
                while not stop.is_set() and busy < max_cycles:
                    try:
                        summary, scored = self.ingest_and_score()
                    except Exception as exc:
                        if failed("scoring", exc):
                            continue
                        raise
                    if on_scored:
                        on_scored(summary, scored)
                    if not summary.ingest_runs:
                        if until_idle:
                            break
                        stop.wait(poll_s)
                    elif until_idle:
                        busy += 1
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller
                errors.append(exc)
                stop.set()
            finally:
                scoring_done.set()
                with self._cv:
                    self._cv.notify_all()

        def alert_loop() -> None:
            try:
                while not stop.is_set():
                    with self._cv:
                        if scoring_done.is_set() and not self.pending:
                            break
                    try:
                        down = self.alert_stage(wait_s=poll_s, keep_open=True)
                    except Exception as exc:
                        if failed("alert", exc):
                            continue
                        raise
                    if down and on_alerted:
                        on_alerted(down)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=scoring_loop, name="scoring-stage", daemon=True),
                   threading.Thread(target=alert_loop, name="alert-stage", daemon=True)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except BaseException:
            stop.set()  # e.g. Ctrl-C: the stages stop after their current run
            raise
        if errors:
            raise errors[0]

    def _run_serially(self, until_idle, stop, max_cycles, poll_s, retry_errors, on_scored, on_alerted) -> None:
        busy = 0
        while not stop.is_set() and busy < max_cycles:
            try:
                summary, scored = self.ingest_and_score()
                if on_scored:
                    on_scored(summary, scored)
                down = self.alert_stage(keep_open=True)
            except Exception as exc:
                if not retry_errors:
                    raise
                self.log(f"cycle failed ({type(exc).__name__}: {exc}); retrying")
                stop.wait(1)
                continue
            if down and on_alerted:
                on_alerted(down)
            if not summary.ingest_runs:
                if until_idle and not self.pending:
                    return
                stop.wait(0 if until_idle else poll_s)
            elif until_idle:
                busy += 1


def run_until_idle(defs: dg.Definitions, instance: dg.DagsterInstance, *, max_cycles: int = 100, log=print,
                   overlap: bool | None = None) -> dict:
    driver = Driver(defs, instance, log)
    totals = {"cycles": 0, "ingest_runs": 0, "rows": 0, "quarantined": 0, "partitions": 0,
              "alerts_published": 0, "ranges": []}
    touched: set[str] = set()

    def on_scored(summary: CycleSummary, scored: dict) -> None:
        if not summary.ingest_runs:
            return
        touched.update(summary.partitions)
        totals["cycles"] += 1
        totals["ingest_runs"] += summary.ingest_runs
        totals["rows"] += summary.rows
        totals["quarantined"] += summary.quarantined
        totals["partitions"] += len(summary.partitions)
        log(f"cycle {totals['cycles']}: {summary.rows} posts ({summary.quarantined} quarantined) into "
            f"{len(summary.partitions)} hour partitions in {summary.seconds:.1f}s; "
            f"{ {k: v for k, v in scored.items() if k != 'run_ids'} }")

    def on_alerted(down: dict) -> None:
        totals["alerts_published"] += down.get("alerts_published", 0)
        log(f"alert path: { {k: v for k, v in down.items() if k != 'run_ids'} }")

    driver.run(until_idle=True, max_cycles=max_cycles, on_scored=on_scored, on_alerted=on_alerted, overlap=overlap)
    totals["overlap"] = driver.overlap_used
    full = driver.full_build()  # idle: the tests, published marts and the late hours
    if full:
        totals["alerts_published"] += full["alerts_published"]
        log(f"idle: full build {full}")
    totals["ranges"] = contiguous_ranges(touched)
    return totals
