"""Latency benchmark: post produced -> alert on the topic.

A steady stream of posts (default 100/s) on one platform. After a calm start,
crises are injected for several brands one after another (default acme, then
globex, then initech, 45 s each): half of the stream becomes angry, high-reach
posts about that brand. The pipeline runs with its default settings through the
headless executor of the sensors (pipeline/driver.py: kafka_posts_sensor and
live_pipeline_sensor evaluated as the daemon does, their runs executed in this
process). bench_daemon.py measures the same stream through `reputation-pipeline dev`. A consumer follows the alerts topic for the whole
run and stamps each alert when it arrives.

Two latencies per crisis alert:

- detection (the headline): from the produce call of the post that made the
  stream meet the alert's rule (the toxic post itself for ``toxic_post``; for a
  rule on the window's aggregate, the post after which the window first met it)
  to the alert's arrival. This is post produced -> alert for the post that
  triggered it; it is what the pipeline adds.
- top-post age: the same for every post in the alert's explanation. For an
  aggregate rule these include the crisis's first posts, so they also count how
  long the crisis took to lift the window's aggregate over the threshold, which
  no pipeline can shorten.

Prints p50/p95 of both and where the time goes (per job: runs, mean seconds, steps).

    .venv/bin/python bench/bench_alert_latency.py --rate 100
    .venv/bin/python bench/bench_alert_latency.py --rate 100 --crisis-at 90    # crises after the start-up
    .venv/bin/python bench/bench_alert_latency.py ... --baseline dagster-default-storage   # one baseline
    .venv/bin/python bench/bench_alert_latency.py ... --compare dagster-default-storage    # it, then the default
    .venv/bin/python bench/bench_alert_latency.py ... --compare   # dbt as a subprocess, then the default
    .venv/bin/python bench/bench_alert_latency.py --seconds 480 --crisis-at 420 --crisis-brands acme --compare window-rebuild
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid


def step_seconds(instance, run_ids: list[str]) -> dict:
    """Per step of the runs (post_scores, reputation_dbt, brand_alerts, ...) the seconds
    from STEP_START to its end, and ``run_overhead``: the rest of the runs' wall time
    (run creation, planned events, resource set-up, checks' bookkeeping)."""
    out: dict[str, float] = {}
    total = 0.0
    for run_id in run_ids:
        starts: dict[str, float] = {}
        first = last = None
        for rec in instance.all_logs(run_id):
            ev = rec.dagster_event
            first = rec.timestamp if first is None else first
            last = rec.timestamp
            if ev is None or not ev.step_key:
                continue
            if ev.event_type_value == "STEP_START":
                starts[ev.step_key] = rec.timestamp
            elif ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key in starts:
                out[ev.step_key] = out.get(ev.step_key, 0.0) + rec.timestamp - starts.pop(ev.step_key)
        if first is not None:
            total += last - first
    out["run_overhead"] = total - sum(out.values())
    return {k: round(v, 1) for k, v in out.items()}


def where_time_goes(ticks: list[dict]) -> dict:
    """Per job of the ticks that ran something: runs, mean seconds and mean seconds per step."""
    by_job: dict[str, dict] = {}
    for tick in ticks:
        for run in tick.get("runs_detail", []):
            j = by_job.setdefault(run["job"], {"runs": 0, "seconds": [], "steps": {}})
            j["runs"] += 1
            j["seconds"].append(run["seconds"])
            for k, v in run.get("steps_s", {}).items():
                j["steps"].setdefault(k, []).append(v)
    busy = [t for t in ticks if t.get("rows")]
    out = {"busy_ticks": len(busy)}
    if busy:
        out["mean_tick_s"] = round(statistics.mean(t["seconds"] for t in busy), 1)
        out["mean_rows_per_tick"] = round(statistics.mean(t["rows"] for t in busy))
    out["per_job"] = {name: {"runs": j["runs"], "mean_s": round(statistics.mean(j["seconds"]), 1),
                             "mean_steps_s": {k: round(statistics.mean(v), 1) for k, v in j["steps"].items()}}
                      for name, j in sorted(by_job.items())}
    return out


def first_met(rule: str, rows: list[tuple], threshold: float, min_volume: int, min_reach: int) -> int | None:
    """Index of the mention (``rows`` in produce order: toxicity, followers, post_risk,
    exposure, is_scored) after which the window's mentions so far first met the rule, else
    None: the moment the stream gave the pipeline enough to alert. The aggregates are those of
    fct_brand_risk_window (weighted_risk, risk_sum) and the conditions mart_alert_candidates'."""
    n = 0
    risk = exposure = 0.0
    for i, (toxicity, followers, post_risk, post_exposure, is_scored) in enumerate(rows):
        n += 1
        risk += post_risk or 0.0
        exposure += (post_exposure or 0.0) if is_scored else 0.0
        if rule == "toxic_post":
            met = is_scored and (toxicity or 0.0) >= threshold and (followers or 0) >= min_reach
        elif rule == "risk_threshold":
            met = n >= min_volume and exposure > 0 and risk / exposure >= threshold
        elif rule == "risk_spike":
            met = n >= min_volume and risk > threshold
        else:
            return None
        if met:
            return i
    return None


def since_condition_met(db_path: str, firing: list[tuple[float, dict]],
                        produced: dict[str, float]) -> list[float | None]:
    """For each (received, alert): seconds from the produce call of the post that made the
    stream meet the alert's rule for its brand (``first_met`` over the window's mentions in
    produce order, from the warehouse as the run left it) to the alert's receipt: the
    detection latency. For a rule on the window's aggregate this is the pipeline's share;
    the top posts' ages also count the time the data took to lift the aggregate."""
    import duckdb

    out: list[float | None] = []
    with duckdb.connect(db_path, read_only=True) as conn:
        for received, alert in firing:
            brand, window = alert["brand"], alert["window_start"]
            params = conn.execute("select coalesce(min_volume, 0), coalesce(min_reach, 0) "
                                  "from intermediate.int_brand_alert_rules where brand = ? and rule = ?",
                                  [brand, alert["rule"]]).fetchone() or (0, 0)
            threshold = ((alert.get("metrics") or {}).get("threshold"))
            mentions = conn.execute("select post_id, toxicity, followers, post_risk, exposure, is_scored "
                                    "from marts.fct_brand_mentions where brand = ? and window_start = ?::timestamptz",
                                    [brand, window]).fetchall()
            mentions = sorted((m for m in mentions if m[0] in produced), key=lambda m: produced[m[0]])
            i = None if threshold is None else first_met(alert["rule"], [m[1:] for m in mentions],
                                                          float(threshold), int(params[0]), int(params[1]))
            out.append(None if i is None else round(received - produced[mentions[i][0]], 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=None,
                    help="how long to stream posts (default: until the last crisis ends)")
    ap.add_argument("--crisis-at", type=float, default=40.0, help="seconds of calm before the first crisis")
    ap.add_argument("--crisis-brands", default="acme,globex,initech",
                    help="comma-separated brands (of the default seed) in crisis one after another")
    ap.add_argument("--crisis-every", type=float, default=45.0, help="seconds each crisis lasts")
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between sensor ticks while nothing is planned")
    ap.add_argument("--catchup-every", type=float, default=None,
                    help="seconds between catch-up runs (full dbt build with tests, published marts, late hours); "
                         "default REPUTATION_CATCHUP_INTERVAL_S or 300")
    ap.add_argument("--baseline", choices=sorted(BASELINES),
                    help="measure a baseline instead of the default: " + "; ".join(f"{k}: {v}" for k, v in BASELINES.items()))
    ap.add_argument("--dbt-subprocess", dest="baseline", action="store_const", const="dbt-subprocess",
                    help="same as --baseline dbt-subprocess")
    ap.add_argument("--compare", nargs="?", const="dbt-subprocess", choices=sorted(BASELINES),
                    help="measure that baseline (default dbt-subprocess) and then the default in this run, "
                    "and print the ratios")
    args = ap.parse_args()
    args.crisis = crisis_schedule(args.crisis_brands.split(","), args.crisis_at, args.crisis_every)
    if args.seconds is None:
        args.seconds = args.crisis[-1][1]
    args.crisis = [c for c in args.crisis if c[0] < args.seconds]  # the crises the stream reaches
    if not args.crisis:
        ap.error("no crisis starts within --seconds")

    from reputation_pipeline.stack import local

    local.ensure_env()
    variants = [args.compare, None] if args.compare else [args.baseline]
    results = [measure(args, variant) for variant in variants]
    for result in results:
        print(json.dumps(result))
    if args.compare:
        base, new = results
        ratios = {k: round(new[k] / base[k], 2) for k in ("detection_p50_s", "detection_p95_s",
                                                          "top_post_age_p50_s", "top_post_age_p95_s",
                                                          "first_crisis_alert_after_crisis_start_s",
                                                          "mean_tick_s")
                  if new.get(k) and base.get(k)}
        print(json.dumps({f"default_vs_{args.compare}": ratios}))
    return 0


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile (inclusive method: within the samples' range), None without samples."""
    if len(values) < 2:
        return round(values[0], 1) if values else None
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def crisis_schedule(brands: list[str], first_at: float, every: float) -> list[tuple[float, float, str]]:
    """(start, end, brand) of each crisis, seconds into the stream: one brand after another."""
    return [(first_at + i * every, first_at + (i + 1) * every, brand.strip()) for i, brand in enumerate(brands)]


def crisis_brand_at(schedule: list[tuple[float, float, str]], t: float) -> str | None:
    return next((brand for start, end, brand in schedule if start <= t < end), None)


def stream_posts(settings, platform: str, rate: float, seconds: float, schedule: list[tuple[float, float, str]],
                 produced: dict[str, float], started: float) -> None:
    """Synthetic posts at a steady rate for ``seconds``, half of them angry posts about the brand
    in crisis at the time; each post's produce call is stamped in ``produced``."""
    from reputation_pipeline.ingest.kafka_client import topic_for
    from reputation_pipeline.ingest.produce import make_producer
    from reputation_pipeline.ingest.synthetic import PostGenerator, SyntheticConfig

    p = make_producer(settings)
    calm = PostGenerator(SyntheticConfig(platform, seed=1, run_id="calm", late_share=0.0))
    crises = {brand: PostGenerator(SyntheticConfig(platform, seed=2 + i, run_id=f"crisis{i}", late_share=0.0,
                                                   crisis_brand=brand, crisis_share=0.5))
              for i, (_s, _e, brand) in enumerate(schedule)}
    n = 0
    while time.time() - started < seconds:
        post = (crises.get(crisis_brand_at(schedule, time.time() - started)) or calm).post()
        produced[post["post_id"]] = time.time()
        p.produce(topic_for(platform), key=post["post_id"].encode(), value=json.dumps(post).encode())
        n += 1
        p.poll(0)
        wait = started + n / rate - time.time()
        if wait > 0:
            time.sleep(wait)
    p.flush(30)


def follow_alerts(settings, topic: str, stop: threading.Event, arrivals: list[tuple[float, dict]]) -> None:
    """One consumer for the whole run, reading committed alerts from the start; each alert is
    stamped the moment it is received (what a PR team's consumer would see)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from reputation_pipeline.alerts.publisher import decode_alert

    consumer = Consumer({**settings.client_config(), "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error() and (alert := decode_alert(msg.value())) is not None:
                arrivals.append((time.time(), alert))
    finally:
        consumer.close()


BASELINES = {
    "dbt-subprocess": "a `dbt` subprocess per run (ReputationDbtCliResource in_process=false) instead of dbt in "
                      "the driver's process with the parsed manifest kept in memory",
    "dagster-default-storage": "Dagster's default SQLite instance storage (an event-log database per run, a "
                               "connection per event) instead of the project's (pipeline/storage.py)",
    "window-rebuild": "every micro-batch rebuilds its window's dbt tables from every lake file of the window "
                      "(REPUTATION_DBT_MERGE_NEW_FILES=0) instead of merging only the new files (aggregation/merge.py)",
}


def measure(args, variant: str | None) -> dict:
    """One stream with a crisis through the headless driver (the defaults, or a baseline
    variant); the latency figures."""
    from reputation_pipeline import settings

    dbt_subprocess = variant == "dbt-subprocess"
    if variant == "window-rebuild":
        os.environ[settings.DBT_MERGE_NEW_FILES.name] = "0"
    else:
        os.environ.pop(settings.DBT_MERGE_NEW_FILES.name, None)
    platform = f"lat{uuid.uuid4().hex[:8]}"
    work = tempfile.mkdtemp(prefix="bench-latency-")
    os.environ.update({"REPUTATION_PLATFORMS": platform, "DAGSTER_HOME": os.path.join(work, "dagster")})
    topic = f"alerts.{platform}"

    import dagster as dg

    from reputation_pipeline.aggregation import dbt_resource
    from reputation_pipeline.alerts.publisher import AlertPublisherResource
    from reputation_pipeline.definitions import build_defs
    from reputation_pipeline.ingest.kafka_client import KafkaResource, KafkaSettings, topic_for
    from reputation_pipeline.ingest.produce import ensure_topic
    from reputation_pipeline.pipeline.driver import Driver
    from reputation_pipeline.pipeline.instance import ensure_dagster_home
    from reputation_pipeline.resources import LakeResource

    settings = KafkaSettings.from_env()
    bootstrap = settings.bootstrap_servers
    publisher = AlertPublisherResource(bootstrap_servers=bootstrap, topic=topic)
    defs = build_defs(lake=LakeResource(uri=os.path.join(work, "lake")), kafka=KafkaResource(bootstrap_servers=bootstrap),
                      alert_publisher=publisher,
                      dbt=dbt_resource(in_process=not dbt_subprocess))
    if variant == "dagster-default-storage":  # a home with its own dagster.yaml keeps it
        os.makedirs(os.path.join(work, "dagster"))
        with open(os.path.join(work, "dagster", "dagster.yaml"), "w") as f:
            f.write("telemetry:\n  enabled: false\n")
    ensure_dagster_home(os.path.join(work, "dagster"))
    instance = dg.DagsterInstance.get()
    ensure_topic(settings, topic_for(platform), 4)

    produced: dict[str, float] = {}
    stop = threading.Event()
    started = time.time()

    def producer():
        stream_posts(settings, platform, args.rate, args.seconds, args.crisis, produced, started)

    arrivals: list[tuple[float, dict]] = []
    publisher.ensure_topic()  # as brand_alerts does on its first run: the follower can assign its partitions now

    def follower():
        follow_alerts(settings, topic, stop, arrivals)

    ticks: list[dict] = []
    errors: list[str] = []
    stop_driver = threading.Event()
    if args.catchup_every is not None:
        os.environ["REPUTATION_CATCHUP_INTERVAL_S"] = str(args.catchup_every)

    def log(msg: str) -> None:
        if "failed" in msg:
            errors.append(msg)
        print(msg, file=sys.stderr, flush=True)

    drv = Driver(defs, instance, log=log)

    def on_tick(report):
        if not report.runs:
            return
        entry = {"t": round(time.time() - started, 1), "rows": report.rows, "seconds": round(report.seconds, 1),
                 "runs_detail": [{"job": r.job, "seconds": round(r.seconds, 1),
                                  "steps_s": step_seconds(instance, [r.run_id])} for r in report.runs]}
        ticks.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)

    def driver():
        # the sensors and their runs until stopped, logging failed runs as the daemon would
        drv.run(until_idle=False, stop=stop_driver, poll_s=args.poll, retry_errors=True, on_tick=on_tick)

    threads = [threading.Thread(target=f, daemon=True) for f in (producer, follower, driver)]
    for t in threads:
        t.start()
    threads[0].join()
    time.sleep(90)  # let the pipeline catch up with the last posts
    stop.set()
    stop_driver.set()
    for t in threads[1:]:
        t.join(timeout=300)

    crisis_start = {brand: start for start, _end, brand in args.crisis}
    latencies = []  # top posts' ages
    seen = set()
    firing = []  # (received, alert) of each crisis alert, once
    per_alert = []  # which rule fired when, and how old its top posts were on arrival
    # A single-post rule (toxic_post) measures the pipeline alone; a rule on the window's
    # aggregate (risk_threshold, risk_spike) may need several batches of evidence, and its top
    # posts include the earlier batches'.
    by_rule: dict[str, list[float]] = {}
    for received, alert in arrivals:
        brand = alert.get("brand")
        # the crisis brands' alerts about their crises ("no data" is about the ingest, not a crisis)
        if brand not in crisis_start or received - started < crisis_start[brand] or alert.get("rule") == "no_data" \
                or alert.get("status") != "firing" or alert["alert_id"] in seen:
            continue
        seen.add(alert["alert_id"])
        firing.append((received, alert))
        ages = [received - produced[post["post_id"]] for post in (alert.get("explanation") or {}).get("top_posts", [])
                if post.get("post_id") in produced]
        latencies.extend(ages)
        by_rule.setdefault(alert.get("rule"), []).extend(ages)
        per_alert.append({"brand": brand, "rule": alert.get("rule"), "arrived_s": round(received - started, 1),
                          "top_post_latency_s": [round(min(ages), 1), round(max(ages), 1)] if ages else None})
    from reputation_pipeline.aggregation.warehouse import default_duckdb_path

    try:  # the driver releases the warehouse when its loop ends
        since_met = since_condition_met(default_duckdb_path(os.path.join(work, "lake")), firing, produced)
    except Exception as exc:  # noqa: BLE001 -- e.g. a driver thread that did not stop: the rest still reports
        print(f"since_condition_met: {exc}", file=sys.stderr)
        since_met = [None] * len(firing)
    for detail, value in zip(per_alert, since_met):
        detail["detection_s"] = value
    detections = [v for v in since_met if v is not None]
    first = {brand: min((r - started - start for r, a in firing if a["brand"] == brand), default=None)
             for brand, start in crisis_start.items()}
    missed = sorted(brand for brand, v in first.items() if v is None)
    result = {
        "rate_posts_per_s": args.rate, "stream_s": args.seconds, "posts": len(produced),
        "crises": [[brand, start, end] for start, end, brand in args.crisis],
        "alerts_total": len(arrivals), "crisis_alerts": len(seen), "crises_without_alert": missed,
        # the slowest crisis: its brand's first alert, from the crisis's first post
        "first_crisis_alert_after_crisis_start_s": None if missed else round(max(first.values()), 1),
        "first_alert_after_crisis_start_s": {b: None if v is None else round(v, 1) for b, v in first.items()},
        "detection_p50_s": percentile(detections, 50), "detection_p95_s": percentile(detections, 95),
        "detection_samples": len(detections),
        "top_post_age_p50_s": percentile(latencies, 50), "top_post_age_p95_s": percentile(latencies, 95),
        "top_post_age_samples": len(latencies),
        "crisis_alert_detail": per_alert,
        "top_post_age_by_rule_s": {rule: {"p50": round(statistics.median(v), 1), "max": round(max(v), 1),
                                          "samples": len(v)} for rule, v in sorted(by_rule.items()) if v},
        "variant": variant or "default", "path": "headless executor of the sensors (run --until-idle)",
        "dbt": "subprocess" if dbt_subprocess else "in-process",
        "dagster_storage": type(instance.event_log_storage).__name__,
        "driver_errors": len(errors),
        "catchup_runs": sum(1 for t in ticks for r in t["runs_detail"] if r["job"] == "catchup_job"),
        **where_time_goes(ticks),
    }
    return result


if __name__ == "__main__":
    sys.exit(main())
