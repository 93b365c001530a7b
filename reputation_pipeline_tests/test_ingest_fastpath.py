"""The drain's vectorized fast path must produce exactly what validate_post
(the slow path) produces, message by message, however messages are batched.
Pure: fake message coordinates, no broker."""
import hashlib
import json
import random
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from reputation_pipeline.ingest import fastpath
from reputation_pipeline.lake.parquet import parquet_bytes
from reputation_pipeline.ingest.synthetic import BAD_CLASSES, PostGenerator, SyntheticConfig, bad_message
from reputation_pipeline.ingest.validate import Limits, Rejection, validate_post
from reputation_pipeline.lake.schemas import RAW_POSTS

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
PLANNED_MS = NOW_MS + 60_000  # a range is planned after its messages arrived
CTX = fastpath.Context("social.posts.twitter", 3, "twitter", frozenset({"twitter", "reddit"}), PLANNED_MS)


def _posts(n: int, seed: int = 1) -> list[dict]:
    gen = PostGenerator(SyntheticConfig("twitter", seed=seed, now=NOW))
    return [gen.post() for _ in range(n)]


def _enc(obj, **kw) -> bytes:
    return json.dumps(obj, **kw).encode()


def _edge_cases(base: dict) -> list[bytes | None]:
    """Messages at every boundary of the rules, accepted and rejected."""
    def with_(**over):
        return _enc({**base, **over}, ensure_ascii=False)

    good = _enc(base, ensure_ascii=False)
    cases = [
        None, b"", b"   ", b"null", b"[]", b"42", b"{}", b'{"post_id":', good + b" " + good, good + b"\n" + good,
        b" " + good, good + b" ", good.replace(b", ", b",\n "), good.replace(b", ", b",\r\n"), b"\xef\xbb\xbf" + good,
        _enc(base, indent=2), _enc(base, ensure_ascii=True), good.replace(b"}", b', "extra": "\xff"}', 1)[:-1] + b"}",
        good[:-1] + b', "post_id": "dup-1"}', good[:-1] + b', "a": "x\tb"}',
        good[:-1] + b', "extra": {"deep": [1, 2.5, {"x": "y"}], "n": 1e-400, "big": 123456789012345678901234567890}}',
        good[:-1] + b', "x": ' + b"[" * 1100 + b"]" * 1100 + b"}", good[:-1] + b', "x": ' + b"[" * 900 + b"]" * 900 + b"}",
        good[:-1] + b', "x": "\\u0000"}', good[:-1] + b', "x": "\\\\u0000"}', good[:-1] + b', "x": "\\ud800"}',
        with_(text="emoji \\ud83d\\ude00 and \U0001F525 caf\u00e9"), _enc({**base, "text": "caf\u00e9 \U0001F600"}),
        good.replace(b'"text": "', b'"text": "\\ud83d\\ude00 \\u00e9 \\/ \\n ', 1),
        with_(text=""), with_(text="x" * 40_000), with_(text="x" * 40_001), with_(text=None), with_(text=["a"]),
        with_(post_id=""), with_(post_id=5), with_(post_id="abc\n"), with_(post_id="a" * 128), with_(post_id="a" * 129),
        with_(post_id="caf\u00e9"), with_(author_id=None), with_(author_handle=""), with_(author_handle="h" * 129),
        with_(platform="reddit"), with_(platform="myspace"), with_(platform=None), with_(platform="Twitter"),
        with_(url=""), with_(url="https://\u4f8b\u3048.jp/x"), with_(url="https://a b"), with_(url="https://x/" + "a" * 2040),
        with_(url="ftp://x\n"), with_(url=None), with_(language="en-US"), with_(language="EN"), with_(language="en\n"),
        with_(language=""), with_(language=None), with_(repost_of="x y"), with_(reply_to="r-1"), with_(reply_to=7),
        with_(author_followers=True), with_(author_followers=5.0), with_(author_followers=-1), with_(author_followers=2**62),
        with_(author_followers=2**62 + 1), with_(author_followers=2**63), with_(author_followers=2**64), with_(author_followers="9"),
        with_(metrics=None), with_(metrics={}), with_(metrics=0), with_(metrics=[]), with_(metrics=""), with_(metrics=[1, 2]),
        with_(metrics={"likes": False}), with_(metrics={"likes": "5"}), with_(metrics={"views": 10, "other": "x"}),
        with_(metrics={"likes": 1, "likes2": -1}), with_(metrics={"shares": -3}),
        with_(media=None), with_(media=[]), with_(media=[None]), with_(media=[{"type": "image"}]), with_(media={"type": "i"}),
        with_(media=[{"type": "t" * 40, "uri": "s3://b/k", "extra": 1}]), with_(media=[{"type": "i", "uri": "../x"}]),
        with_(media=[{"type": "\U0001F600" * 40, "uri": "s3://b/\u00e9"}]), with_(media=[{"type": 1, "uri": "s3://b/k"}]),
        with_(hashtags=["#a", "@b", "##c", "d#"]), with_(hashtags=None), with_(hashtags=[]), with_(hashtags=[None]),
        with_(hashtags="x"), with_(mentions=["@someone"]), with_(mentions=[1]),
    ]
    for created in ["2026-11-26T10:00:00", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.5Z", "2026-11-26T10:00:00.123456+00:00",
                    "2026-11-26T10:00:00.1234567+00:00", "2026-11-26T10:00:00+05:30", "2026-11-26T10:00:00-08:00",
                    "2026-11-26T10:00:00+00:60", "2026-11-26T10:00:00+24:00", "2026-11-26 10:00:00+00:00", "2026-11-26",
                    "2026-11-26T10:00:00+0530", "2026-11-26T10:00+00:00", "2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z",
                    "2026-13-01T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T23:59:60Z", "2026-11-27T12:00:00Z",
                    "2026-11-27T12:00:00.000001Z", "2026-11-27T13:00:00+01:00", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z",
                    "2000-01-01T00:30:00+01:00", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00", "", "yesterday",
                    "2026-11-26T10:00:00z", "\uff12026-11-26T10:00:00Z", None, 1764151200]:
        cases.append(with_(created_at=created))
    cases.append(_enc({k: v for k, v in base.items() if k != "created_at"}))
    return cases


