"""The daemon path, as users run it: ``reputation-pipeline dev`` (the Dagster webserver
and daemon, sensors, the run queue, a subprocess per run) against the real broker and
S3 endpoint. A crisis for one brand alerts for that brand only; the whole process tree
SIGKILLed while a live run is in flight and started again loses and duplicates nothing,
and catches up; the run queue is empty at the end.

Every wait is for a protocol event (a run status, a materialization, an offset), each
bounded by a generous cap that only a hung pipeline reaches."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
from confluent_kafka import Consumer, TopicPartition

from reputation_pipeline.ingest.checks import commit_log_problems
from reputation_pipeline.ingest.kafka_client import topic_for
from reputation_pipeline.ingest.plans import PlanLog
from reputation_pipeline.ingest.produce import produce
from reputation_pipeline.lake.read import read_parquet_prefix
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.pipeline.launcher import LocalRunLauncher, worker_pid
from reputation_pipeline.pipeline.live import IN_PROGRESS
from reputation_pipeline.stack.local import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CAP_S = 900  # a hung pipeline, not a slow machine, reaches this
LIVE_JOBS = ("live_job", "live_full_job")


def wait_for(what: str, predicate, every_s: float = 1.0):
    deadline = time.monotonic() + CAP_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"gave up waiting for {what} after {CAP_S}s")


class Dev:
    """``reputation-pipeline dev`` in its own process group."""

    def __init__(self, env: dict, port: int, log: Path):
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "reputation_pipeline.cli", "dev", "--port", str(self.port)],
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the webserver", self._answers)

    def _answers(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=5) as resp:
                return resp.status == 200 and "dagster_version" in json.loads(resp.read())
        except OSError:
            return False

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # everything: webserver, daemon, code server, runs
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def read_topic(bootstrap: str, topic: str) -> list[dict]:
    """Every message on the topic up to its current end offsets."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error or not md.partitions:
            return []
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in md.partitions}
        todo = {p for p, (lo, hi) in ends.items() if hi > lo}
        c.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        out = []
        while todo:
            msg = c.poll(5)
            if msg is None or msg.error():
                continue
            out.append(json.loads(msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()][1]:
                todo.discard(msg.partition())
        return out
    finally:
        c.close()


def runs(instance, statuses=None, job=None) -> list[dg.DagsterRun]:
    filters = dg.RunsFilter(statuses=statuses or [], job_name=job)
    return list(instance.get_runs(filters=filters))


def caught_up(instance, store, platform, produced: int) -> bool:
    """Every produced post is committed, nothing is queued or running, and a live run
    started after the last ingest run ended has succeeded (it took the last hours)."""
    log = PlanLog(store)
    committed = sum(c.end - c.start for p in range(4) for c in log.commits(topic_for(platform), p))
    if committed < produced or runs(instance, list(IN_PROGRESS)):
        return False
    ingests = instance.get_run_records(dg.RunsFilter(job_name="ingest_job", statuses=[dg.DagsterRunStatus.SUCCESS]))
    if not ingests:
        return False
    last_ingest_end = max(r.end_time or 0 for r in ingests)
    lives = [r for job in LIVE_JOBS for r in instance.get_run_records(
        dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]))]
    return any(r.create_timestamp.timestamp() >= last_ingest_end for r in lives)


def test_daemon_path_alerts_survives_sigkill_and_drains_its_queue(kafka_settings, kafka_bootstrap, s3_lake_uri,
                                                                   tmp_path, platform, record_property, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()  # an empty DAGSTER_HOME: dev writes the project's instance config
    alerts_topic = f"alerts.{platform}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "REPUTATION_LAKE": s3_lake_uri, "REPUTATION_PLATFORMS": platform,
           "REPUTATION_ALERTS_TOPIC": alerts_topic, "REPUTATION_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
           "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    dev = Dev(env, free_port(), tmp_path / "dev.out")
    calm, crisis = 600, 1500
    produce(kafka_settings, platform, calm, partitions=4, progress=False, seed=11)
    try:
        dev.start()
        monkeypatch.setenv("DAGSTER_HOME", str(home))  # this process reads the same instance
        instance = dg.DagsterInstance.from_config(str(home))
        # mid-stream: kill every process while a live run is in flight, then start again
        wait_for("a live run in flight", lambda: any(
            r.job_name in LIVE_JOBS for r in runs(instance, [dg.DagsterRunStatus.STARTED])), every_s=0.2)
        dev.kill()
        dev.start()
        produce(kafka_settings, platform, crisis, partitions=4, progress=False, crisis_brand="acme",
                crisis_share=0.4, seed=12)
        store = open_lake(s3_lake_uri)
        wait_for("the daemon to catch up", lambda: caught_up(instance, store, platform, calm + crisis), every_s=2)

        # exactly once in the lake, whatever the kill interrupted
        raw = read_parquet_prefix(store, "raw/posts/", columns=["post_id"])
        assert raw.num_rows == calm + crisis
        assert len(pc.unique(raw["post_id"])) == calm + crisis
        for p in range(4):
            assert commit_log_problems(PlanLog(store).commits(topic_for(platform), p)) == []

        alerts = read_topic(kafka_bootstrap, alerts_topic)
        ids = Counter(a["alert_id"] for a in alerts)
        assert [a for a, n in ids.items() if n > 1] == [], "an alert was published twice"
        risk = [a for a in alerts if a.get("rule") != "no_data"]
        assert {a["brand"] for a in risk} == {"acme"}, risk
        assert not runs(instance, list(IN_PROGRESS)), "the run queue is not empty"
        killed = [r for r in runs(instance, [dg.DagsterRunStatus.FAILURE])
                  if r.job_name in LIVE_JOBS or r.job_name == "ingest_job"]
        all_runs = runs(instance)
        record_property("report", f"daemon path: {len(all_runs)} runs ({Counter(r.job_name for r in all_runs)}), "
                        f"{len(killed)} failed by the kill and retried, {len(risk)} risk alerts for acme")
    finally:
        dev.stop()


def test_local_launcher_health_check_sees_dead_workers(tmp_path):
    """The worker health check run monitoring relies on (pipeline/launcher.py): a run
    whose RUN_START came from a live process is RUNNING, one from a process that exited
    is FAILED. Guards the private launcher protocol it implements."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("run_launcher:\n  module: reputation_pipeline.pipeline.launcher\n"
                                       "  class: LocalRunLauncher\ntelemetry:\n  enabled: false\n")
    code = ("import dagster as dg\n"
            "@dg.op\ndef noop(): pass\n"
            "@dg.job\ndef j(): noop()\n"
            "print(j.execute_in_process(instance=dg.DagsterInstance.get()).run_id)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(home)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    dead_run_id = out.stdout.strip().splitlines()[-1]
    instance = dg.DagsterInstance.from_config(str(home))
    launcher = instance.run_launcher
    assert isinstance(launcher, LocalRunLauncher) and launcher.supports_check_run_worker_health
    pid, _ = worker_pid(instance, dead_run_id)
    assert pid is not None and pid != os.getpid()
    assert launcher.check_run_worker_health(instance.get_run_by_id(dead_run_id)).status.value == "FAILED"

    @dg.op
    def probe(context):
        return launcher.check_run_worker_health(context.instance.get_run_by_id(context.run_id)).status.value

    @dg.job
    def alive():
        probe()

    result = alive.execute_in_process(instance=instance)
    assert result.output_for_node("probe") == "RUNNING"
