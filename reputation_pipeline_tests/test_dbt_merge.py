"""Micro-batches merge only new lake files into the window's marts
(aggregation/merge.py, macros/lake.sql merged_post_ids): the same rows as a full
rebuild, and a full rebuild whenever a merge would not be safe."""
import io
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.aggregation import dbt_inprocess, dbt_resource
from reputation_pipeline.aggregation.assets import reputation_dbt_assets
from reputation_pipeline.aggregation.merge import (MAX_MERGE_FILES, plan_merge, record_merge,
                                                   window_files, window_hours)
from reputation_pipeline.aggregation.project import window_models
from reputation_pipeline.aggregation.sample_lake import (PLATFORMS, SCORES, SampleLakeSpec, sample_raw_key,
                                                         write_committed_raw, write_sample_lake)
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.pipeline.jobs import WINDOW_MODELS
from reputation_pipeline.resources import LakeResource
from reputation_pipeline import settings

T0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
HOUR = "raw/posts/platform=twitter/dt=2026-11-20/hour=00"
TAGS = {"dagster/asset_partition_range_start": "2026-11-20-00:00",
        "dagster/asset_partition_range_end": "2026-11-20-00:00"}
SPEC = SampleLakeSpec(start=T0, hours=1, crisis_brand="acme", crisis_hours=1, posts_per_brand_hour=30, batches=4)


def build(lake: str, db: str, instance: dg.DagsterInstance, merge: bool, selection=None, tags=TAGS) -> list[str]:
    """The window's dbt models (merge) or every dbt node (a full build); returns the run's log messages."""
    resources = {"dbt": dbt_resource(), "warehouse": WarehouseResource(duckdb_path=db), "lake": LakeResource(uri=lake)}
    selection = selection or (WINDOW_MODELS.without_checks() if merge else None)
    result = dg.materialize([reputation_dbt_assets], resources=resources, tags=tags, instance=instance,
                            selection=selection, raise_on_error=False,
                            run_config={"ops": {"reputation_dbt": {"config": {"merge_new_files": merge}}}})
    logs = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
    failures = [e.step_failure_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures
    return logs


def put_parquet(store, key: str, rows: list[dict], schema: pa.Schema) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema), buf)
    store.put(key, buf.getvalue())


def rows(db: str, table: str) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as conn:
        cols = [c for c, t in conn.execute(f"select column_name, data_type from information_schema.columns "
                                           f"where table_schema = 'marts' and table_name = '{table}' "
                                           "order by ordinal_position").fetchall()]
        got = conn.execute(f"select * from marts.{table} order by all").fetchall()
    # floats summed in another order differ in the last bits
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in got], cols


