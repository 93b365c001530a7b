"""Fixtures and helpers for the scoring tests (imported explicitly by
test_scoring_*.py; the shared conftest.py is not needed)."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.lake.layout import drain_file_key, ingest_log_key
from reputation_pipeline.lake.schemas import RAW_POSTS
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.stack.local import free_port


def raw_table(rows: list[dict]) -> pa.Table:
    """A RAW_POSTS table; missing columns are filled with defaults."""
    cols: dict[str, list] = {f.name: [] for f in RAW_POSTS}
    base_t = datetime(2026, 11, 26, 3, 5, tzinfo=timezone.utc)
    for i, r in enumerate(rows):
        full = {
            "post_id": f"p{i}", "author_id": "a1", "author_handle": "someone", "author_followers": 10,
            "text": "", "created_at": base_t, "url": None, "language": "en", "hashtags": [], "mentions": [],
            "media": [], "likes": 0, "shares": 0, "comments": 0, "views": 0, "repost_of": None, "reply_to": None,
            "event_time": base_t, "event_time_source": "created_at", "schema_version": 1,
            "kafka_topic": "social.posts.x", "kafka_partition": 0, "kafka_offset": i,
            "kafka_timestamp": base_t,
        }
        full.update(r)
        for k in cols:
            cols[k].append(full[k])
    return pa.table(cols, schema=RAW_POSTS)


def raw_name(platform: str, name: str) -> str:
    """'twitter-0-0000000000-0000000004' -> the drain's file name for partition 0, offsets [0, 4)."""
    _, partition, start, end = name.rsplit("-", 3)
    return drain_file_key(platform, "d", "h", f"social.posts.{platform}", int(partition), int(start), int(end)).rsplit("/", 1)[1]


def write_raw(store, platform: str, dt: str, hh: str, name: str, rows: list[dict], committed: bool = True) -> str:
    """A drained range's raw file, and (unless ``committed`` is False) the commit that
    makes readers trust it (lake/layout.py)."""
    _, partition, start, end = name.rsplit("-", 3)
    topic = f"social.posts.{platform}"
    key = drain_file_key(platform, dt, hh, topic, int(partition), int(start), int(end))
    buf = io.BytesIO()
    pq.write_table(raw_table(rows), buf)
    store.put(key, buf.getvalue())
    if committed:
        commit_range(store, topic, int(partition), int(start))
    return key


def commit_range(store, topic: str, partition: int, start: int) -> None:
    store.put(ingest_log_key("commits", topic, partition, start), b'{"files": []}')


@pytest.fixture(scope="module")
def moto_endpoint():
    """A moto S3 server over HTTP in a subprocess; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("moto server exited")
                time.sleep(0.2)
        else:
            raise RuntimeError("moto server did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_lake_uri(moto_endpoint, monkeypatch):
    """A fresh bucket on the moto server; AWS_* variables point at it."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


def lake_resource(uri: str, endpoint: str | None = None):
    from dagster_aws.s3 import S3Resource

    from reputation_pipeline.resources import LakeResource

    return LakeResource(uri=uri, s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1") if endpoint else S3Resource())


def open_store(uri: str, endpoint: str | None = None):
    if uri.startswith("s3://"):
        import boto3

        return open_lake(uri, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"))
    return open_lake(uri)


def snapshot(store, prefix: str = "scores/") -> dict[str, bytes]:
    return {k: store.get(k) for k in store.list(prefix)}


__all__ = ["raw_table", "write_raw", "moto_endpoint", "s3_lake_uri", "lake_resource", "open_store", "snapshot",
           "os"]
