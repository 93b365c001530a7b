"""Readers see committed data only (lake/layout.py): raw files that no commit lists,
left by an import killed mid-file or by a drain killed after its data files whose retry
then meets a retention gap, are never scored, aggregated or alerted on. The kills land
at protocol points (crash_harness), the broker and dbt are real."""
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from reputation_pipeline.ingest.importer import import_files
from reputation_pipeline.ingest.kafka_client import topic_for
from reputation_pipeline.ingest.produce import ensure_topic
from reputation_pipeline.ingest.synthetic import PostGenerator, SyntheticConfig
from reputation_pipeline.lake.layout import CommittedFiles
from reputation_pipeline.lake.read import read_parquet_prefix
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.pipeline.driver import RANGE_END, RANGE_START
from reputation_pipeline_tests.test_import_backfill import project_defs

pytestmark = pytest.mark.kafka
HOUR = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def _posts(platform: str, n: int, run_id: str) -> list[dict]:
    gen = PostGenerator(SyntheticConfig(platform, seed=5, run_id=run_id, now=HOUR + timedelta(hours=1), late_share=0.0,
                                        repost_share=0.0))
    posts = []
    for i in range(n):
        p = gen.post()
        p["created_at"] = (HOUR + timedelta(seconds=7 * i % 3600)).isoformat()
        posts.append(p)
    return posts


def _kill(point: str, nth: int, args: list[str], env: dict) -> None:
    cmd = [sys.executable, "-m", "reputation_pipeline_tests.crash_harness", point, str(nth), "--", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _build(lake, wh, kafka_bootstrap) -> set[str]:
    """scoring_job and aggregation_job over HOUR, as a backfill runs them; the post ids in the marts."""
    import dagster as dg

    pk = HOUR.strftime("%Y-%m-%d-%H:00")
    defs = project_defs(lake, wh, kafka_bootstrap, f"test.alerts.{uuid.uuid4().hex[:10]}")
    with dg.DagsterInstance.ephemeral() as instance:
        assert defs.get_job_def("scoring_job").execute_in_process(partition_key=pk, instance=instance).success
        assert defs.get_job_def("aggregation_job").execute_in_process(
            instance=instance, tags={RANGE_START: pk, RANGE_END: pk}).success
    with duckdb.connect(str(wh), read_only=True) as conn:
        return {r[0] for r in conn.execute("select post_id from marts.fct_posts").fetchall()}


def _committed_ids(store) -> set[str]:
    committed = CommittedFiles(store)
    ids: set[str] = set()
    for key in store.list("raw/posts/"):
        if key.endswith(".parquet") and committed(key):
            ids.update(read_parquet_prefix(store, key, columns=["post_id"])["post_id"].to_pylist())
    return ids


def test_an_import_killed_mid_file_is_not_read_until_it_is_re_run(tmp_path, kafka_bootstrap):
    lake, wh = tmp_path / "lake", tmp_path / "warehouse.duckdb"
    store = open_lake(str(lake))
    first, second = _posts("twitter", 40, "first"), _posts("twitter", 120, "second")
    for name, posts in (("first.jsonl", first), ("second.jsonl", second)):
        (tmp_path / name).write_text("".join(json.dumps(p) + "\n" for p in posts))
    import_files([tmp_path / "first.jsonl"], platform="twitter", store=store)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"REPUTATION_LAKE": str(lake)}
    # killed after the second of its three chunks: two chunks in the lake, no manifest
    _kill("data", 2, ["import", str(tmp_path / "second.jsonl"), "--platform", "twitter", "--chunk-rows", "50",
                      "--no-progress"], env)
    written = read_parquet_prefix(store, "raw/posts/", columns=["post_id"]).num_rows
    assert written == 40 + 100  # the killed import's two chunks are there...
    first_ids = {p["post_id"] for p in first}
    assert _committed_ids(store) == first_ids  # ...and not committed
    assert _build(lake, wh, kafka_bootstrap) == first_ids

    import_files([tmp_path / "second.jsonl"], platform="twitter", store=store)  # re-run: commits
    assert _build(lake, wh, kafka_bootstrap) == first_ids | {p["post_id"] for p in second}


def test_a_drain_killed_after_its_data_files_then_a_retention_gap_is_never_read(tmp_path, kafka_settings,
                                                                                 kafka_bootstrap, platform):
    topic = topic_for(platform)
    ensure_topic(kafka_settings, topic, 1)
    producer = Producer(kafka_settings.client_config())
    posts = _posts(platform, 300, "drain")
    for p in posts:
        producer.produce(topic, json.dumps(p).encode())
    assert producer.flush(30) == 0
    lake, wh = tmp_path / "lake", tmp_path / "warehouse.duckdb"
    env = {**os.environ, "REPUTATION_LAKE": str(lake), "REPUTATION_PLATFORMS": platform}
    args = ["ingest", "--until-drained", "--max-records", "100"]
    # the second plan's files are durable, its commit is not
    _kill("commit-before", 2, args, env)
    # its offsets expire before the retry (retention, or a deleteRecords by an operator)
    admin = AdminClient(kafka_settings.client_config())
    for fut in admin.delete_records([TopicPartition(topic, 0, len(posts))]).values():
        fut.result(30)
    retry = subprocess.run([sys.executable, "-m", "reputation_pipeline.cli", *args], env=env, capture_output=True,
                           text=True, timeout=600)
    assert retry.returncode != 0 and "RetentionGapError" in retry.stderr
    store = open_lake(str(lake))
    raw = read_parquet_prefix(store, "raw/posts/", columns=["post_id", "kafka_offset"])
    assert pc.max(raw["kafka_offset"]).as_py() >= 100  # the uncommitted plan's rows are in the lake
    committed = _committed_ids(store)
    assert committed == {p["post_id"] for p in posts[:100]}  # the first plan only
    assert _build(lake, wh, kafka_bootstrap) == committed
