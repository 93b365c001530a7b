"""post_scores end to end: raw posts written to a lake (local folder and an S3
endpoint served by moto over HTTP), materialized with Dagster, re-run."""
from __future__ import annotations

import io
import json
import shutil

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.scoring import ScoringModelsResource, scoring_assets, scoring_checks
from reputation_pipeline.scoring.models import DEFAULT_MODELS_DIR
from reputation_pipeline.scoring.pipeline import read_partition_scores
from reputation_pipeline_tests.conftest_scoring import (  # noqa: F401  (fixtures)
    commit_range, lake_resource, moto_endpoint, open_store, raw_name, s3_lake_uri, snapshot, write_raw,
)

DT, HH = "2026-11-26", "03"
PARTITION = f"{DT}-{HH}:00"
RAW_POSTS_SPEC = dg.AssetSpec("raw_posts", partitions_def=scoring_assets[0].partitions_def)


def _write_partition(store) -> set[str]:
    """Two platforms, three files; duplicates, reposts, other languages, empty text."""
    write_raw(store, "twitter", DT, HH, "twitter-0-0000000000-0000000004", [
        {"post_id": "t1", "text": "I absolutely love the new @Acme phone, best purchase ever! 😍 https://t.co/x", "kafka_offset": 0},
        {"post_id": "t2", "text": "@Acme your customer service is a disgrace, you stupid idiots #WorstServiceEver", "kafka_offset": 1},
        {"post_id": "t1", "text": "I absolutely love the new @Acme phone, best purchase ever! 😍 https://t.co/x", "kafka_offset": 2},
        {"post_id": "t3", "text": "Acme stock closes at 102 dollars today", "kafka_offset": 3},
        {"post_id": "t4", "text": "El servicio de Acme es terrible", "language": "es", "kafka_offset": 4},
    ])
    write_raw(store, "twitter", DT, HH, "twitter-0-0000000005-0000000007", [
        # repost of t1's text by someone else (different mention/url -> same normalized text)
        {"post_id": "t5", "text": "I absolutely love the new @AcmeSupport phone, best purchase ever! 😍 http://bit.ly/y", "kafka_offset": 5},
        {"post_id": "t2", "text": "@Acme your customer service is a disgrace, you stupid idiots #WorstServiceEver", "kafka_offset": 6},
        {"post_id": "t6", "text": "", "kafka_offset": 7},
    ])
    write_raw(store, "reddit", DT, HH, "reddit-0-0000000000-0000000001", [
        {"post_id": "r1", "text": "Honestly the Acme update is fine, nothing special", "language": None, "kafka_offset": 0},
        {"post_id": "r2", "text": "These people should all be deported, they are vermin", "language": "en-US", "kafka_offset": 1},
        # no language stated: detected as Spanish, which the models do not cover
        {"post_id": "r3", "text": "El servicio al cliente de Acme es un desastre, nunca más compro aquí",
         "language": None, "kafka_offset": 2},
    ])
    return {"t1", "t2", "t3", "t4", "t5", "t6", "r1", "r2", "r3"}


def _materialize(lake, scoring=None, raise_on_error=True):
    return dg.materialize(
        [*scoring_assets, RAW_POSTS_SPEC, *scoring_checks],
        selection=dg.AssetSelection.assets("post_scores") | dg.AssetSelection.checks_for_assets("post_scores"),
        partition_key=PARTITION,
        resources={"lake": lake, "scoring_models": scoring or ScoringModelsResource()},
        raise_on_error=raise_on_error,
    )


