"""The Dagster instance the headless driver and the demo record runs in."""
from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

# The instance a new DAGSTER_HOME gets (`reputation-pipeline dev`, `run`, `demo`), sized for
# a 2-core machine; docs/operations.md says what to raise on larger ones.
# - pools: one slot per pool: one DuckDB writer (`duckdb`), one encoder (`encoder`).
# - run queue: at most 3 runs at once, one per lane (ingest, live, catchup; the live
#   sensor also waits for its lane's run): the queue stays bounded whatever the input rate.
# - run launcher: Dagster's subprocess launcher with a worker health check
#   (pipeline/launcher.py), so run monitoring fails the runs whose process died and
#   run_retries re-executes them.
# - runs and events in SQLite under history/, with pooled connections and one event-log
#   file (pipeline/storage.py). Production instances name Postgres storage here instead.
# - sensors on threads: a slow Kafka metadata call never delays the live sensor.
DAGSTER_YAML = """\
run_storage:
  module: reputation_pipeline.pipeline.storage
  class: PooledSqliteRunStorage
  config:
    base_dir: {history}
event_log_storage:
  module: reputation_pipeline.pipeline.storage
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {event_log}
run_launcher:
  module: reputation_pipeline.pipeline.launcher
  class: LocalRunLauncher
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 3
    tag_concurrency_limits:
      - key: reputation/lane
        value:
          applyLimitPerUniqueValue: true
        limit: 1
      - key: dagster/job_name
        value: ingest_job
        limit: 1
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
  start_timeout_seconds: 120
  max_resume_run_attempts: 0
  # a run whose process died holds its pool slots (encoder, duckdb) until freed here
  free_slots_after_run_end_seconds: 10
run_retries:
  enabled: true
  max_retries: 2
sensors:
  use_threads: true
  num_workers: 4
retention:
  sensor:
    purge_after_days:
      skipped: 1
      failure: 7
      success: 7
telemetry:
  enabled: false
"""


def dagster_yaml(home: Path) -> str:
    """The instance configuration of a new DAGSTER_HOME."""
    history = home.resolve() / "history"
    return DAGSTER_YAML.format(history=json.dumps(str(history)), event_log=json.dumps(str(history / "event_log")))


def ensure_dagster_home(default: str = ".dagster") -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():  # an existing home keeps its own configuration (and history)
        cfg.write_text(dagster_yaml(home))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    return dg.DagsterInstance.get()



class HeadlessInstance(dg.DagsterInstance):
    """The instance class of the headless driver's stages (see ``headless_instance``)."""

    def get_yaml_python_handlers(self):
        # Dagster calls logging.config.dictConfig at every run start, even without any
        # ``python_logs`` handler configured. dictConfig shuts every logging handler of the
        # process down under the logging module's lock: with a run emitting events on another
        # thread (its handler lock held, waiting for the module lock) the two threads deadlock.
        if not self.get_python_log_dagster_handler_config():
            return []
        return super().get_yaml_python_handlers()


def headless_instance(instance: dg.DagsterInstance) -> HeadlessInstance:
    """Another instance object on the same storage (runs, event log, schedules), for one of
    the headless driver's two threads: a ``HeadlessInstance`` without compute-log capture.
    Capture swaps the process's stdout/stderr file descriptors for the whole run and spawns
    four helper processes (two ``tail``, two Python orphan watchers) per run: a fixed cost
    on every micro-batch, and unsafe with runs on two threads at once (each restores the
    descriptors it saw, so one run's log file could end up as the process's stdout). The
    structured event log still records every step."""
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import ConfigurableClassData

    ref = instance.get_ref()
    noop = ConfigurableClassData("dagster._core.storage.noop_compute_log_manager", "NoOpComputeLogManager", "{}")
    cls = ConfigurableClassData(__name__, HeadlessInstance.__name__, "{}")
    out = dg.DagsterInstance.from_ref(InstanceRef(**{**ref._asdict(), "compute_logs_data": noop,
                                                     "custom_instance_class_data": cls}))
    assert isinstance(out, HeadlessInstance)
    return out
