"""dbt build on the project's data (sample posts + scores in a temp lake): passes,
is incremental per window, makes "no data" explicit, reads an S3 lake, and its
tests fail on bad data."""
import io
import json
import re
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.aggregation import dbt_inprocess, dbt_resource
from reputation_pipeline.aggregation.assets import reputation_dbt_assets
from reputation_pipeline.aggregation.sample_lake import SCORES, SampleLakeSpec, sample_raw_key, write_sample_lake
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.alerts.evaluate import deliver, evaluate
from reputation_pipeline.alerts.publisher import Delivered
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.resources import LakeResource

T0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)


COMPILED = {}  # model -> its SQL as the last dbt_build compiled it


def dbt_build(lake_uri: str, duckdb_path: str, start=None, end=None, select: str | None = None):
    wh = WarehouseResource(duckdb_path=duckdb_path)
    # as the Dagster runs build (aggregation/assets.py): the unit tests are test_dbt_unit.py's
    args = ["build", "--vars", json.dumps(wh.dbt_vars(lake_uri, start, end)), "--exclude-resource-type", "unit_test"]
    if select:
        args += ["--select", select, "--indirect-selection", "cautious"]
    inv = dbt_resource().cli(args, raise_on_error=False)
    inv.wait()
    results = {r["unique_id"].split(".")[2]: r["status"] for r in inv.get_artifact("run_results.json")["results"]}
    COMPILED.clear()
    COMPILED.update({p.stem: p.read_text() for p in (inv.target_path / "compiled").rglob("*.sql")})
    return inv.is_successful(), results


class ListPublisher:
    topic = "test"

    def __init__(self):
        self.sent = []

    def publish(self, messages):
        self.sent.extend(messages)
        return [Delivered(m[0], self.topic, 0, i) for i, m in enumerate(messages)]

    def find_published(self, alert_ids, since):
        return {}


def test_dbt_build_windows_no_data_and_rerun(tmp_path):
    lake = str(tmp_path / "lake")
    write_sample_lake(open_lake(lake), SampleLakeSpec(start=T0, hours=8, crisis_brand=None, skip_hours=(5,)))
    db = str(tmp_path / "wh.duckdb")
    ok, results = dbt_build(lake, db, T0, T0 + timedelta(hours=8))
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    assert results["assert_scores_are_probabilities"] == "pass" and results["fct_brand_risk_window"] == "success"

    conn = duckdb.connect(db)
    status = dict(conn.execute("select hour(window_start), any_value(data_status) from marts.fct_brand_risk_window "
                               "group by 1").fetchall())
    assert status[5] == "no_posts" and all(status[h] == "ok" for h in range(8) if h != 5)
    mentions = conn.execute("select count(*) from marts.fct_brand_mentions").fetchone()[0]
    raw_ids = conn.execute("select count(distinct post_id) from staging.stg_posts").fetchone()[0]
    assert mentions == raw_ids  # every sample post mentions exactly one brand, duplicates removed
    judged = conn.execute("select rule, is_firing from marts.mart_alert_candidates where hour(window_start) = 5").fetchall()
    assert {r for r, f in judged if f is True} == {"no_data"} and all(f is None for r, f in judged if r != "no_data")

    # "no data" is its own alert, and a resolved notice follows when data returns; calm otherwise
    evaluate(conn, T0, T0 + timedelta(hours=8))
    pub = ListPublisher()
    deliver(conn, pub)
    sent = [json.loads(p) for _, _, p in pub.sent]
    assert sorted((a["brand"], a["rule"], a["status"], a["window_start"][11:13]) for a in sent) == sorted(
        (b, "no_data", s, h) for b in ("acme", "globex", "initech") for s, h in (("firing", "05"), ("resolved", "06")))
    conn.close()

    # re-running one window replaces it exactly (incremental, no duplicates), reading only its
    # hour's partitions of the lake: the same rows as the build over all eight hours
    def window_rows(conn):  # sums in another order differ in the last bit: compare to 1e-9
        return {t: sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                           for row in conn.execute(f"select * from marts.{t} where hour(window_start) = 2").fetchall()),
                          key=str)
                for t in ("fct_brand_mentions", "fct_brand_risk_window")}

    conn = duckdb.connect(db, read_only=True)
    before = window_rows(conn)
    conn.close()
    ok, _ = dbt_build(lake, db, T0 + timedelta(hours=2), T0 + timedelta(hours=3), select="+fct_brand_risk_window")
    assert ok
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute("select count(*) from marts.fct_brand_mentions").fetchone()[0] == mentions
    assert conn.execute("select count(*) from marts.fct_brand_risk_window").fetchone()[0] == 8 * 3
    assert window_rows(conn) == before and before["fct_brand_mentions"]
    # the window's views hold its hour; its base model loaded the hour's partitions of the lake only
    assert conn.execute("select count(distinct hour(window_start)) from staging.stg_posts").fetchone()[0] == 1
    plan = "\n".join(r[1] for r in conn.execute(f"explain analyze {COMPILED['base_post_scores']}").fetchall())
    conn.close()
    scans = re.findall(r"Scanning Files: (\d+)/(\d+)", plan)
    assert scans == [("1", "7")], plan  # the window's hour of the seven score files (hour 5 has none)


