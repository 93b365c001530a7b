"""No single record can fail its batch or stall its partition: every hostile value,
Kafka timestamp or key is either a post in an hour partition Dagster knows or a
quarantine row with its reason, and the fast path agrees with validate_post on it.
Pure property tests first, then the same records through a real broker and the
import readers."""
import csv
import io
import json
from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from hypothesis import HealthCheck, given, settings, strategies as st

from reputation_pipeline.ingest import fastpath
from reputation_pipeline.lake.parquet import parquet_bytes
from reputation_pipeline.ingest.headless import drain_until_idle
from reputation_pipeline.ingest.importer import import_file
from reputation_pipeline.ingest.kafka_client import topic_for
from reputation_pipeline.ingest.validate import MAX_SKEW_MS, MIN_EVENT_MS, Rejection, validate_post
from reputation_pipeline.lake.read import read_parquet_prefix
from reputation_pipeline.lake.schemas import QUARANTINE, RAW_POSTS
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.partitions import hourly_partitions

NOW_MS = int(datetime(2026, 11, 26, 12, tzinfo=timezone.utc).timestamp() * 1000)
CTX = fastpath.Context("social.posts.twitter", 0, "twitter", frozenset({"twitter"}), NOW_MS)
INT64 = (-(2**63), 2**63 - 1)
HOSTILE_MS = [INT64[0], -(2**62), -1, 0, 1, MIN_EVENT_MS - 1, MIN_EVENT_MS, NOW_MS, NOW_MS + MAX_SKEW_MS,
              NOW_MS + MAX_SKEW_MS + 1, 253402300799999, 253402300800000, 2**53, 2**62, INT64[1]]


def _post(**over) -> dict:
    return {"post_id": "p-1", "platform": "twitter", "author_id": "a-1", "text": "Northwind lost my bag", **over}


def _reference(values, timestamps, keys, ctx=CTX):
    """validate_post one message at a time: the single source of truth."""
    rows, rejected = [], []
    for offset, (value, ts, key) in enumerate(zip(values, timestamps, keys)):
        result = validate_post(value, topic_platform=ctx.platform, known_platforms=ctx.known_platforms,
                               kafka_timestamp_ms=ts, reference_ms=ctx.reference_ms)
        if isinstance(result, Rejection):
            rejected.append(fastpath.quarantine_row(ctx, offset, ts, key, value, result))
        else:
            rows.append({**result, "kafka_topic": ctx.topic, "kafka_partition": ctx.partition, "kafka_offset": offset,
                         "kafka_timestamp": fastpath.kafka_datetime(ts)})
    return pa.Table.from_pylist(rows, schema=RAW_POSTS), rejected


def _assert_in_known_hours(posts: pa.Table, reference_ms: int) -> None:
    keys = {t.strftime("%Y-%m-%d-%H:00") for t in posts.column("event_time").to_pylist()}
    with dg.partition_loading_context(effective_dt=datetime.fromtimestamp(reference_ms / 1000, timezone.utc)):
        last = hourly_partitions.get_last_partition_key()
        first = hourly_partitions.get_first_partition_key()
    assert all(first <= k <= last for k in keys), (keys, first, last)


def _check(values, timestamps, keys, ctx=CTX):
    offsets = list(range(len(values)))
    result = fastpath.convert(values, offsets, timestamps, keys, ctx)
    posts = result.posts.sort_by("kafka_offset")
    ref_posts, ref_rejected = _reference(values, timestamps, keys, ctx)
    assert posts.to_pylist() == ref_posts.to_pylist()
    assert result.quarantine == ref_rejected
    assert posts.num_rows + len(result.quarantine) == len(values)  # nothing lost, nothing doubled
    _assert_in_known_hours(posts, ctx.reference_ms)
    # both tables can be written as the drain writes them
    parquet_bytes(posts)
    parquet_bytes(pa.Table.from_pylist(result.quarantine, schema=QUARANTINE))
    return posts, result.quarantine


def test_a_kafka_timestamp_outside_the_partitions_is_quarantined_on_both_paths():
    values, timestamps = [], []
    for ts in HOSTILE_MS:
        for created in (None, "2026-11-26T11:00:00Z", "9999-12-31T23:00:00-05:00"):
            values.append(json.dumps(_post(created_at=created)).encode())
            timestamps.append(ts)
    posts, quarantine = _check(values, timestamps, [None] * len(values))
    accepted_ts = {fastpath.kafka_datetime(ts) for ts in HOSTILE_MS if MIN_EVENT_MS <= ts <= NOW_MS + MAX_SKEW_MS}
    assert set(posts.column("kafka_timestamp").to_pylist()) == accepted_ts
    assert {q["reason"] for q in quarantine} == {"invalid_kafka_timestamp", "invalid_timestamp", "absurd_timestamp"}
    unrepresentable = [q for q in quarantine if q["kafka_timestamp"] is None]
    assert unrepresentable and all(q["reason"] == "invalid_kafka_timestamp" for q in unrepresentable)


def test_created_at_is_bounded_by_the_plans_clock_not_only_the_brokers():
    # a producer's CreateTime a day ahead must not let created_at reach an hour past the partitions
    ahead = NOW_MS + MAX_SKEW_MS
    values = [json.dumps(_post(created_at=c)).encode() for c in ("2026-11-27T12:00:00Z", "2026-11-28T11:00:00Z")]
    posts, quarantine = _check(values, [ahead, ahead], [None, None])
    assert posts.num_rows == 1 and [q["reason"] for q in quarantine] == ["absurd_timestamp"]


