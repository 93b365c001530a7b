"""``reputation-pipeline demo``: the main job on the embedded defaults.

Starts the local stack, streams synthetic posts for several brands and
platforms (calm first, then a crisis for one brand), runs the pipeline
(sensor → ingest → scoring → dbt → alerts) and prints the alerts as they
arrive on the Kafka topic, then a short summary."""
from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections import Counter

from reputation_pipeline import settings

CRISIS_BRAND = "acme"  # a brand id of the default brands seed
PLATFORMS = ("x", "reddit")


class _View:
    """What the terminal shows: a line per stage as it progresses (a rich live table), the
    alerts as they arrive, a summary. Everything else (Dagster's and dbt's logs, warnings)
    goes to the log file; ``verbose`` shows it here too."""

    def __init__(self, verbose: bool):
        from rich.console import Console

        self.verbose = verbose
        self.stages: dict[str, str] = {}
        self.live = None
        self._saved: tuple[int, int] | None = None
        # the view writes to the terminal as it was when the demo started (see capture_output)
        self.terminal = os.fdopen(os.dup(1), "w", buffering=1)
        self.console = Console(file=self.terminal, highlight=False)

    def capture_output(self, log_path) -> None:
        """Everything else written to this process's stdout and stderr, by Python, dbt's own
        console logger or librdkafka's C code, goes to ``log_path`` (file descriptors 1 and 2)."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)

    def release_output(self) -> None:
        if self._saved is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, saved in zip((1, 2), self._saved):
                os.dup2(saved, fd)
                os.close(saved)
            self._saved = None
        self.terminal.close()

    def say(self, msg: str) -> None:
        # message text from the pipeline and the environment: printed as is, never as rich markup
        self.console.print(f"{time.strftime('%H:%M:%S')} {msg}", markup=False)

    def stage(self, name: str, state: str) -> None:
        self.stages[name] = state
        if self.live is not None:
            self.live.update(self._table())

    def _table(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=False, box=None, pad_edge=False)
        for name, state in self.stages.items():
            table.add_row(Text(name, style="bold"), Text(state))  # Text: never read as markup
        return table

    def __enter__(self):
        if not self.verbose and self.console.is_terminal:
            from rich.live import Live

            # redirect_*: False, or rich would show what dbt and Dagster print to stdout and stderr
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None
        elif self.stages:  # no live view (a pipe, or --verbose): the stages once, at the end
            for name, state in self.stages.items():
                self.say(f"{name}: {state}")


def _log_setup() -> None:
    """Python logging and warnings (Dagster's, dbt's, this package's) on stderr: the log file,
    unless --verbose."""
    import logging
    import warnings

    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(sys.stderr)], force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def run_demo(calm_posts: int = 800, crisis_posts: int = 800, keep: bool = False, verbose: bool = False) -> int:
    from reputation_pipeline.pipeline.instance import ensure_dagster_home

    started = time.monotonic()
    view = _View(verbose)
    log_path = ensure_dagster_home() / "demo.log"
    if not verbose:
        view.say(f"logs of Dagster, dbt, Kafka clients and the stack: {log_path} (--verbose shows them here)")
        view.capture_output(log_path)
    _log_setup()
    try:
        return _run(view, started, calm_posts, crisis_posts, keep)
    finally:
        view.release_output()


def _run(view, started: float, calm_posts: int, crisis_posts: int, keep: bool) -> int:
    from reputation_pipeline.stack import local

    started_stack = None
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and local.reachable(os.environ["KAFKA_BOOTSTRAP_SERVERS"]):
        view.say(f"using the Kafka at {os.environ['KAFKA_BOOTSTRAP_SERVERS']} from the environment")
    else:
        cfg = local.StackConfig.from_env()
        before = local.status(cfg)
        if not (before["kafka"]["running"] and before["s3"]["running"]):
            view.say("starting the local stack (Kafka in KRaft mode + S3 endpoint) ...")
            started_stack = cfg
        local.up(cfg)
        os.environ.update(local.env_vars(cfg))
    try:
        return _demo(view, started, calm_posts, crisis_posts)
    finally:
        if started_stack is not None and not keep:
            local.down(started_stack)
            view.say("stopped the local stack it started (--keep leaves it running)")
        elif started_stack is not None:
            view.say(f"the local stack keeps running: `reputation-pipeline stack down` stops it ({started_stack.root})")


def _demo(view: _View, started: float, calm_posts: int, crisis_posts: int) -> int:
    from reputation_pipeline.alerts.cli import tail
    from rich.text import Text

    from reputation_pipeline.alerts.render import alert_line, plain
    from reputation_pipeline.ingest.kafka_client import KafkaSettings
    from reputation_pipeline.ingest.produce import ensure_topic, produce
    from reputation_pipeline.pipeline.driver import run_until_idle
    from reputation_pipeline.pipeline.instance import get_instance

    import logging

    kafka = KafkaSettings.from_env()
    instance = get_instance()
    view.say(f"Dagster instance: {os.environ['DAGSTER_HOME']}; lake: {settings.LAKE.get()}")
    view.say("loading the pipeline definitions (dbt manifest, models) ...")
    from reputation_pipeline.definitions import defs

    # show alerts as they arrive, from one consumer on the topic for the whole demo (the
    # topic exists first, so the consumer starts at its end before the first alert)
    seen: list[dict] = []
    topic = settings.ALERTS_TOPIC.get()
    ensure_topic(kafka, topic, 3)

    class Printer(io.TextIOBase):
        def write(self, line: str) -> int:
            if line.strip():
                alert = json.loads(line)
                seen.append(alert)
                view.console.print(alert_line(alert))  # rich Text: message values are never markup
                for post in (alert.get("explanation") or {}).get("top_posts", [])[:2]:
                    view.say(f"    top post ({plain(post.get('platform'), 32)}): {plain(post.get('url'))}")
                view.stage("alerts", f"{len(seen)} received on {topic}")
            return len(line)

    stop_following = threading.Event()
    follower = threading.Thread(target=tail, args=(kafka, topic), daemon=True,
                                kwargs={"from_beginning": False, "idle_timeout": None, "as_json": True, "out": Printer(),
                                        "stop": stop_following})
    follower.start()
    log = logging.getLogger("reputation_pipeline.demo")
    with view:
        view.stage("produce", "...")
        produced = 0
        for phase, count, crisis in (("calm", calm_posts, None), ("crisis", crisis_posts, CRISIS_BRAND)):
            for platform in PLATFORMS:
                # every post of the current hour: late posts spread over the last 36 h leave hours
                # with no post at all inside the alert horizon, and no_data then fires for every
                # brand on each (right for a live stream that stops, noise in a demo that starts)
                produce(kafka, platform, count, crisis_brand=crisis, crisis_share=0.4, progress=False, late_share=0.0)
                produced += count
                view.stage("produce", f"{produced} posts on {', '.join(PLATFORMS)}"
                           + (f", the last {crisis_posts * len(PLATFORMS)} with a crisis for {crisis!r}" if crisis else ""))
        view.stage("ingest", "waiting for the sensor ...")

        def progress(totals: dict) -> None:
            runs = totals["runs_by_job"]
            view.stage("ingest", f"{totals['rows']} posts drained, {totals['quarantined']} quarantined "
                                 f"({runs.get('ingest_job', 0)} runs)")
            live = {job: n for job, n in runs.items() if job != "ingest_job"}
            view.stage("score + aggregate", f"{totals['partitions']} hour partitions, runs: "
                                            + (", ".join(f"{job} {n}" for job, n in sorted(live.items())) or "none yet"))

        # the sensors and their runs in this process, until idle (the daemon's path,
        # pipeline/driver.py); the runs' events go to the instance (the UI shows them)
        totals = run_until_idle(defs, instance, log=log.info, on_totals=progress,
                                console_log_level="INFO" if view.verbose else "CRITICAL")
        log.info("pipeline idle: %s", totals)
        time.sleep(4)  # let the follower print the last alerts
        stop_following.set()
        follower.join(timeout=30)
    from reputation_pipeline.ingest.drain import close_metadata_consumers

    close_metadata_consumers()  # before the stack goes away, or librdkafka logs its reconnects
    from rich.table import Table

    by_brand = Counter((plain(a.get("brand_name") or a.get("brand"), 40), plain(a.get("rule"), 40),
                        plain(a.get("status"), 16)) for a in seen)
    table = Table(title=f"{len(seen)} alerts on {topic} after {time.monotonic() - started:.0f} s", title_justify="left")
    for column in ("brand", "rule", "status", "alerts"):
        table.add_column(column, justify="right" if column == "alerts" else "left")
    for (brand, rule, status), n in sorted(by_brand.items()):
        table.add_row(Text(brand), Text(rule), Text(status), str(n))  # Text: never read as markup
    view.console.print(table)
    view.say("explore it: `reputation-pipeline dev` (the UI: runs, lineage, checks; the live pipeline on the daemon); "
             "`reputation-pipeline alerts tail --from-beginning`")
    return 0