def test_merged_micro_batches_match_a_full_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.MERGE_RETENTION_HOURS.name, str(24 * 365 * 10))  # T0 is in the past: keep its window mergeable
    lake, merged_db, full_db = str(tmp_path / "lake"), str(tmp_path / "merged.duckdb"), str(tmp_path / "full.duckdb")
    store = open_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    write_sample_lake(store, SPEC, only_batches=[0, 1])
    assert any("in full (first build of the window's tables)" in m for m in build(lake, merged_db, instance, merge=False))
    parsed = next(iter(dbt_inprocess._MANIFESTS.values()))[0]

    # batch 2, plus a re-delivered copy of a batch-0 post that no longer names its brand (edited), and a
    # newer model's score for a batch-1 post
    write_sample_lake(store, SPEC, only_batches=[2])
    b0 = pq.read_table(tmp_path / "lake" / sample_raw_key(SPEC, "twitter", "2026-11-20", "00", 0)).to_pylist()
    edited = next(r for r in b0 if r["text"].startswith("Just tried"))
    edited |= {"text": "Just tried the new app, pretty smooth so far", "kafka_offset": 10**9,
               "kafka_timestamp": edited["kafka_timestamp"] + timedelta(minutes=30)}
    write_committed_raw(store, "twitter", "2026-11-20", "00", [edited], "redelivery")
    b1 = pq.read_table(tmp_path / "lake/scores/model=sample-v1/dt=2026-11-20/hour=00/sample-1.parquet").to_pylist()
    rescored = next(r for r in b1 if r["unscored_reason"] is None and r["sentiment_negative"] < 0.5)
    rescored |= {"model_version": "sample-v2", "scored_at": rescored["scored_at"] + timedelta(hours=1),
                 "sentiment_label": "negative", "sentiment_negative": 0.97, "sentiment_neutral": 0.02,
                 "sentiment_positive": 0.01, "offensive_score": 0.9, "hate_score": 0.8}
    put_parquet(store, "scores/model=sample-v2/dt=2026-11-20/hour=00/rescore.parquet", [rescored], SCORES)
    logs = build(lake, merged_db, instance, merge=True)
    assert any("merging 9 new lake file(s)" in m for m in logs), logs  # 6 platforms + 1 score file + 2 extra

    write_sample_lake(store, SPEC, only_batches=[3])
    assert any("merging 7 new lake file(s)" in m for m in build(lake, merged_db, instance, merge=True))
    assert any("merging 0 new lake file(s)" in m for m in build(lake, merged_db, instance, merge=True))
    # each merge named other files in the environment; dbt reads them only at execution,
    # so the project was not parsed again
    assert next(iter(dbt_inprocess._MANIFESTS.values()))[0] is parsed

    build(lake, full_db, dg.DagsterInstance.ephemeral(), merge=False)
    for table in ("fct_posts", "fct_brand_mentions", "fct_brand_risk_window"):
        assert rows(merged_db, table) == rows(full_db, table), table

    with duckdb.connect(merged_db, read_only=True) as conn:
        # the edited copy is the latest: the post stays, its mention is gone
        assert conn.execute("select count(*) from marts.fct_posts where post_id = ?", [edited["post_id"]]).fetchone() == (1,)
        assert conn.execute("select count(*) from marts.fct_brand_mentions where post_id = ?",
                            [edited["post_id"]]).fetchone() == (0,)
        assert conn.execute("select model_version, sentiment_label from marts.fct_posts where post_id = ?",
                            [rescored["post_id"]]).fetchone() == ("sample-v2", "negative")
        assert conn.execute("select count(*) from marts.fct_posts").fetchone()[0] > 100
        # merges skip persist_docs for the incremental tables: the rebuild's comments are still there
        comment = conn.execute("select comment from duckdb_tables() where table_name = 'fct_posts'").fetchone()[0]
        assert comment and comment.startswith("One row per post of the window")

    # the marts alone, without their base tables: fine for a window they hold, refused for one they do not
    marts_only = dg.AssetSelection.assets("stg_posts", "stg_post_scores", "fct_posts", "fct_brand_mentions",
                                          "fct_brand_risk_window")
    build(lake, merged_db, instance, merge=False, selection=marts_only)
    assert rows(merged_db, "fct_posts") == rows(full_db, "fct_posts")
    other_hour = {k: "2026-11-20-05:00" for k in TAGS}
    with pytest.raises(AssertionError, match="do not hold"):
        build(lake, merged_db, instance, merge=False, selection=marts_only, tags=other_hour)