def write_bad_score(tmp_path) -> str:
    """A sample lake over two hours plus a scorer bug: probabilities out of range and a
    label outside the contract, for one post. Returns the lake's path."""
    lake = str(tmp_path / "lake")
    store = open_lake(lake)
    spec = SampleLakeSpec(start=T0, hours=2, crisis_brand=None)
    write_sample_lake(store, spec)
    post_id = pq.read_table(tmp_path / "lake" / sample_raw_key(spec, "twitter", "2026-11-20", "00"))["post_id"][0].as_py()
    bad = {name: None for name in SCORES.names} | {
        "post_id": post_id, "platform": "twitter", "sentiment_label": "angry", "sentiment_negative": 1.7,
        "sentiment_neutral": 0.0, "sentiment_positive": 0.0, "offensive_score": 0.5, "hate_score": 0.1,
        "model_version": "bad-v2", "scored_at": T0 + timedelta(days=1)}  # newest: wins the dedup
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([bad], schema=SCORES), buf)
    store.put("scores/model=bad-v2/dt=2026-11-20/hour=00/bad.parquet", buf.getvalue())
    return lake


def test_dbt_tests_fail_on_bad_scores(tmp_path):
    lake = write_bad_score(tmp_path)
    ok, results = dbt_build(lake, str(tmp_path / "wh.duckdb"), T0, T0 + timedelta(hours=2))
    assert not ok
    assert results["assert_scores_are_probabilities"] == "fail"
    assert results["accepted_values_stg_post_scores_sentiment_label__negative__neutral__positive"] == "fail"
    assert results["unique_stg_posts_post_id"] == "pass"


BRANDS_HEADER = "brand,keywords,handles,hashtags,exclusions\n"


