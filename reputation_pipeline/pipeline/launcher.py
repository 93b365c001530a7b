"""Dagster's default run launcher (a subprocess per run, on this machine), with the
worker health check that Dagster's run monitoring needs.

``DefaultRunLauncher`` cannot tell whether a run's process is still alive, so a run
whose process was killed (OOM killer, a SIGKILL of ``reputation-pipeline dev``, a
machine reboot) stays STARTED for ever: its ingest plans are re-requested only after
the sensor's retry delay, and the live lane waits on it. Here the run's worker is the
process that emitted its RUN_START event; with ``run_monitoring`` enabled the daemon asks
this launcher about every STARTED run and fails the ones whose process is gone, and
``run_retries`` then re-executes them (every stage is idempotent).

On Kubernetes, Docker or ECS use their launchers, which have their own health checks."""
from __future__ import annotations

import psutil
import dagster as dg
# not re-exported by dagster: the launcher health-check protocol (guarded by
# test_dagster_daemon.py's restart test, which fails if the protocol changes)
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int | None, float | None]:
    """(pid, start timestamp) of the process that started the run, from its RUN_START event."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    if not records:
        return None, None
    entry = records[0].event_log_entry
    return (entry.dagster_event.pid if entry.dagster_event else None), entry.timestamp


def process_alive(pid: int, started_at: float) -> bool:
    """The process exists and is not a newer one that reused the pid."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started_at + 1.0
    except psutil.NoSuchProcess:
        return False


class LocalRunLauncher(dg.DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid, started_at = worker_pid(self._instance, run.run_id)
        if pid is None:  # not started yet: the start timeout covers a run that never starts
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event yet")
        if process_alive(pid, started_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) is gone")
