"""``reputation-pipeline dev``: the Dagster webserver and daemon on the project's instance.

It runs ``dagster dev`` on the code location, with ``DAGSTER_HOME`` (default
``./.dagster``) given the project's instance configuration when it has none
(pipeline/instance.py: run queue, pools, run monitoring and retries sized for 2 cores).
The sensors then drain Kafka and request the live runs by themselves; no other command
is needed. What the webserver, the daemon, the runs and dbt print goes to
``$DAGSTER_HOME/dev.log`` (``--verbose``: to the terminal too); the terminal shows
what a person watches for: the alerts as they arrive and, when it changes, how many runs
are queued and in flight."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from reputation_pipeline import settings

STATUS_EVERY_S = 5.0


def dagster_cmd(port: int, host: str) -> list[str]:
    exe = Path(sys.executable).parent / "dagster"
    base = [str(exe)] if exe.exists() else [shutil.which("dagster") or "dagster"]
    return [*base, "dev", "-m", "reputation_pipeline.definitions", "-p", str(port), "-h", host]


def _follow_alerts(console, stop: threading.Event) -> None:
    from reputation_pipeline.alerts.cli import tail
    from reputation_pipeline.alerts.render import alert_line
    from reputation_pipeline.ingest.kafka_client import KafkaSettings

    class Out:
        def write(self, text: str) -> int:
            import json

            for line in text.splitlines():
                if line.strip():
                    console.print(alert_line(json.loads(line)))
            return len(text)

        def flush(self) -> None:
            pass

    topic = settings.ALERTS_TOPIC.get()
    while not stop.is_set():
        try:
            tail(KafkaSettings.from_env(), topic, as_json=True, out=Out(), idle_timeout=None, stop=stop)
        except Exception as exc:  # noqa: BLE001 -- the broker may not be up yet; keep following
            console.print(f"[yellow]alerts: cannot follow {topic} ({type(exc).__name__}); retrying[/]",
                          markup=True, highlight=False)
            stop.wait(5)


def _runs_summary(instance) -> str:
    import dagster as dg

    queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    running = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING,
                                                              dg.DagsterRunStatus.STARTED]))
    done = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    failed = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    return f"runs: {running} in flight, {queued} queued, {done} succeeded, {failed} failed"


def run_dev(port: int = 3000, host: str = "127.0.0.1", verbose: bool = False) -> int:
    import warnings

    from rich.console import Console

    # this process only follows the topic and counts runs: Dagster's beta/preview notes about
    # the definitions belong in the log, not on the operator's screen
    warnings.filterwarnings("ignore", module="dagster")

    from reputation_pipeline.pipeline.instance import ensure_dagster_home

    console = Console(highlight=False)
    home = ensure_dagster_home()
    log_path = home / "dev.log"  # not under logs/: dagster dev clears that folder
    out = None if verbose else open(log_path, "ab")  # noqa: SIM115 -- open for the child's lifetime
    # SIGINT as by default in dagster dev and its children even when this command was started in
    # the background (which ignores SIGINT): dagster dev stops its processes with it
    proc = subprocess.Popen(dagster_cmd(port, host), stdout=out, stderr=subprocess.STDOUT if out else None,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # paths and settings are printed as they are, never read as rich markup
    console.print(f"Dagster UI: http://{host}:{port}   instance: {home}   "
                  f"lake: {settings.LAKE.get()}", markup=False)
    if out is not None:
        console.print(f"webserver, daemon, run and dbt logs: {log_path} (--verbose shows them here)", markup=False)
    stop = threading.Event()
    threading.Thread(target=_follow_alerts, args=(console, stop), daemon=True, name="alerts").start()

    def forward(_signum, _frame):
        proc.send_signal(signal.SIGINT)  # dagster dev shuts its processes down on SIGINT

    # also when started in the background, where SIGINT is ignored by default
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    last = ""
    instance = None
    try:
        while proc.poll() is None:
            time.sleep(STATUS_EVERY_S)
            try:
                if instance is None:
                    import dagster as dg

                    instance = dg.DagsterInstance.get()
                line = _runs_summary(instance)
            except Exception:  # noqa: BLE001 -- the storage may still be initialising
                continue
            if line != last:
                console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}")
                last = line
    finally:
        stop.set()
        rc = proc.wait()
        if out is not None:
            out.close()
    console.print(f"dagster dev exited ({rc})")
    return 0 if rc in (0, -signal.SIGINT, -signal.SIGTERM) else rc