def test_brand_names_as_written_with_a_stable_identity(tmp_path, monkeypatch):
    """The marts and the alerts show a brand as the brands CSV writes it; its key (alert
    ids, incidents, the Kafka key) stays the same when only the case or spacing of the
    name changes, also in a warehouse whose marts were built before brand_name existed."""
    brands = tmp_path / "brands.csv"
    brands.write_text(BRANDS_HEADER + "Northwind Air,northwind,@northwind,#northwind,\nglobex,globex,@globex,#globex,\n")
    monkeypatch.setenv("REPUTATION_BRANDS_CSV", str(brands))
    lake, db = str(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    write_sample_lake(open_lake(lake), SampleLakeSpec(start=T0, hours=2, brands=("northwind", "globex"),
                                                      crisis_brand="northwind", crisis_hours=1))
    ok, results = dbt_build(lake, db, T0, T0 + timedelta(hours=2))
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    assert results["stg_brands_one_row_per_brand_ignoring_case_and_spaces"] == "pass"

    def assert_names(conn, northwind: str) -> None:
        """Every mart holds the two brands under their keys, Northwind Air written so."""
        want = {("northwind air", northwind), ("globex", "globex")}
        got = {t: set(conn.execute(f"select distinct brand, brand_name from marts.{t}").fetchall())
               for t in ("fct_brand_mentions", "fct_brand_risk_window", "mart_alert_candidates")}
        assert got == dict.fromkeys(got, want), got

    conn = duckdb.connect(db)
    assert_names(conn, "Northwind Air")
    evaluate(conn, T0, T0 + timedelta(hours=2))
    pub = ListPublisher()
    deliver(conn, pub)
    firing = [(key, json.loads(p)) for _, key, p in pub.sent if json.loads(p)["status"] == "firing"]
    assert firing and {key for key, _ in firing} == {"northwind air"}
    for key, alert in firing:
        assert (alert["brand"], alert["labels"]["brand"], alert["brand_name"]) == (key, key, "Northwind Air")
        assert alert["summary"].startswith("Northwind Air: ")
    # a warehouse built before brand_name existed: the incremental marts lack the column
    for table in ("fct_brand_mentions", "fct_brand_risk_window"):
        conn.execute(f"alter table marts.{table} drop column brand_name")
    conn.close()

    brands.write_text(BRANDS_HEADER + "  NORTHWIND \t air ,northwind,@northwind,#northwind,\nglobex,globex,@globex,#globex,\n")
    ok, results = dbt_build(lake, db, T0, T0 + timedelta(hours=2))
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    conn = duckdb.connect(db)
    assert_names(conn, "NORTHWIND air")
    # the same alerts: the history knows every decision, nothing is recorded or published again
    assert evaluate(conn, T0, T0 + timedelta(hours=2)).recorded == 0
    again = ListPublisher()
    deliver(conn, again)
    assert again.sent == []
    conn.close()


def test_dbt_refuses_two_brands_rows_that_differ_only_by_case_or_spaces(tmp_path, monkeypatch):
    """The dbt test behind the check before the build (aggregation/brands.py), for a dbt
    build run by hand."""
    brands = tmp_path / "brands.csv"
    brands.write_text(BRANDS_HEADER + "Acme,acme,@acme,#acme,\nglobex,globex,,,\n acme  ,acme corp,,,\n")
    monkeypatch.setenv("REPUTATION_BRANDS_CSV", str(brands))
    ok, results = dbt_build(str(tmp_path / "lake"), str(tmp_path / "wh.duckdb"), select="stg_brands")
    assert not ok
    assert results["stg_brands_one_row_per_brand_ignoring_case_and_spaces"] == "fail"


def test_the_dbt_asset_names_the_duplicate_brands_rows(tmp_path, monkeypatch):
    brands = tmp_path / "brands.csv"
    brands.write_text(BRANDS_HEADER + "Acme,acme,@acme,#acme,\nglobex,globex,,,\n acme  ,acme corp,,,\n")
    monkeypatch.setenv("REPUTATION_BRANDS_CSV", str(brands))
    result = materialize_dbt(str(tmp_path / "lake"), str(tmp_path / "wh.duckdb"), in_process=True,
                             raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "line 2 'Acme' and line 4 ' acme  ' are both brand 'acme'" in message and str(brands) in message
    assert not (tmp_path / "wh.duckdb").exists()  # refused before dbt ran


@pytest.mark.s3
def test_dbt_reads_an_s3_lake(s3_endpoint, s3_lake_uri, tmp_path):
    write_sample_lake(open_lake(s3_lake_uri), SampleLakeSpec(start=T0, hours=3, crisis_brand=None))
    db = str(tmp_path / "wh.duckdb")
    ok, results = dbt_build(s3_lake_uri, db, T0, T0 + timedelta(hours=3), select="+fct_brand_risk_window")
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute("select count(*), count(distinct brand) from marts.fct_brand_risk_window "
                        "where data_status = 'ok'").fetchone() == (9, 3)
    conn.close()


# dbt as a Dagster asset: in the run's process (the default) and as a subprocess

RANGE_TAGS = {"dagster/asset_partition_range_start": "2026-11-20-00:00",
              "dagster/asset_partition_range_end": "2026-11-20-01:00"}


def materialize_dbt(lake: str, db: str, in_process: bool, raise_on_error: bool = True):
    resources = {"dbt": dbt_resource(in_process=in_process), "warehouse": WarehouseResource(duckdb_path=db),
                 "lake": LakeResource(uri=lake)}
    return dg.materialize([reputation_dbt_assets], resources=resources, tags=RANGE_TAGS,
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


def _outcome(result) -> tuple[set, dict]:
    mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    return mats, checks


def test_in_process_dbt_matches_the_subprocess(tmp_path):
    lake = str(tmp_path / "lake")
    write_sample_lake(open_lake(lake), SampleLakeSpec(start=T0, hours=2, crisis_brand="acme", crisis_hours=1))
    inproc, subproc = str(tmp_path / "inproc.duckdb"), str(tmp_path / "subproc.duckdb")
    first = materialize_dbt(lake, inproc, in_process=True)
    manifest, _ = next(iter(dbt_inprocess._MANIFESTS.values()))
    again = materialize_dbt(lake, inproc, in_process=True)
    kept = list(dbt_inprocess._MANIFESTS.values())
    assert len(kept) == 1 and kept[0][0] is manifest  # the same object: no parse the second time
    other = materialize_dbt(lake, subproc, in_process=False)
    assert first.success and again.success and other.success

    mats, checks = _outcome(first)
    assert (mats, checks) == _outcome(other) == _outcome(again)
    assert {"stg_posts", "fct_brand_risk_window", "mart_alert_candidates", "brands"} <= mats
    assert checks and all(checks.values()) and "assert_scores_are_probabilities" in checks

    # same rows; and dbt released the warehouse file: this process opens it with another configuration
    query = "select brand, window_start, mention_count, round(weighted_risk, 9) from marts.fct_brand_risk_window order by all"
    with duckdb.connect(inproc, config={"threads": 1}) as a, duckdb.connect(subproc, read_only=True) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
        assert a.execute("select count(*) from marts.mart_alert_candidates where is_firing").fetchone()[0] > 0


def test_in_process_dbt_fails_the_step_with_dbts_error(tmp_path):
    lake = write_bad_score(tmp_path)
    result = materialize_dbt(lake, str(tmp_path / "wh.duckdb"), in_process=True, raise_on_error=False)
    assert not result.success
    _, checks = _outcome(result)
    assert checks["assert_scores_are_probabilities"] is False and checks["unique_stg_posts_post_id"] is True
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "assert_scores_are_probabilities" in failure.step_failure_data.error.message


def test_kept_manifest_follows_the_environment_it_read(monkeypatch):
    """dbt records the variables it read while parsing (a placeholder when unset); a change
    of one of them means parsing again, any other variable does not."""
    from dbt.constants import DEFAULT_ENV_PLACEHOLDER

    parsed = {"REPUTATION_LAKE": DEFAULT_ENV_PLACEHOLDER, "REPUTATION_PLATFORMS": "twitter"}

    monkeypatch.delenv("REPUTATION_LAKE", raising=False)
    monkeypatch.setenv("REPUTATION_PLATFORMS", "twitter")
    monkeypatch.setenv("SOMETHING_ELSE", "1")
    assert not dbt_inprocess._env_changed(parsed)
    monkeypatch.setenv("REPUTATION_LAKE", "s3://other")
    assert dbt_inprocess._env_changed(parsed)
    monkeypatch.delenv("REPUTATION_LAKE")
    monkeypatch.setenv("REPUTATION_PLATFORMS", "twitter,reddit")
    assert dbt_inprocess._env_changed(parsed)


def test_s3_settings_only_for_a_lake_on_s3():
    """The profile's plugin sets the S3 options (which load httpfs, ~85 ms per dbt
    invocation) on dbt's cursors only when the lake is on S3."""
    from reputation_pipeline.lake.duckdb_s3 import Plugin
    from reputation_pipeline.aggregation.warehouse import httpfs_extension_directory

    config = {"s3_endpoint": "127.0.0.1:9000", "s3_region": "eu-west-1", "s3_secret_access_key": "it's-secret"}

    def httpfs_after(lake_root: str):
        with duckdb.connect(config={"extension_directory": httpfs_extension_directory()}) as conn:
            Plugin("duckdb_s3", {**config, "lake_root": lake_root}).configure_cursor(conn)
            loaded = conn.execute("select loaded from duckdb_extensions() where extension_name = 'httpfs'").fetchone()[0]
            region = conn.execute("select current_setting('s3_region')").fetchone()[0] if loaded else None
        return loaded, region

    assert httpfs_after("/data/lake") == (False, None)
    assert httpfs_after("s3://bucket/lake") == (True, "eu-west-1")
