"""``reputation-pipeline run --until-idle``: the daemon's live path, in this process.

A thin executor of the code location's own sensors. Each tick it evaluates
``kafka_posts_sensor`` and then ``live_pipeline_sensor`` as the daemon does (the same
planner, cursors, run keys, jobs and partition ranges; pipeline/live.py) and executes
every run request with ``execute_in_process`` on the instance in ``DAGSTER_HOME``,
where the daemon would queue it for a run launcher. So the two paths cannot diverge:
what the live path remembers is in the sensors' cursors (kept in the instance's cursor storage
under ``reputation/headless/<sensor>``, as the daemon keeps its own, so the next ``run`` resumes
where this one stopped), the lake's plan log and the instance's runs.

What only this process can add, it adds around the runs, never in place of them:
- the DuckDB warehouse is held open while runs keep coming (aggregation/warehouse.py
  ``hold``), so the live runs' steps neither reopen nor checkpoint it;
- on a warehouse dbt has not built yet, the dbt project is parsed ahead in a subprocess
  at the lowest CPU priority while the first scoring run loads the models;
- ``until_idle``: when a tick requests nothing, the catch-up is made due (the sensor's
  own state, ``live.catchup_due_now``), so the full dbt build with every test, the
  published marts and the late hours run before it stops."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from reputation_pipeline.aggregation.dbt_inprocess import finish_parse_ahead
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.pipeline.instance import headless_instance
from reputation_pipeline.pipeline.live import (CATCHUP_JOB, LANE_TAG, RANGE_END, RANGE_START, catchup_due_now,
                                               contiguous_ranges, split_by_horizon)
from reputation_pipeline.resources import LakeResource
from reputation_pipeline import settings

__all__ = ["RANGE_END", "RANGE_START", "Driver", "TickReport", "aggregate", "contiguous_ranges", "run_until_idle",
           "split_by_horizon"]

INGEST_SENSOR, LIVE_SENSOR = "kafka_posts_sensor", "live_pipeline_sensor"
CURSOR_KEY = "reputation/headless/{}"


@dataclass
class RunReport:
    job: str
    run_id: str
    success: bool
    seconds: float
    lane: str | None = None
    first: str | None = None
    last: str | None = None


@dataclass
class TickReport:
    runs: list[RunReport] = field(default_factory=list)
    rows: int = 0
    quarantined: int = 0
    partitions: set[str] = field(default_factory=set)
    alerts_published: int = 0
    seconds: float = 0.0

    @property
    def ingest_runs(self) -> int:
        return sum(1 for r in self.runs if r.job == "ingest_job" and r.success)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "quarantined": self.quarantined, "partitions": len(self.partitions),
                "alerts_published": self.alerts_published, "seconds": round(self.seconds, 1),
                "runs": [(r.job, r.first, r.last, round(r.seconds, 1)) if r.first else (r.job, round(r.seconds, 1))
                         for r in self.runs]}


def _materialized(result, asset: str) -> list[dg.AssetMaterialization]:
    return [e.event_specific_data.materialization for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
            and e.event_specific_data.materialization.asset_key == dg.AssetKey(asset)]


def _alerts_published(result) -> int:
    # a ranged run reports the run's total on every partition's materialization
    return max((m.metadata["published"].value for m in _materialized(result, "brand_alerts")), default=0)


def aggregate(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> int:
    """The full aggregation over [first, last] in one run (aggregation_job: dbt build with every
    test as an asset check, published marts and alerts); returns the alerts published."""
    job = defs.resolve_job_def("aggregation_job")
    res = job.execute_in_process(instance=instance, tags={RANGE_START: first, RANGE_END: last},
                                 run_config=job.get_run_config_for_partition_key(first), raise_on_error=False)
    if not res.success:
        raise RuntimeError(f"aggregation_job failed for [{first}, {last}] (run {res.run_id})")
    return _alerts_published(res)


class Driver:
    """Evaluates the sensors and executes their run requests, one tick at a time."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, log=print,
                 console_log_level: str | None = None):
        # Headless, the tick is the batching: it plans every backlog at once instead of waiting
        # for a minimum batch size (REPUTATION_INGEST_MIN_RECORDS set explicitly wins).
        os.environ.setdefault(settings.INGEST_MIN_RECORDS.name, "1")
        self.defs, self.log = defs, log
        # what the runs' console logger prints here (e.g. WARNING for the demo); every event is
        # in the instance's event log whatever this says
        self.console_log_level = console_log_level
        # without compute-log capture: it swaps the process's stdout/stderr and starts four
        # helper processes per run (pipeline/instance.py)
        self.instance = instance if instance.is_ephemeral else headless_instance(instance)
        keys = {name: CURSOR_KEY.format(name) for name in (INGEST_SENSOR, LIVE_SENSOR)}
        stored = self.instance.daemon_cursor_storage.get_cursor_values(set(keys.values()))
        self.cursors: dict[str, str | None] = {name: stored.get(key) for name, key in keys.items()}
        self._warehouse: contextlib.ExitStack | None = None

    # -- one tick ------------------------------------------------------------------------
    def evaluate(self, name: str) -> dg.SensorResult:
        sensor = self.defs.get_sensor_def(name)
        resources = {k: v for k, v in (self.defs.resources or {}).items() if k in sensor.required_resource_keys}
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursors[name], definitions=self.defs,
                                     resources=resources) as ctx:
            result = sensor(ctx)
        self._set_cursor(name, result.cursor)
        return result

    def _set_cursor(self, name: str, cursor: str | None) -> None:
        self.cursors[name] = cursor
        if cursor is not None:
            self.instance.daemon_cursor_storage.set_cursor_values({CURSOR_KEY.format(name): cursor})

    def execute(self, sensor_name: str, request: dg.RunRequest) -> tuple[RunReport, Any]:
        sensor = self.defs.get_sensor_def(sensor_name)
        job = self.defs.resolve_job_def(request.job_name or sensor.job_name)
        started = time.monotonic()
        run_config = dict(request.run_config)
        if self.console_log_level:
            run_config["loggers"] = {"console": {"config": {"log_level": self.console_log_level}}}
        result = job.execute_in_process(run_config=run_config, tags=request.tags, instance=self.instance,
                                        raise_on_error=False)
        report = RunReport(job.name, result.run_id, result.success, time.monotonic() - started,
                           request.tags.get(LANE_TAG), request.tags.get(RANGE_START), request.tags.get(RANGE_END))
        return report, result

    def tick(self, *, retry_errors: bool = False) -> TickReport:
        """One evaluation of each sensor and the runs it requests, in the daemon's order."""
        started = time.monotonic()
        out = TickReport()
        for name in (INGEST_SENSOR, LIVE_SENSOR):
            for request in self.evaluate(name).run_requests or []:
                if name == LIVE_SENSOR:
                    self.hold_warehouse()
                report, result = self.execute(name, request)
                out.runs.append(report)
                if not report.success:
                    msg = f"{report.job} run {report.run_id} failed; the sensor requests its work again"
                    if not retry_errors:
                        raise RuntimeError(msg)
                    self.log(msg)
                    continue
                for m in _materialized(result, "raw_posts"):
                    out.partitions.add(m.partition)
                    out.rows += m.metadata["rows"].value
                for m in _materialized(result, "quarantined_posts"):
                    out.quarantined += m.metadata["quarantined_rows"].value
                out.alerts_published += _alerts_published(result)
        out.seconds = time.monotonic() - started
        return out

    def catch_up_now(self) -> None:
        """Make the live sensor's catch-up due on its next evaluation."""
        self._set_cursor(LIVE_SENSOR, catchup_due_now(self.cursors[LIVE_SENSOR]))

    # -- around the runs -----------------------------------------------------------------
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
        core while the first scoring run loads the models (aggregation/dbt_inprocess.py)."""
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
        """Keep the warehouse open while live runs come (aggregation/warehouse.py ``hold``)."""
        if self._warehouse is not None:
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

    # -- the loop ------------------------------------------------------------------------
    def run(self, *, until_idle: bool, stop: threading.Event | None = None, max_ticks: int = 1000,
            poll_s: float = 1.0, retry_errors: bool = False,
            on_tick: Callable[[TickReport], None] | None = None) -> None:
        """Ticks until ``stop`` is set, or with ``until_idle`` until a tick requests nothing
        after the catch-up it made due has run. ``retry_errors``: log a failed run and go on
        (the daemon's behaviour: the sensor requests the work again); otherwise raise."""
        stop = stop or threading.Event()
        self.parse_dbt_ahead()
        caught_up = False
        try:
            for _ in range(max_ticks):
                if stop.is_set():
                    return
                report = self.tick(retry_errors=retry_errors)
                if on_tick is not None:
                    on_tick(report)
                if report.runs:
                    caught_up = caught_up and not any(r.job != CATCHUP_JOB for r in report.runs)
                    continue
                if until_idle:
                    if caught_up:
                        return
                    self.catch_up_now()
                    caught_up = True
                    continue
                self.release_warehouse()
                stop.wait(poll_s)
        finally:
            self.release_warehouse()
            finish_parse_ahead()  # no dbt run needed it: let it finish rather than leave it behind


def run_until_idle(defs: dg.Definitions, instance: dg.DagsterInstance, *, log=print, max_ticks: int = 1000,
                   console_log_level: str | None = None, on_totals=None) -> dict:
    """Tick the sensors and execute their runs until nothing is left; ``on_totals(totals)``
    after each tick that ran something (a progress view)."""
    driver = Driver(defs, instance, log, console_log_level=console_log_level)
    totals = {"ticks": 0, "ingest_runs": 0, "rows": 0, "quarantined": 0, "partitions": 0,
              "alerts_published": 0, "runs_by_job": {}, "ranges": []}
    touched: set[str] = set()

    def on_tick(report: TickReport) -> None:
        if not report.runs:
            return
        touched.update(report.partitions)
        totals["ticks"] += 1
        totals["ingest_runs"] += report.ingest_runs
        totals["rows"] += report.rows
        totals["quarantined"] += report.quarantined
        totals["partitions"] += len(report.partitions)
        totals["alerts_published"] += report.alerts_published
        for r in report.runs:
            totals["runs_by_job"][r.job] = totals["runs_by_job"].get(r.job, 0) + 1
        log(f"tick {totals['ticks']}: {report.as_dict()}")
        if on_totals is not None:
            on_totals(totals)

    driver.run(until_idle=True, max_ticks=max_ticks, on_tick=on_tick)
    totals["ranges"] = contiguous_ranges(touched)
    return totals