@pytest.mark.s3
def test_window_files_are_listed_alike_on_s3(s3_endpoint, s3_lake_uri, tmp_path):
    local, s3 = open_lake(str(tmp_path / "lake")), open_lake(s3_lake_uri)
    for store in (local, s3):
        write_sample_lake(store, SPEC, only_batches=[0, 2])
    hours = window_hours(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert s3.folders("raw/posts/") == local.folders("raw/posts/") == sorted(f"platform={p}" for p in PLATFORMS)
    listed = window_files(s3, hours)
    assert listed == window_files(local, hours) and len(listed["raw_posts"]) == 12 and len(listed["post_scores"]) == 2


def test_merge_falls_back_to_a_full_build(tmp_path, monkeypatch):
    lake, db = str(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    store = open_lake(lake)
    write_sample_lake(store, SPEC, only_batches=[0])
    conn = duckdb.connect(db)
    conn.execute("set TimeZone = 'UTC'")
    for schema, name in (m.relation for m in window_models().tables):  # as if dbt had built them
        conn.execute(f"create schema if not exists {schema}")
        conn.execute(f"create table {schema}.{name} (dt date, hour integer)")
    conn.execute("insert into staging.base_raw_posts values ('2026-11-20', 0)")
    end = T0 + timedelta(hours=1)
    now = T0 + timedelta(hours=2)  # within the retention (12 h)

    plan = plan_merge(conn, store, T0, end, "fp1", now=now)  # not built here yet: every file is new
    assert plan.merge and plan.new_files == 7
    record_merge(conn, plan, "fp1", now=now)
    assert plan_merge(conn, store, T0, end, "fp1", now=now).new_files == 0

    write_sample_lake(store, SPEC, only_batches=[1])
    plan = plan_merge(conn, store, T0, end, "fp1", now=now)
    assert plan.merge and plan.new_files == 7
    assert all(k.endswith(("-000001.parquet", "/sample-1.parquet")) for keys in plan.new.values() for k in keys)
    assert plan_merge(conn, store, T0, end, "fp1", allow=False, now=now).reason == "not requested"
    monkeypatch.setenv(settings.DBT_MERGE_NEW_FILES.name, "0")  # the operator's switch
    assert plan_merge(conn, store, T0, end, "fp1", now=now).reason == f"{settings.DBT_MERGE_NEW_FILES.name}=0"
    monkeypatch.delenv(settings.DBT_MERGE_NEW_FILES.name)
    assert plan_merge(conn, store, T0, end, "fp2", now=now).reason.startswith("the dbt project or the brand list")
    # a range with the next hour (a late post's neighbour, not built yet) still merges
    assert plan_merge(conn, store, T0, end + timedelta(hours=1), "fp1", now=now).merge

    store.put("scores/model=sample-v1/dt=2026-11-20/hour=00/odd'name*.parquet", b"")  # a quoted glob in read_parquet([...])
    assert plan_merge(conn, store, T0, end, "fp1", now=now).reason.startswith("a new file name outside")
    store.delete("scores/model=sample-v1/dt=2026-11-20/hour=00/odd'name*.parquet")
    for i in range(MAX_MERGE_FILES + 1):
        store.put(f"scores/model=sample-v1/dt=2026-11-20/hour=00/many-{i}.parquet", b"")
    assert plan_merge(conn, store, T0, end, "fp1", now=now).reason == f"more than {MAX_MERGE_FILES} new files"
    for i in range(MAX_MERGE_FILES + 1):
        store.delete(f"scores/model=sample-v1/dt=2026-11-20/hour=00/many-{i}.parquet")

    # past the retention: rebuilt in full, and the next record drops its rows and records
    later = T0 + timedelta(hours=14)
    assert plan_merge(conn, store, T0, end, "fp1", now=later).reason == f"a window older than {settings.MERGE_RETENTION_HOURS.name}"
    record_merge(conn, plan_merge(conn, store, T0 + timedelta(hours=13), later, "fp1", now=later), "fp1", now=later)
    assert conn.execute("select count(*) from staging.base_raw_posts").fetchone() == (0,)
    assert conn.execute("select count(*) from meta.lake_files_merged where window_start = ?", [T0]).fetchone() == (0,)
    assert plan_merge(conn, store, T0, end, "fp1", now=now).new_files == 14  # the pruned hour: every file again

    conn.execute("drop table marts.fct_posts")
    assert plan_merge(conn, store, T0, end, "fp1", now=now).reason == "first build of the window's tables"
    conn.close()


def test_the_window_models_are_the_models_tagged_window(tmp_path):
    """The merge's tables and the dbt assets' window checks come from the manifest
    (aggregation/project.py ``window_models``): the models dbt selects with tag:window, by role."""
    found = window_models()
    resources = {"dbt": dbt_resource(), "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "wh.duckdb")),
                 "lake": LakeResource(uri=str(tmp_path / "lake"))}
    graph = dg.Definitions(assets=[reputation_dbt_assets], resources=resources).resolve_asset_graph()
    assert {dg.AssetKey(m.name) for m in found.models} == WINDOW_MODELS.resolve(graph)
    assert set(found.base_tables) <= set(found.tables) <= set(found.models)
    assert all(m.node["config"]["materialized"] == "incremental" for m in found.tables)
    assert all(m.node["config"]["materialized"] == "view" for m in set(found.models) - set(found.tables))
    assert found.base_tables and all(d.startswith("source.") for m in found.base_tables
                                     for d in m.node["depends_on"]["nodes"])
    assert found.base_readers and not set(found.base_readers) & set(found.base_tables)
