"""Crash safety: the headless drain SIGKILLed at random moments, and a broker
restart mid-drain; afterwards every post is in the lake exactly once."""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.ingest.checks import commit_log_problems
from reputation_pipeline.ingest.headless import drain_until_idle
from reputation_pipeline.ingest.kafka_client import topic_for
from reputation_pipeline.ingest.planner import PlanningPolicy
from reputation_pipeline.ingest.plans import PlanLog
from reputation_pipeline.ingest.produce import produce
from reputation_pipeline.lake.read import read_parquet_prefix
from reputation_pipeline.lake.store import open_lake

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _assert_exactly_once(store, platform, expected):
    raw = read_parquet_prefix(store, "raw/posts/", columns=["post_id", "kafka_partition", "kafka_offset"])
    assert raw.num_rows == expected, f"{raw.num_rows} rows for {expected} posts"
    assert len(pc.unique(raw["post_id"])) == expected
    log = PlanLog(store)
    for partition in range(4):
        assert commit_log_problems(log.commits(topic_for(platform), partition)) == []


def _drain_cmd(lake_uri, platform):
    env = {**os.environ, "REPUTATION_LAKE": lake_uri, "REPUTATION_PLATFORMS": platform}
    cmd = [sys.executable, "-m", "reputation_pipeline.cli", "ingest", "--until-drained", "--max-records", "4000"]
    return cmd, env


def test_sigkill_at_random_moments_then_rerun(kafka_settings, lake_uri, platform):
    produce(kafka_settings, platform, 100_000, partitions=4, progress=False)
    cmd, env = _drain_cmd(lake_uri, platform)
    rng = random.Random(42)
    kills = 0
    while kills < 12:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # startup takes ~2s; kill anywhere from import time to mid-write
        time.sleep(rng.uniform(1.0, 5.0))
        if proc.poll() is not None:
            break  # finished before we could kill it: the backlog is drained
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 10, f"only {kills} kills happened before the drain finished"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    store = open_lake(lake_uri)
    _assert_exactly_once(store, platform, 100_000)
    # no partial file is visible to readers: every .parquet object parses completely
    for key in store.list("raw/posts/"):
        if key.endswith(".parquet") and lake_uri.startswith("/"):
            pq.read_metadata(store.url(key))


def test_broker_restart_during_drain(kafka_settings, stack_cfg, tmp_path, platform):
    from reputation_pipeline.stack import local

    produce(kafka_settings, platform, 40_000, partitions=4, progress=False)
    store = open_lake(str(tmp_path / "lake"))
    result, errors = {}, []

    def drain():
        try:
            result["summary"] = drain_until_idle(kafka_settings, store, frozenset({platform}),
                                                 policy=PlanningPolicy(max_records=2000))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=drain)
    t.start()
    time.sleep(1.5)
    local.stop_kafka(stack_cfg)
    time.sleep(3)
    local.start_kafka(stack_cfg)
    t.join(timeout=600)
    # a run may have failed while the broker was away; the next drain resumes its plans
    assert all("Kafka" in type(e).__name__ or "Stalled" in type(e).__name__ for e in errors), errors
    drain_until_idle(kafka_settings, store, frozenset({platform}))
    _assert_exactly_once(store, platform, 40_000)
