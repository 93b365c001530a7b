"""Validation and normalization of one Kafka message into a raw-post row.

Pure: no I/O, no clock. Everything is decided from the message bytes and its
Kafka metadata, so replaying the same offsets classifies every message the
same way (a requirement of exactly-once: retries must rewrite identical files).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from reputation_pipeline.lake.schemas import RAW_POSTS_SCHEMA_VERSION

MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_FUTURE_SKEW = timedelta(hours=24)
MIN_EVENT_MS = int(MIN_EVENT_TIME.timestamp()) * 1000
MAX_SKEW_MS = int(MAX_FUTURE_SKEW.total_seconds()) * 1000

# Identifiers end up in SQL (as bound data) and in logs; we still hold them to
# a conservative charset so they can never escape a path or a quoted literal.
# Always applied with fullmatch: re's "$" would also accept a trailing newline.
# ingest/fastpath.py holds RE2 equivalents of these; change both together.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
URI = re.compile(r"[a-z][a-z0-9+.-]{1,15}://[^\s\x00]{1,2048}")

REQUIRED = ("post_id", "platform", "author_id", "text")


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 1_000_000
    max_text_chars: int = 40_000  # Reddit's self-post limit, the largest platform here


@dataclass(frozen=True)
class Rejection:
    reason: str  # machine-readable class
    detail: str


class _Reject(Exception):
    def __init__(self, reason: str, detail: str):
        self.rejection = Rejection(reason, detail)


def _str(obj: dict, name: str, *, required: bool = False, max_len: int = 2048) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _Reject("missing_field", f"required field {name!r} is missing or null")
        return None
    if not isinstance(value, str):
        raise _Reject("wrong_type", f"{name!r} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise _Reject("oversized_field", f"{name!r} is {len(value)} characters (limit {max_len})")
    return value


def _count(obj: dict, name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject("wrong_type", f"{name!r} must be an integer, got {type(value).__name__}")
    if value < 0 or value > 2**62:
        raise _Reject("invalid_value", f"{name!r} is out of range: {value}")
    return value


def _str_list(obj: dict, name: str) -> list[str] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Reject("wrong_type", f"{name!r} must be a list of strings")
    return [v.lstrip("#@") for v in value]


def _media(obj: dict) -> list[dict[str, str]]:
    value = obj.get("media")
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Reject("wrong_type", "'media' must be a list of {type, uri}")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not isinstance(item.get("uri"), str):
            raise _Reject("wrong_type", "each media item must be an object with string 'type' and 'uri'")
        if not URI.fullmatch(item["uri"]):
            raise _Reject("invalid_value", "media uri must be an absolute URI such as s3://bucket/key")
        out.append({"type": item["type"][:32], "uri": item["uri"]})
    return out


def _has_nul(obj: Any) -> bool:
    if isinstance(obj, str):
        return "\x00" in obj
    if isinstance(obj, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_nul(v) for v in obj)
    return False


def _timestamp(raw: str, name: str) -> datetime:
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise _Reject("invalid_timestamp", f"{name!r} is not ISO 8601: {raw[:64]!r}") from None
    if ts.tzinfo is None:
        raise _Reject("invalid_timestamp", f"{name!r} has no UTC offset: {raw[:64]!r}")
    try:
        return ts.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00: a poison message must not crash the drain
        raise _Reject("invalid_timestamp", f"{name!r} is out of range in UTC: {raw[:64]!r}") from None


def event_time_bounds_ms(reference_ms: int) -> tuple[int, int]:
    """[lowest, highest] event time (epoch ms) a post may carry, given the plan's reference
    time (when the drain planned the range, or an import's reference time).

    Every hour in this range is an hour partition Dagster knows (``partitions.py``), so a
    timestamp outside it, from the post or from the broker, is a quarantine reason.
    """
    return MIN_EVENT_MS, reference_ms + MAX_SKEW_MS


def kafka_timestamp_problem(kafka_timestamp_ms: int, reference_ms: int) -> str | None:
    """Why a broker timestamp cannot stand for a post's arrival, or None when it can.
    (Producers set CreateTime freely; the broker accepts any 64-bit value, and -1 means none.)"""
    lo, hi = event_time_bounds_ms(reference_ms)
    if lo <= kafka_timestamp_ms <= hi:
        return None
    return (f"the Kafka timestamp {kafka_timestamp_ms} ms is outside the event-time range "
            f"[{_iso_ms(lo)}, {_iso_ms(hi)}]")


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def validate_post(
    value: bytes | None,
    *,
    topic_platform: str,
    known_platforms: frozenset[str] | set[str] | tuple[str, ...],
    kafka_timestamp_ms: int,
    reference_ms: int | None = None,
    limits: Limits = Limits(),
) -> dict[str, Any] | Rejection:
    """Return a row (dict of RAW_POSTS columns, without Kafka coordinates) or a Rejection.

    ``reference_ms`` is the plan's reference time (defaults to the Kafka timestamp); no event
    time may lie more than MAX_FUTURE_SKEW after it. Any failure on one message, including
    one this code did not foresee, is a Rejection: one record never fails its batch.
    """
    try:
        return _validate(value, topic_platform, known_platforms, kafka_timestamp_ms,
                         kafka_timestamp_ms if reference_ms is None else reference_ms, limits)
    except _Reject as rej:
        return rej.rejection
    except Exception as exc:  # noqa: BLE001 - the record is quarantined with the error as its reason
        return Rejection("unreadable_record", f"{type(exc).__name__}: {str(exc)[:200]}")


def _validate(value, topic_platform, known_platforms, kafka_timestamp_ms, reference_ms, limits) -> dict[str, Any]:
    if value is None or len(value) == 0:
        raise _Reject("empty_message", "message has no value (tombstone or empty payload)")
    if len(value) > limits.max_message_bytes:
        raise _Reject("oversized_message", f"message is {len(value)} bytes (limit {limits.max_message_bytes})")
    if b"\x00" in value:
        raise _Reject("null_byte", "payload contains a NUL byte")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise _Reject("invalid_utf8", f"payload is not valid UTF-8 at byte {uexc.start}") from None
        raise _Reject("not_json", f"payload is not JSON: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise _Reject("not_object", f"JSON payload is a {type(obj).__name__}, not an object")
    # A NUL in any string breaks C-string consumers downstream; \u0000 decodes to it.
    if b"\\u0000" in value and _has_nul(obj):
        raise _Reject("null_byte", "payload contains an escaped NUL character")
    for name in REQUIRED:
        if obj.get(name) is None:
            raise _Reject("missing_field", f"required field {name!r} is missing or null")

    post_id = _str(obj, "post_id", required=True, max_len=128)
    author_id = _str(obj, "author_id", required=True, max_len=128)
    for name, ident in (("post_id", post_id), ("author_id", author_id)):
        if not SAFE_ID.fullmatch(ident):
            raise _Reject("unsafe_value", f"{name!r} has characters outside [A-Za-z0-9_.:@-]: {ident[:64]!r}")
    platform = _str(obj, "platform", required=True, max_len=32)
    if platform not in known_platforms:
        raise _Reject("unknown_platform", f"platform {platform[:32]!r} is not one of {sorted(known_platforms)}")
    if platform != topic_platform:
        raise _Reject("platform_mismatch", f"platform {platform!r} arrived on the {topic_platform!r} topic")
    text = _str(obj, "text", required=True, max_len=limits.max_message_bytes)
    if len(text) > limits.max_text_chars:
        raise _Reject("oversized_text", f"text is {len(text)} characters (limit {limits.max_text_chars})")
    handle = _str(obj, "author_handle", max_len=128)
    url = _str(obj, "url")
    if url is not None and not URI.fullmatch(url):
        raise _Reject("invalid_value", "'url' must be an absolute URI")
    language = _str(obj, "language", max_len=32)
    if language is not None and not LANGUAGE.fullmatch(language):
        raise _Reject("invalid_value", f"'language' is not a BCP-47 tag: {language[:32]!r}")
    repost_of = _str(obj, "repost_of", max_len=128)
    reply_to = _str(obj, "reply_to", max_len=128)
    for name, ident in (("repost_of", repost_of), ("reply_to", reply_to)):
        if ident is not None and not SAFE_ID.fullmatch(ident):
            raise _Reject("unsafe_value", f"{name!r} has characters outside [A-Za-z0-9_.:@-]")

    metrics = obj.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise _Reject("wrong_type", "'metrics' must be an object {likes, shares, comments}")

    problem = kafka_timestamp_problem(kafka_timestamp_ms, reference_ms)
    if problem:
        raise _Reject("invalid_kafka_timestamp", problem)
    kafka_ts = datetime.fromtimestamp(kafka_timestamp_ms / 1000, tz=timezone.utc)
    created_raw = _str(obj, "created_at", max_len=64)
    if created_raw is not None:
        created_at = _timestamp(created_raw, "created_at")
        if created_at < MIN_EVENT_TIME:
            raise _Reject("absurd_timestamp", f"created_at {created_raw!r} is before 2000")
        latest = datetime.fromtimestamp(min(kafka_timestamp_ms, reference_ms) / 1000, tz=timezone.utc) + MAX_FUTURE_SKEW
        if created_at > latest:
            raise _Reject("absurd_timestamp", f"created_at {created_raw!r} is more than 24h after the broker "
                                              "received it or the drain planned it")
        event_time, source = created_at, "created_at"
    else:
        created_at, event_time, source = None, kafka_ts, "kafka_timestamp"

    # as provided (null when absent); deriving them from the text is the warehouse's job
    hashtags = _str_list(obj, "hashtags")
    mentions = _str_list(obj, "mentions")
    return {
        "post_id": post_id,
        "author_id": author_id,
        "author_handle": handle,
        "author_followers": _count(obj, "author_followers"),
        "text": text,
        "created_at": created_at,
        "url": url,
        "language": language,
        "hashtags": hashtags,
        "mentions": mentions,
        "media": _media(obj),
        "likes": _count(metrics, "likes"),
        "shares": _count(metrics, "shares"),
        "comments": _count(metrics, "comments"),
        "views": _count(metrics, "views"),
        "repost_of": repost_of,
        "reply_to": reply_to,
        "event_time": event_time,
        "event_time_source": source,
        "schema_version": RAW_POSTS_SCHEMA_VERSION,
    }
