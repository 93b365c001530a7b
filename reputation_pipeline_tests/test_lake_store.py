"""The lake store's conditional creates against the S3 HTTP API (moto server): the answers
an S3 endpoint gives under concurrency and retries, and a store that ignores
If-None-Match refused before any plan is written."""
import os

import pytest
from botocore.exceptions import ClientError

from reputation_pipeline.ingest.planner import PlannedRange
from reputation_pipeline.ingest.plans import PlanLog
from reputation_pipeline.lake import store as lake_store
from reputation_pipeline.lake.store import ConditionalWritesUnsupported, S3Store, check_conditional_writes, open_lake

pytestmark = pytest.mark.s3


class Endpoint:
    """The real client, with one behaviour of a real endpoint forced on put_object."""

    def __init__(self, client, before=None, after=None, strip_condition=False):
        self._client, self.before, self.after, self.strip = client, before, after, strip_condition
        self.exceptions = client.exceptions
        self.conditional_puts = 0

    def put_object(self, **kw):
        if "IfNoneMatch" in kw:
            self.conditional_puts += 1
            if self.strip:
                kw = {k: v for k, v in kw.items() if k != "IfNoneMatch"}
        if self.before:
            self.before(self, kw)
        out = self._client.put_object(**kw)
        if self.after:
            self.after(self, kw)
        return out

    def __getattr__(self, name):
        return getattr(self._client, name)


def _error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def _store(s3_lake_uri, client) -> S3Store:
    bucket, prefix = s3_lake_uri[len("s3://"):].split("/", 1)
    return S3Store(bucket, prefix, client)


def test_a_409_conflict_is_asked_again_not_taken_for_an_existing_key(s3_lake_uri, s3_client):
    def conflict_twice(ep, kw):
        if "IfNoneMatch" in kw and ep.conditional_puts <= 2:
            raise _error(409, "ConditionalRequestConflict")

    store = _store(s3_lake_uri, Endpoint(s3_client, before=conflict_twice))
    assert store.put("_ingest/plans/t/p=0/1.json", b"mine", if_absent=True) is True
    assert store.get("_ingest/plans/t/p=0/1.json") == b"mine"


def test_a_412_on_a_retried_put_of_our_own_bytes_is_our_create(s3_lake_uri, s3_client):
    def answer_lost(ep, kw):  # the PUT landed, its response did not: the SDK's retry gets 412
        if "IfNoneMatch" in kw:
            raise _error(412, "PreconditionFailed")

    store = _store(s3_lake_uri, Endpoint(s3_client, after=answer_lost))
    assert store.put("_ingest/commits/t/p=0/1.json", b"ours", if_absent=True) is True
    # another writer's object under the key: a 412 that means what it says
    plain = _store(s3_lake_uri, s3_client)
    assert plain.put("_ingest/commits/t/p=0/1.json", b"theirs", if_absent=True) is False
    assert plain.get("_ingest/commits/t/p=0/1.json") == b"ours"


def test_a_store_ignoring_if_none_match_is_refused_before_any_plan(s3_lake_uri, s3_client):
    careless = _store(s3_lake_uri, Endpoint(s3_client, strip_condition=True))
    with pytest.raises(ConditionalWritesUnsupported, match="If-None-Match"):
        check_conditional_writes(careless)
    with pytest.raises(ConditionalWritesUnsupported):
        PlanLog(careless).create_plan("social.posts.x", PlannedRange(0, 0, 10))
    assert list(careless.list("_ingest/")) == []  # no plan, and no probe left behind
    check_conditional_writes(open_lake(s3_lake_uri, s3_client))  # the real endpoint passes


def test_local_puts_make_new_names_durable(tmp_path, monkeypatch):
    """Every rename, link and new folder of a local put is followed by an fsync of its folder."""
    synced = []
    real = lake_store._fsync_dir
    monkeypatch.setattr(lake_store, "_fsync_dir", lambda folder: (synced.append(os.fspath(folder)), real(folder)))
    store = open_lake(str(tmp_path / "lake"))
    assert store.put("raw/posts/platform=x/a.parquet", b"1")
    assert store.put("_ingest/plans/t/p=0/1.json", b"1", if_absent=True)
    root = str(tmp_path / "lake")
    for folder in ("", "/raw", "/raw/posts", "/raw/posts/platform=x", "/_ingest", "/_ingest/plans/t"):
        assert root + folder in synced, (folder, synced)
