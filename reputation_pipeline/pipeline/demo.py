"""``reputation-pipeline demo``: the main job on the embedded defaults.

Starts the local stack, streams synthetic posts for several brands and
platforms (calm first, then a crisis for one brand), runs the pipeline
(sensor → ingest → scoring → dbt → alerts) and prints the alerts as they
arrive on the Kafka topic, then a short summary."""
from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter

CRISIS_BRAND = "acme"  # a brand id of the default brands seed
PLATFORMS = ("x", "reddit")


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_demo(calm_posts: int = 800, crisis_posts: int = 800, keep: bool = False) -> int:
    from reputation_pipeline.stack import local

    started = time.monotonic()
    started_stack = None
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and local.reachable(os.environ["KAFKA_BOOTSTRAP_SERVERS"]):
        _say(f"using the Kafka at {os.environ['KAFKA_BOOTSTRAP_SERVERS']} from the environment")
    else:
        cfg = local.StackConfig.from_env()
        before = local.status(cfg)
        if not (before["kafka"]["running"] and before["s3"]["running"]):
            _say("starting the local stack (Kafka in KRaft mode + S3 endpoint) ...")
            started_stack = cfg
        local.up(cfg)
        os.environ.update(local.env_vars(cfg))
    try:
        return _demo(started, calm_posts, crisis_posts)
    finally:
        if started_stack is not None and not keep:
            local.down(started_stack)
            _say("stopped the local stack it started (--keep leaves it running)")
        elif started_stack is not None:
            _say(f"the local stack keeps running: `reputation-pipeline stack down` stops it ({started_stack.root})")


def _demo(started: float, calm_posts: int, crisis_posts: int) -> int:
    from reputation_pipeline.alerts.cli import tail
    from reputation_pipeline.alerts.render import alert_line, plain
    from reputation_pipeline.alerts.publisher import ALERTS_TOPIC
    from reputation_pipeline.ingest.kafka_client import KafkaSettings
    from reputation_pipeline.ingest.produce import ensure_topic, produce
    from reputation_pipeline.pipeline.driver import run_until_idle
    from reputation_pipeline.pipeline.instance import get_instance

    settings = KafkaSettings.from_env()
    instance = get_instance()
    _say(f"Dagster instance: {os.environ['DAGSTER_HOME']}; lake: {os.environ.get('REPUTATION_LAKE', './lake')}")
    _say("loading the pipeline definitions (dbt manifest, models) ...")
    from reputation_pipeline.definitions import defs

    # show alerts as they arrive, from one consumer on the topic for the whole demo (the
    # topic exists first, so the consumer starts at its end before the first alert)
    seen: list[dict] = []
    topic = os.environ.get("REPUTATION_ALERTS_TOPIC") or ALERTS_TOPIC
    ensure_topic(settings, topic, 3)

    class Printer(io.TextIOBase):
        def write(self, line: str) -> int:
            if line.strip():
                alert = json.loads(line)
                seen.append(alert)
                _say(alert_line(alert).plain)  # message values made safe for a terminal
                for post in (alert.get("explanation") or {}).get("top_posts", [])[:2]:
                    _say(f"    top post ({plain(post.get('platform'), 32)}): {plain(post.get('url'))}")
            return len(line)

    stop_following = threading.Event()
    follower = threading.Thread(target=tail, args=(settings, topic), daemon=True,
                                kwargs={"from_beginning": False, "idle_timeout": None, "as_json": True, "out": Printer(),
                                        "stop": stop_following})
    follower.start()
    for phase, count, crisis in (("calm", calm_posts, None), ("crisis", crisis_posts, CRISIS_BRAND)):
        for platform in PLATFORMS:
            produce(settings, platform, count, crisis_brand=crisis, crisis_share=0.4, progress=False)
        _say(f"produced {count} {phase} posts on each of {', '.join(PLATFORMS)}"
             + (f" (crisis for brand {crisis!r})" if crisis else ""))
    # the sensors and their runs in this process, until idle (the daemon's path, pipeline/driver.py)
    # the runs' events go to the instance (the UI shows them); the terminal gets warnings only
    totals = run_until_idle(defs, instance, log=_say, console_log_level="WARNING")
    _say(f"pipeline idle: {totals}")
    time.sleep(4)  # let the follower print the last alerts
    stop_following.set()
    follower.join(timeout=30)
    from reputation_pipeline.ingest.drain import close_metadata_consumers

    close_metadata_consumers()  # before the stack goes away, or librdkafka logs its reconnects
    by_brand = Counter((plain(a.get("brand_name") or a.get("brand"), 40), plain(a.get("rule"), 40),
                        plain(a.get("status"), 16)) for a in seen)
    _say(f"summary after {time.monotonic() - started:.0f}s: {len(seen)} alerts on reputation.alerts")
    for (brand, rule, status), n in sorted(by_brand.items()):
        _say(f"  {brand:16} {rule:24} {status:9} x{n}")
    _say("explore it: `reputation-pipeline dev` (the UI: runs, lineage, checks; the live pipeline on the daemon); "
         "`reputation-pipeline alerts tail --from-beginning`")
    return 0