JSON_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=40)
FIELDS = ["post_id", "platform", "author_id", "author_handle", "author_followers", "text", "created_at", "url",
          "language", "hashtags", "mentions", "media", "metrics", "repost_of", "reply_to"]


@st.composite
def hostile_message(draw) -> bytes | None:
    kind = draw(st.sampled_from(["bytes", "mutated", "json"]))
    if kind == "bytes":
        return draw(st.none() | st.binary(max_size=300))
    obj = _post(created_at=draw(st.none() | st.sampled_from(
        ["2026-11-26T11:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
         "2026-11-26T11:00:00.9999999Z", "2026-02-29T00:00:00Z"]) | st.text(max_size=30)))
    if kind == "json":
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
            obj[name] = draw(JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3) | st.dictionaries(st.text(max_size=8), JSON_SCALARS, max_size=3))
    try:
        raw = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        raw = b"{}"
    if kind == "mutated" and raw:
        pos = draw(st.integers(0, len(raw) - 1))
        raw = raw[:pos] + draw(st.binary(min_size=0, max_size=4)) + raw[pos + 1:]
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(hostile_message(), st.integers(*INT64) | st.sampled_from(HOSTILE_MS),
                          st.none() | st.binary(max_size=20)), min_size=1, max_size=30))
def test_hostile_records_never_fail_the_batch_and_both_paths_agree(records):
    values, timestamps, keys = (list(x) for x in zip(*records))
    _check(values, timestamps, keys)


# -- the same through the real broker --------------------------------------------------------------

@pytest.mark.kafka
def test_a_poison_kafka_timestamp_does_not_stall_the_partition(kafka_settings, tmp_path, platform):
    topic = topic_for(platform)
    # Kafka 4 refuses CreateTimes more than an hour ahead by default; earlier brokers, and this
    # topic, take any timestamp a producer sets
    admin = AdminClient(kafka_settings.client_config())
    admin.create_topics([NewTopic(topic, 1, -1, config={"message.timestamp.after.max.ms": str(2**63 - 1)})])[topic].result(30)
    producer = Producer(kafka_settings.client_config())
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    poison = [1, MIN_EVENT_MS - 1, 2**62, 2**63 - 1, now_ms + 3 * MAX_SKEW_MS]  # (0 would mean "now" to librdkafka)
    errors = []
    for i, ts in enumerate(poison):  # no created_at: the broker's timestamp would be the event time
        producer.produce(topic, json.dumps({**_post(platform=platform), "post_id": f"poison-{i}"}).encode(), timestamp=ts,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
        producer.flush(30)  # one record a request: the broker judges each timestamp alone
    for i in range(20):  # the good posts behind them
        producer.produce(topic, json.dumps({**_post(platform=platform), "post_id": f"good-{i}"}).encode())
    assert producer.flush(30) == 0 and not errors
    store = open_lake(str(tmp_path / "lake"))
    summary = drain_until_idle(kafka_settings, store, frozenset({platform}))
    assert summary.rows == 20 and summary.quarantined == len(poison)
    q = read_parquet_prefix(store, "quarantine/")
    assert sorted(q["offset"].to_pylist()) == list(range(len(poison)))
    assert set(q["reason"].to_pylist()) == {"invalid_kafka_timestamp"}
    assert drain_until_idle(kafka_settings, store, frozenset({platform})).batches == 0  # nothing left pending


# -- the import readers ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.text(max_size=12) | st.sampled_from(["-99999999999999999999", "9" * 19, "-" + "9" * 19,
                                                                      "[[[[", "[1,2]", "\x00", "\ud800"]),
                              min_size=0, max_size=7), max_size=8))
def test_hostile_csv_rows_are_quarantined_not_raised(tmp_path, rows):
    header = ["post_id", "author_id", "text", "created_at", "likes", "hashtags", "media"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(row)
    path = tmp_path / f"hostile-{abs(hash(buf.getvalue()))}.csv"
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))
    result = import_file(path, platform="twitter", store=open_lake(str(tmp_path / "lake")),
                         known_platforms=frozenset({"twitter"}), as_of=datetime(2026, 11, 26, tzinfo=timezone.utc))
    assert result.status == "imported"
    assert result.rows + result.quarantined == sum(1 for r in rows if r and r != [""])


def test_a_parquet_row_python_cannot_hold_is_quarantined(tmp_path):
    path = tmp_path / "far.parquet"
    pq.write_table(pa.table({
        "post_id": ["ok-1", "far-1", "ok-2"], "author_id": ["a", "a", "a"], "text": ["fine", "far", "fine"],
        "created_at": pa.array([1764150000 * 10**6, 2**62, 1764150060 * 10**6], pa.timestamp("us", tz="UTC")),
        "likes": pa.array([1, -(2**63), 2**63 - 1], pa.int64()),
    }), path)
    store = open_lake(str(tmp_path / "lake"))
    result = import_file(path, platform="twitter", store=store, known_platforms=frozenset({"twitter"}),
                         as_of=datetime(2026, 11, 27, tzinfo=timezone.utc))
    assert (result.rows, result.quarantined) == (1, 2)
    q = read_parquet_prefix(store, "quarantine/")
    assert sorted(zip(q["offset"].to_pylist(), q["reason"].to_pylist())) == [(2, "malformed_record"), (3, "invalid_value")]


def test_the_event_time_range_starts_where_the_partitions_do():
    first = datetime.strptime(hourly_partitions.get_first_partition_key(), "%Y-%m-%d-%H:%M").replace(tzinfo=timezone.utc)
    assert int(first.timestamp() * 1000) == MIN_EVENT_MS
