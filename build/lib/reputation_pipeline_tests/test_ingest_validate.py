"""Unit tests of message validation: every bad-input class, pure, no broker."""
import json
from datetime import datetime, timezone

import pytest

from reputation_pipeline.ingest.synthetic import BAD_CLASSES, BAD_REASONS, PostGenerator, SyntheticConfig, bad_message
from reputation_pipeline.ingest.validate import Limits, Rejection, validate_post

PLATFORMS = frozenset({"twitter", "reddit"})
NOW_MS = int(datetime(2026, 11, 26, 12, tzinfo=timezone.utc).timestamp() * 1000)


def _good(**over) -> dict:
    post = PostGenerator(SyntheticConfig("twitter", now=datetime(2026, 11, 26, 12, tzinfo=timezone.utc))).post()
    post.update(over)
    return post


def _validate(value: bytes, **kw):
    return validate_post(value, topic_platform="twitter", known_platforms=PLATFORMS, kafka_timestamp_ms=NOW_MS, **kw)


def test_good_post_normalizes():
    post = _good(text="Hello @acme and #AcmeAir fans", hashtags=["#AcmeAir", "fans"], mentions=["@acme"])
    row = _validate(json.dumps(post).encode())
    assert not isinstance(row, Rejection), row
    assert row["post_id"] == post["post_id"]
    assert row["hashtags"] == ["AcmeAir", "fans"] and row["mentions"] == ["acme"]  # as provided, less leading #/@
    assert row["event_time_source"] == "created_at"
    assert row["event_time"].tzinfo is not None


def test_hashtags_and_mentions_are_not_derived_from_text():
    # derivation from the text happens in the warehouse; ingest keeps what the message says
    row = _validate(json.dumps(_good(text="Hello @acme and #AcmeAir fans", hashtags=None)).encode())
    assert row["hashtags"] is None and row["mentions"] is None


@pytest.mark.parametrize("over,reason", [
    ({"post_id": "abc\n"}, "unsafe_value"),  # re's "$" alone would accept a trailing newline
    ({"language": "en\n"}, "invalid_value"),
    ({"created_at": "9999-12-31T23:00:00-05:00"}, "invalid_timestamp"),  # overflows in UTC: rejected, not a crash
])
def test_strict_patterns_and_out_of_range_timestamps(over, reason):
    result = _validate(json.dumps(_good(**over)).encode())
    assert isinstance(result, Rejection) and result.reason == reason, result


def test_missing_created_at_falls_back_to_kafka_timestamp():
    post = _good()
    del post["created_at"]
    row = _validate(json.dumps(post).encode())
    assert row["event_time_source"] == "kafka_timestamp"
    assert row["event_time"] == datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("kind", BAD_CLASSES)
def test_every_bad_class_is_rejected_with_its_reason(kind):
    result = _validate(bad_message(kind, _good()))
    assert isinstance(result, Rejection), f"{kind} was accepted"
    assert result.reason == BAD_REASONS[kind], result
    assert result.detail


@pytest.mark.parametrize("value,reason", [
    (None, "empty_message"),
    (b"", "empty_message"),
    (b"\x00{}", "null_byte"),
    (b"42", "not_object"),
    (json.dumps({"post_id": "a", "platform": "reddit", "author_id": "u", "text": "x"}).encode(), "platform_mismatch"),
    (json.dumps({"post_id": "a b", "platform": "twitter", "author_id": "u", "text": "x"}).encode(), "unsafe_value"),
    (json.dumps({"post_id": "a", "platform": "twitter", "author_id": "u", "text": 5}).encode(), "wrong_type"),
    (json.dumps({"post_id": "a", "platform": "twitter", "author_id": "u", "text": "x", "created_at": "yesterday"}).encode(), "invalid_timestamp"),
    (json.dumps({"post_id": "a", "platform": "twitter", "author_id": "u", "text": "x", "created_at": "2026-11-26T10:00:00"}).encode(), "invalid_timestamp"),
    (json.dumps({"post_id": "a", "platform": "twitter", "author_id": "u", "text": "x", "author_followers": True}).encode(), "wrong_type"),
    (json.dumps({"post_id": "a", "platform": "twitter", "author_id": "u", "text": "x", "media": [{"type": "image", "uri": "../x"}]}).encode(), "invalid_value"),
    (json.dumps({"post_id": "a", "platform": "twitter", "author_id": "u", "text": "x", "language": "en'; --"}).encode(), "invalid_value"),
])
def test_edge_cases(value, reason):
    result = _validate(value)
    assert isinstance(result, Rejection) and result.reason == reason, result


def test_oversized_message_limit_is_configurable():
    value = json.dumps(_good(text="y" * 500)).encode()
    assert _validate(value, limits=Limits(max_message_bytes=100)).reason == "oversized_message"
    assert not isinstance(_validate(value), Rejection)


def test_validation_is_deterministic():
    value = json.dumps(_good()).encode()
    assert _validate(value) == _validate(value)


def test_synthetic_generator_is_deterministic_and_varied():
    def posts():
        gen = PostGenerator(SyntheticConfig("twitter", seed=3, run_id="x", crisis_brand="acme", crisis_share=0.5,
                                            now=datetime(2026, 1, 1, tzinfo=timezone.utc)))
        return [gen.post() for _ in range(500)]

    a, b = posts(), posts()
    assert a == b
    assert len({p["post_id"] for p in a}) == 500
    assert any(p["repost_of"] for p in a)
    followers = sorted(p["author_followers"] for p in a)
    assert followers[-1] > 50 * followers[len(followers) // 2]  # heavy tail
    assert all(not isinstance(_validate(json.dumps(p).encode()), Rejection) for p in a if p["created_at"] < "2026-01-02")