def _check_results(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _verify_partition(store, expected_ids: set[str]) -> str:
    version = json.loads((DEFAULT_MODELS_DIR / "heads.json").read_text())["model_version"]
    keys = list(store.list("scores/"))
    assert keys and all(k.startswith(f"scores/model={version}/dt={DT}/hour={HH}/") for k in keys), keys
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted([
        f"twitter__{raw_name('twitter', 'twitter-0-0000000000-0000000004')}",
        f"twitter__{raw_name('twitter', 'twitter-0-0000000005-0000000007')}",
        f"reddit__{raw_name('reddit', 'reddit-0-0000000000-0000000001')}"])
    table = read_partition_scores(store, version, DT, HH)
    rows = {r["post_id"]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows == len(expected_ids)  # one row per unique post_id
    assert set(rows) == expected_ids
    assert {r["model_version"] for r in rows.values()} == {version}
    assert rows["t1"]["platform"] == "twitter" and rows["r1"]["platform"] == "reddit"
    # reposts share the content hash and the scores
    assert rows["t1"]["content_hash"] == rows["t5"]["content_hash"]
    assert rows["t1"]["sentiment_positive"] == rows["t5"]["sentiment_positive"]
    # languages the models do not cover are left unscored, with the reason
    assert rows["t4"]["unscored_reason"] == "unsupported_language:es"
    assert rows["t4"]["sentiment_label"] is None and rows["t4"]["hate_score"] is None
    assert rows["r3"]["unscored_reason"] == "unsupported_language:es" and rows["r3"]["sentiment_label"] is None
    assert (rows["t4"]["language_source"], rows["r3"]["language_source"]) == ("stated", "detected")
    assert rows["r3"]["detected_language"] == "es" and rows["r3"]["language"] is None
    # an English post stating no language (r1) is scored (below) whatever the detector made of it
    assert rows["r1"]["language"] is None and rows["r1"]["language_source"] in ("detected", "assumed")
    assert rows["t1"]["language_source"] == "stated"
    assert rows["t6"]["unscored_reason"] == "empty_text"
    for pid in ("t1", "t2", "t3", "t5", "r1", "r2"):
        r = rows[pid]
        assert r["unscored_reason"] is None
        assert r["sentiment_label"] in ("negative", "neutral", "positive")
        assert abs(r["sentiment_negative"] + r["sentiment_neutral"] + r["sentiment_positive"] - 1) < 1e-4
        assert 0 <= r["offensive_score"] <= 1 and 0 <= r["hate_score"] <= 1
    # the default models must get the obvious cases right
    assert rows["t1"]["sentiment_label"] == "positive"
    assert rows["t2"]["sentiment_label"] == "negative"
    assert rows["t2"]["offensive_label"] == "offensive"
    assert rows["t1"]["offensive_label"] == "not-offensive"
    return version


def _run_twice(uri: str, endpoint: str | None = None):
    store = open_store(uri, endpoint)
    expected = _write_partition(store)
    lake = lake_resource(uri, endpoint)
    result = _materialize(lake)
    assert result.success
    checks = _check_results(result)
    assert checks == {"scores_in_range": True, "scores_null_rate": True, "label_drift": True}, checks
    mat = result.asset_materializations_for_node("post_scores")[0]
    assert mat.metadata["rows_written"].value == len(expected)
    assert mat.metadata["unsupported_language_rows"].value == 2  # t4 (stated), r3 (detected)
    # 6 scored rows, two of them the same text (t1/t5 repost): 5 texts through the models
    assert mat.metadata["distinct_texts_scored"].value == 5
    version = _verify_partition(store, expected)
    before = snapshot(store)

    again = _materialize(lake)
    assert again.success
    mat2 = again.asset_materializations_for_node("post_scores")[0]
    assert mat2.metadata["written_files"].value == [] and mat2.metadata["skipped_input_files"].value == 3
    assert snapshot(store) == before  # re-running changes nothing
    return store, lake, version, before


def test_post_scores_local_lake(tmp_path):
    store, lake, version, before = _run_twice(str(tmp_path / "lake"))

    # a new raw file arriving later: only it is scored; a post_id already scored is not repeated
    write_raw(store, "twitter", DT, HH, "twitter-0-0000000008-0000000009", [
        {"post_id": "t2", "text": "@Acme your customer service is a disgrace", "kafka_offset": 8},
        {"post_id": "t7", "text": "Thanks Acme, the repair was quick and free", "kafka_offset": 9},
    ])
    assert _materialize(lake).success
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k in before} == before
    new = [k for k in after if k not in before]
    assert len(new) == 1
    assert pq.read_table(io.BytesIO(after[new[0]])).column("post_id").to_pylist() == ["t7"]

    # a raw file whose range is not committed (a drain in flight, or one that never will: its
    # offsets expired before a retry) is not scored; once the commit exists, it is
    write_raw(store, "twitter", DT, HH, "twitter-0-0000000010-0000000011", [
        {"post_id": "t8", "text": "Acme lost my parcel again", "kafka_offset": 10}], committed=False)
    result = _materialize(lake)
    assert result.success and snapshot(store).keys() == after.keys()
    mat = result.asset_materializations_for_node("post_scores")[0]
    assert mat.metadata["uncommitted_input_files"].value == 1
    commit_range(store, "social.posts.twitter", 0, 10)
    assert _materialize(lake).success
    final = snapshot(store)
    [scored] = [k for k in final if k not in after]
    assert pq.read_table(io.BytesIO(final[scored])).column("post_id").to_pylist() == ["t8"]


def test_scores_in_range_fails_on_a_bad_file_arriving_after_good_ones(tmp_path):
    """The check keeps what it learned of the hour's files (each read once per process);
    a file arriving later is still read and judged, with duplicates across files."""
    store, lake, version, _ = _run_twice(str(tmp_path / "lake"))
    good = read_partition_scores(store, version, DT, HH)
    bad = good.slice(0, 2).to_pylist()
    bad[0]["hate_score"] = 1.7  # out of range; bad[1] repeats a post_id already scored
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(bad, schema=good.schema), buf)
    store.put(f"scores/model={version}/dt={DT}/hour={HH}/twitter__late.parquet", buf.getvalue())
    result = _materialize(lake, raise_on_error=False)
    assert not result.success  # the check is blocking
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}["scores_in_range"]
    assert not evaluation.passed
    assert evaluation.metadata["hate_score_out_of_range"].value == 1
    assert evaluation.metadata["duplicate_post_ids"].value == 2
    assert evaluation.metadata["rows"].value == good.num_rows + 2


def test_new_model_version_is_a_backfill_into_a_new_folder(tmp_path):
    store, lake, version, before = _run_twice(str(tmp_path / "lake"))
    # a second model: the same heads under another version (as a retrained bundle would be)
    other = tmp_path / "other_models"
    shutil.copytree(DEFAULT_MODELS_DIR, other)
    meta = json.loads((other / "heads.json").read_text())
    meta["model_version"] = "minilm6-mlp-retrained"
    (other / "heads.json").write_text(json.dumps(meta))
    scoring = ScoringModelsResource(sentiment_model=str(other), offensive_model=str(other), hate_model=str(other))
    result = _materialize(lake, scoring)
    assert result.success
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k in before} == before  # old version untouched
    new = sorted(k for k in after if k not in before)
    assert len(new) == 3 and all(k.startswith(f"scores/model=minilm6-mlp-retrained/dt={DT}/hour={HH}/") for k in new)
    table = read_partition_scores(store, "minilm6-mlp-retrained", DT, HH)
    assert set(table.column("model_version").to_pylist()) == {"minilm6-mlp-retrained"}


@pytest.mark.s3
def test_post_scores_s3_lake(s3_lake_uri, moto_endpoint):
    store, _lake, version, _ = _run_twice(s3_lake_uri, moto_endpoint)
    assert store.url().startswith("s3://")