def _corpus(n_good: int = 3000, seed: int = 1) -> list[bytes | None]:
    rng = random.Random(seed)
    posts = _posts(n_good, seed)
    values = [_enc(p, ensure_ascii=rng.random() < 0.8) for p in posts]
    values += [bad_message(kind, posts[i % n_good]) for i, kind in enumerate(BAD_CLASSES * 5)]
    values += _edge_cases(posts[0])
    rng.shuffle(values)
    return values


def _coords(values, jitter_ms: int = 5000):
    n = len(values)
    offsets = list(range(1000, 1000 + n))
    timestamps = [NOW_MS + (i * 7919) % jitter_ms - jitter_ms // 2 for i in range(n)]
    keys = [None if i % 5 == 0 else f"k{i}".encode() for i in range(n)]
    return offsets, timestamps, keys


def _reference(values, ctx=CTX, jitter_ms: int = 5000, coords=None):
    """validate_post on every message, as the drain did before the fast path."""
    offsets, timestamps, keys = coords or _coords(values, jitter_ms)
    rows, rejected = [], []
    for value, offset, ts_ms, key in zip(values, offsets, timestamps, keys):
        result = validate_post(value, topic_platform=ctx.platform, known_platforms=ctx.known_platforms,
                               kafka_timestamp_ms=ts_ms, reference_ms=ctx.reference_ms, limits=ctx.limits)
        kafka_ts = fastpath.kafka_datetime(ts_ms)
        if isinstance(result, Rejection):
            rejected.append({"reason": result.reason, "detail": result.detail, "topic": ctx.topic,
                             "partition": ctx.partition, "offset": offset, "kafka_timestamp": kafka_ts, "key": key,
                             "raw": None if value is None else value[:64 * 1024], "raw_size": None if value is None else len(value),
                             "raw_sha256": None if value is None else hashlib.sha256(value).hexdigest()})
        else:
            rows.append({**result, "kafka_topic": ctx.topic, "kafka_partition": ctx.partition, "kafka_offset": offset,
                         "kafka_timestamp": kafka_ts})
    return pa.Table.from_pylist(rows, schema=RAW_POSTS), rejected


def _convert(values, batch: int | None = None, ctx=CTX, jitter_ms: int = 5000, coords=None):
    offsets, timestamps, keys = coords or _coords(values, jitter_ms)
    step = batch or len(values)
    results = [fastpath.convert(values[i:i + step], offsets[i:i + step], timestamps[i:i + step], keys[i:i + step], ctx)
               for i in range(0, len(values), step)]
    posts = pa.concat_tables([r.posts for r in results]).sort_by("kafka_offset")
    return posts, [q for r in results for q in r.quarantine], sum(r.fast_rows for r in results)


def _assert_same(table: pa.Table, ref: pa.Table):
    assert table.schema == RAW_POSTS
    if not table.equals(ref):
        assert table.column("kafka_offset").to_pylist() == ref.column("kafka_offset").to_pylist()
        for got, want in zip(table.to_pylist(), ref.to_pylist()):
            assert got == want
        pytest.fail("tables differ in representation only")


def test_fast_path_equals_slow_path():
    values = _corpus()
    ref_posts, ref_rejected = _reference(values)
    posts, rejected, fast_rows = _convert(values)
    _assert_same(posts, ref_posts)
    assert rejected == ref_rejected
    assert len(ref_rejected) > len(BAD_CLASSES) * 5  # every bad class and many edge cases were rejected
    assert {q["reason"] for q in rejected} >= {"not_json", "invalid_utf8", "null_byte", "wrong_type", "invalid_value",
                                              "invalid_timestamp", "absurd_timestamp", "unsafe_value", "empty_message"}
    assert fast_rows >= 3000  # the synthetic posts really took the fast path


@pytest.mark.parametrize("batch", [1, 7, 250, 1024])
def test_batching_does_not_change_results(batch):
    values = _corpus(600, seed=2)
    whole = _convert(values)
    posts, rejected, _ = _convert(values, batch)
    _assert_same(posts, whole[0])
    assert rejected == whole[1]


def test_parquet_files_identical_across_batchings():
    values = _corpus(1500, seed=3)
    offsets, timestamps, keys = _coords(values)

    def files(step):
        results = [fastpath.convert(values[i:i + step], offsets[i:i + step], timestamps[i:i + step], keys[i:i + step], CTX)
                   for i in range(0, len(values), step)]
        return {(dt, hour): parquet_bytes(t) for dt, hour, t in fastpath.split_by_hour([r.posts for r in results])}

    whole = files(len(values))
    assert len(whole) > 5  # late posts spread over many hours
    assert files(333) == whole


def test_edge_cases_taken_fast_when_certain():
    base = _posts(1)[0]
    fast_ok = [{**base, "created_at": c} for c in ("2026-11-26T10:00:00Z", "2026-11-26T10:00:00.5+05:30", "2024-02-29T23:59:59.999999-08:00")]
    fast_ok += [{**base, "text": "caf\u00e9 \U0001F600", "media": [{"type": "t" * 40, "uri": "s3://b/k"}], "hashtags": ["#a"]},
                {**base, "metrics": None, "created_at": None, "url": None, "language": "pt-BR", "author_followers": 2**62}]
    values = [_enc(p, ensure_ascii=i % 2 == 0) for i, p in enumerate(fast_ok)]
    posts, rejected, fast_rows = _convert(values)
    assert not rejected and fast_rows == len(values)
    _assert_same(posts, _reference(values)[0])


def test_limits_apply_to_both_paths():
    ctx = fastpath.Context(CTX.topic, CTX.partition, CTX.platform, CTX.known_platforms, PLANNED_MS,
                           Limits(max_message_bytes=400, max_text_chars=60))
    values = _corpus(300, seed=4)
    posts, rejected, _ = _convert(values, 100, ctx)
    ref_posts, ref_rejected = _reference(values, ctx)
    _assert_same(posts, ref_posts)
    assert rejected == ref_rejected
    assert {"oversized_message", "oversized_text"} <= {q["reason"] for q in rejected}


def test_unknown_topic_platform_goes_slow():
    ctx = fastpath.Context("social.posts.twitter", 0, "twitter", frozenset({"reddit"}), PLANNED_MS)
    values = _corpus(50, seed=5)
    posts, rejected, fast_rows = _convert(values, ctx=ctx)
    assert fast_rows == 0 and posts.num_rows == 0
    assert rejected == _reference(values, ctx)[1]


def test_time_bounds_are_exact():
    base = _posts(1)[0]
    values = [_enc({**base, "created_at": c}) for c in (
        "2026-11-27T12:00:00Z", "2026-11-27T12:00:00.000001Z", "2026-11-27T17:30:00+05:30", "2026-11-27T17:30:00.000001+05:30",
        "2000-01-01T00:00:00Z", "1999-12-31T23:59:59.999999Z", "2000-01-01T05:29:59.999999+05:30")]
    posts, rejected, _ = _convert(values, jitter_ms=1)  # every kafka timestamp is exactly NOW
    ref_posts, ref_rejected = _reference(values, jitter_ms=1)
    _assert_same(posts, ref_posts)
    assert rejected == ref_rejected
    assert posts.num_rows == 3 and [q["reason"] for q in rejected] == ["absurd_timestamp"] * 4
