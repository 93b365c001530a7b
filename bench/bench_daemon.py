"""The daemon path as users run it: ``reputation-pipeline dev`` on a fresh
``DAGSTER_HOME`` and lake, posts streamed straight to Kafka at a steady rate with
crises for several brands one after another (as bench_alert_latency.py), alerts
stamped by a consumer that follows the topic for the whole run.

Prints, from that path alone:
- detection p50/p95 (produce call of the post that made the stream meet the rule ->
  alert received; bench_alert_latency.first_met), and the first alert after each crisis;
- runs launched per minute, most runs in flight at once, queued runs over time (max, and
  the mean of the first and last third of the stream: a growing queue shows there);
- peak memory (RSS) of the whole process tree of ``reputation-pipeline dev``;
- where the time goes per run, by job: create -> RUN_START (queue, launch, imports,
  loading the code location), RUN_START -> end, and the steps.

    .venv/bin/python bench/bench_daemon.py --rate 20 --seconds 300
    .venv/bin/python bench/bench_daemon.py --rate 100 --seconds 1200
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_alert_latency import (crisis_schedule, follow_alerts, percentile, since_condition_met,  # noqa: E402
                                 stream_posts)

from reputation_pipeline.stack.local import free_port  # noqa: E402


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_costs(instance) -> dict:
    """Per job: runs, mean seconds from creation to RUN_START, RUN_START to the end, and per step."""
    import dagster as dg

    out: dict[str, dict] = {}
    for rec in instance.get_run_records():
        run = rec.dagster_run
        if run.status != dg.DagsterRunStatus.SUCCESS or not rec.start_time or not rec.end_time:
            continue
        job = out.setdefault(run.job_name, {"runs": 0, "to_start": [], "run": [], "steps": {}})
        job["runs"] += 1
        job["to_start"].append(rec.start_time - rec.create_timestamp.timestamp())
        job["run"].append(rec.end_time - rec.start_time)
        starts = {}
        for e in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}):
            if e.dagster_event.event_type_value == "STEP_START":
                starts[e.step_key] = e.timestamp
            elif e.step_key in starts:
                job["steps"].setdefault(e.step_key, []).append(e.timestamp - starts.pop(e.step_key))
    return {name: {"runs": j["runs"], "mean_create_to_start_s": round(statistics.mean(j["to_start"]), 1),
                   "mean_run_s": round(statistics.mean(j["run"]), 1),
                   "mean_steps_s": {k: round(statistics.mean(v), 1) for k, v in j["steps"].items()}}
            for name, j in sorted(out.items())}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=300.0, help="how long to stream posts")
    ap.add_argument("--crisis-at", type=float, default=60.0)
    ap.add_argument("--crisis-every", type=float, default=60.0, help="seconds each crisis lasts")
    ap.add_argument("--crisis-brands", default="acme,globex,initech")
    ap.add_argument("--drain-cap", type=float, default=600.0, help="most seconds to wait for the pipeline after the stream")
    args = ap.parse_args()
    schedule = [c for c in crisis_schedule(args.crisis_brands.split(","), args.crisis_at, args.crisis_every)
                if c[0] < args.seconds]

    from reputation_pipeline.stack import local

    local.ensure_env()

    import dagster as dg
    from reputation_pipeline.alerts.publisher import AlertPublisherResource
    from reputation_pipeline.ingest.kafka_client import KafkaSettings, topic_for
    from reputation_pipeline.ingest.produce import ensure_topic
    from reputation_pipeline.pipeline.live import IN_PROGRESS

    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    platform = f"dm{uuid.uuid4().hex[:8]}"
    topic = f"alerts.{platform}"
    home = work / "dagster"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "REPUTATION_LAKE": str(work / "lake"),
           "REPUTATION_PLATFORMS": platform, "REPUTATION_ALERTS_TOPIC": topic}
    settings = KafkaSettings.from_env()
    ensure_topic(settings, topic_for(platform), 4)
    AlertPublisherResource(bootstrap_servers=settings.bootstrap_servers, topic=topic).ensure_topic()

    port = free_port()
    dev_log = open(work / "dev.out", "ab")  # noqa: SIM115
    dev = subprocess.Popen([sys.executable, "-m", "reputation_pipeline.cli", "dev", "--port", str(port)], env=env,
                           stdout=dev_log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.time()
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                break
        except OSError:
            if dev.poll() is not None or time.time() - t0 > 300:
                raise SystemExit(f"dev did not start: {(work / 'dev.out').read_text()[-2000:]}")
            time.sleep(0.5)
    print(f"dev up in {time.time() - t0:.1f}s (port {port}, {work})", file=sys.stderr)
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.from_config(str(home))

    produced: dict[str, float] = {}
    arrivals: list[tuple[float, dict]] = []
    samples: list[tuple[float, int, int, int]] = []  # (t, queued, in flight, rss)
    stop = threading.Event()
    started = time.time()

    def producer():
        stream_posts(settings, platform, args.rate, args.seconds, schedule, produced, started)

    def follower():
        follow_alerts(settings, topic, stop, arrivals)

    def sampler():
        while not stop.is_set():
            counts = Counter(r.status.value for r in instance.get_runs(
                filters=dg.RunsFilter(statuses=list(IN_PROGRESS))))
            samples.append((time.time() - started, counts["QUEUED"] + counts["NOT_STARTED"],
                            counts["STARTING"] + counts["STARTED"], tree_rss(dev.pid)))
            stop.wait(2)

    threads = [threading.Thread(target=f, daemon=True) for f in (producer, follower, sampler)]
    for t in threads:
        t.start()
    threads[0].join()
    # the pipeline catches up: nothing queued or running for two samples after the last run began
    deadline = time.time() + args.drain_cap
    while time.time() < deadline:
        time.sleep(4)
        recent = samples[-3:]
        if len(recent) == 3 and all(q == 0 and f == 0 for _t, q, f, _r in recent):
            break
    stop.set()
    for t in threads[1:]:
        t.join(timeout=30)
    dev.send_signal(signal.SIGTERM)
    try:
        dev.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(dev.pid, signal.SIGKILL)

    crisis_start = {b: s for s, _e, b in schedule}
    seen, firing = set(), []
    for received, alert in arrivals:
        b = alert.get("brand")
        if b in crisis_start and received - started >= crisis_start[b] and alert.get("rule") != "no_data" \
                and alert.get("status") == "firing" and alert["alert_id"] not in seen:
            seen.add(alert["alert_id"])
            firing.append((received, alert))
    from reputation_pipeline.aggregation.warehouse import default_duckdb_path

    detections = [v for v in since_condition_met(default_duckdb_path(str(work / "lake")), firing, produced)
                  if v is not None]
    first = {b: min((r - started - s for r, a in firing if a["brand"] == b), default=None)
             for b, s in crisis_start.items()}
    records = instance.get_run_records()
    minutes = max(1.0, (max(r.create_timestamp.timestamp() for r in records) - started) / 60) if records else 1.0
    stream = [s for s in samples if s[0] <= args.seconds]
    third = max(1, len(stream) // 3)
    result = {
        "path": "daemon (reputation-pipeline dev)", "rate_posts_per_s": args.rate, "stream_s": args.seconds,
        "posts": len(produced), "crises": [[b, s, e] for s, e, b in schedule],
        "detection_p50_s": percentile(detections, 50), "detection_p95_s": percentile(detections, 95),
        "detection_samples": len(detections), "crisis_alerts": len(firing), "alerts_total": len(arrivals),
        "first_alert_after_crisis_start_s": {b: None if v is None else round(v, 1) for b, v in first.items()},
        "runs": len(records), "runs_by_job": dict(Counter(r.dagster_run.job_name for r in records)),
        "runs_failed": sum(1 for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE),
        "runs_per_minute": round(len(records) / minutes, 1),
        "max_in_flight": max((f for _t, _q, f, _r in samples), default=0),
        "max_queued": max((q for _t, q, _f, _r in samples), default=0),
        "mean_queued_first_third": round(statistics.mean(q for _t, q, _f, _r in stream[:third]), 2) if stream else None,
        "mean_queued_last_third": round(statistics.mean(q for _t, q, _f, _r in stream[-third:]), 2) if stream else None,
        "peak_rss_gb": round(max((r for *_x, r in samples), default=0) / 2**30, 2),
        "drained_after_stream_s": round(samples[-1][0] - args.seconds, 1) if samples else None,
        "per_run": run_costs(instance),
        "work": str(work),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
