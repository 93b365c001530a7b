"""Vectorized conversion of a batch of Kafka messages into RAW_POSTS rows.

The fast path parses every plausible message at once with Arrow's C++ JSON
reader and ACCEPTS, with ``pyarrow.compute``, only rows that certainly pass
every rule of ``validate_post``. Everything else (rejections, odd encodings,
values the bulk parser refuses or might read differently from orjson) goes
through ``validate_post`` one by one: the Python validator stays the single
source of truth for what is rejected and why.

Invariant (see test_ingest_fastpath): a message accepted here yields exactly
the row ``validate_post`` would build, so the output of a message never
depends on which path took it, nor on how messages were batched.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from reputation_pipeline.ingest.validate import (
    MAX_FUTURE_SKEW, MAX_SKEW_MS, MIN_EVENT_MS, MIN_EVENT_TIME, Limits, Rejection, validate_post,
)
from reputation_pipeline.lake.schemas import MEDIA_TYPE, QUARANTINE_RAW_BYTES, RAW_POSTS, RAW_POSTS_SCHEMA_VERSION

log = logging.getLogger(__name__)

# The fields validate_post reads; other fields are ignored by both paths.
PARSE_SCHEMA = pa.schema([
    ("post_id", pa.string()),
    ("platform", pa.string()),
    ("author_id", pa.string()),
    ("author_handle", pa.string()),
    ("author_followers", pa.int64()),
    ("text", pa.string()),
    ("created_at", pa.string()),
    ("url", pa.string()),
    ("language", pa.string()),
    ("hashtags", pa.list_(pa.string())),
    ("mentions", pa.list_(pa.string())),
    ("media", MEDIA_TYPE),
    ("metrics", pa.struct([(name, pa.int64()) for name in ("likes", "shares", "comments", "views")])),
    ("repost_of", pa.string()),
    ("reply_to", pa.string()),
])
PARSE_OPTIONS = pj.ParseOptions(explicit_schema=PARSE_SCHEMA, unexpected_field_behavior="ignore",
                                newlines_in_values=False)
FAST_MAX_BYTES = 1 << 20  # larger messages take the slow path

# orjson refuses nesting deeper than 1024, Arrow does not: a message shorter than
# this cannot nest that deep, a longer one is counted.
DEPTH_SAFE_BYTES = 2000
MAX_OPENERS = 1000
# A block that fails without naming its line (a conversion error) is split in
# BISECT_WAYS; one of BISECT_MIN lines or fewer goes to the slow path whole.
BISECT_WAYS = 16
BISECT_MIN = 8
ERROR_ROW = re.compile(r" in row (\d+)$")

# RE2 forms of validate.py's patterns (same meaning, fullmatch).
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
# Printable ASCII only: a strict subset of URI's [^\s\x00] (Python's \s is
# Unicode-aware, RE2's is not). RE2 caps repeats at 1000, so the 2048 bound is
# enforced as a (stricter) limit on the whole string.
URI = r"^[a-z][a-z0-9+.-]{1,15}://[!-~]+$"
URI_MAX_CHARS = 2048
# The one ISO-8601 shape accepted in bulk; fromisoformat's other forms go slow.
ISO_OFFSET = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
              r"(Z|[+-][0-9]{2}:[0-9]{2})$")
EPOCH_ISO = "1970-01-01T00:00:00Z"
COUNT_MAX = 2**62
US = 1_000_000
MIN_EVENT_US = int(MIN_EVENT_TIME.timestamp()) * US
MAX_SKEW_US = int(MAX_FUTURE_SKEW.total_seconds()) * US
DAYS_IN_MONTH = pa.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())


@dataclass(frozen=True)
class Context:
    """What a plan knows about its messages besides their bytes.

    ``reference_ms`` is the plan's own clock (when it was planned, or an import's reference
    time), recorded with the plan so that a retry judges every timestamp the same way.
    """
    topic: str
    partition: int
    platform: str
    known_platforms: frozenset[str]
    reference_ms: int
    limits: Limits = Limits()


@dataclass
class ChunkResult:
    posts: pa.Table  # RAW_POSTS rows of the accepted messages, in no particular order
    quarantine: list[dict]  # QUARANTINE rows, in offset order
    fast_rows: int  # how many were accepted without the Python validator


def convert(values: Sequence[bytes | None], offsets: Sequence[int], timestamps_ms: Sequence[int],
            keys: Sequence[bytes | None], ctx: Context) -> ChunkResult:
    """Rows and rejections for parallel sequences of message values and coordinates."""
    try:
        return _convert(values, offsets, timestamps_ms, keys, ctx)
    except Exception:  # noqa: BLE001 - the bulk reader failed on input it should have declined
        log.exception("fast path failed on %s/%s; converting these %d messages one by one",
                      ctx.topic, ctx.partition, len(values))
        posts, quarantine = _slow_path(list(range(len(values))), values, offsets, timestamps_ms, keys, ctx)
        return ChunkResult(posts, quarantine, 0)


def _convert(values, offsets, timestamps_ms, keys, ctx: Context) -> ChunkResult:
    n = len(values)
    candidates = _candidates(values, ctx.limits)
    lines = values if len(candidates) == n else [values[i] for i in candidates.to_pylist()]
    positions, parsed = _parse(lines)
    rows = pc.take(candidates, positions)  # message index of each parsed row
    kafka_ms = pc.take(pa.array(timestamps_ms, pa.int64()), rows)
    created_us = _created_us(parsed.column("created_at"))
    ok = _accept(parsed, created_us, kafka_ms, ctx)
    accepted = pc.filter(rows, ok)
    fast = _fast_table(parsed.filter(ok), created_us.filter(ok), kafka_ms.filter(ok),
                       pc.take(pa.array(offsets, pa.int64()), accepted), ctx)
    slow = sorted(set(range(n)).difference(accepted.to_pylist())) if len(accepted) < n else []
    slow_posts, quarantine = _slow_path(slow, values, offsets, timestamps_ms, keys, ctx)
    return ChunkResult(pa.concat_tables([fast, slow_posts]), quarantine, fast.num_rows)


def _arange(lo: int, hi: int) -> pa.Array:
    return pc.add(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), hi - lo)), lo - 1)


# -- selecting and parsing candidates -------------------------------------------------------------

def _candidates(values: Sequence[bytes | None], limits: Limits) -> pa.Int64Array:
    """Indices of the messages worth parsing in bulk (the others take the slow path).

    A candidate starts with '{' and ends with '}' (so it yields at least one row;
    _parse_block then checks it yields exactly one), has no NUL (raw or escaped:
    validate_post rejects those), valid UTF-8, and a size the bulk parser and
    orjson agree on. Raw CR/LF inside a message are JSON whitespace to both
    parsers; at worst they make a block fail, which sends it to the slow path.
    """
    arr = pa.array(values, pa.binary())
    lengths = pc.binary_length(arr)
    ok = _all(pc.starts_with(arr, "{"), pc.ends_with(arr, "}"),
              pc.less_equal(lengths, min(limits.max_message_bytes, FAST_MAX_BYTES)), _no_nul(values))
    if not _utf8_ok(arr):
        ok = pc.and_(ok, pa.array([_decodes(v) for v in values]))
    candidates = pc.cast(pc.indices_nonzero(ok), pa.int64())
    long = pc.indices_nonzero(pc.and_(ok, pc.greater(lengths, DEPTH_SAFE_BYTES))).to_pylist()
    too_deep = [i for i in long if values[i].count(b"{") + values[i].count(b"[") > MAX_OPENERS]
    if too_deep:
        candidates = pc.filter(candidates, pc.invert(pc.is_in(candidates, pa.array(too_deep, pa.int64()))))
    return candidates


def _no_nul(values: Sequence[bytes | None]) -> pa.Array:
    """False where a message holds a NUL or an escaped one (one C-speed scan when there is none)."""
    present = [v for v in values if v]
    joined = b"".join(present)
    if b"\x00" not in joined and b"\\u0000" not in joined:
        return pa.repeat(pa.scalar(True), len(values))
    return pa.array([not v or (b"\x00" not in v and b"\\u0000" not in v) for v in values])


def _decodes(v: bytes | None) -> bool:
    try:
        if v is not None:
            v.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _utf8_ok(arr: pa.BinaryArray) -> bool:
    try:
        arr.view(pa.string()).validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _parse(lines: Sequence[bytes]) -> tuple[pa.Int64Array, pa.Table]:
    """Parse lines in bulk: (positions of the lines parsed, their rows in that order).

    A block that fails (or does not yield exactly one row per line) is split so
    that one bad line sends only itself, or a few neighbours, to the slow path.
    """
    done: list[tuple[int, int, pa.Table]] = []
    _parse_block(lines, 0, len(lines), done)
    positions = [_arange(lo, hi) for lo, hi, _ in done] or [pa.array([], pa.int64())]
    tables = [t for _, _, t in done] or [PARSE_SCHEMA.empty_table()]
    return pa.concat_arrays(positions), pa.concat_tables(tables).combine_chunks()


def _parse_block(lines: Sequence[bytes], lo: int, hi: int, done: list) -> None:
    if hi - lo <= 0:
        return
    buf = b"\n".join(lines[lo:hi])
    try:
        # one block, so that an error's row number is a line number
        table = pj.read_json(pa.BufferReader(buf), read_options=pj.ReadOptions(use_threads=False, block_size=len(buf) + 1),
                             parse_options=PARSE_OPTIONS)
        if table.num_rows == hi - lo:  # a line holding two objects would shift every row after it
            done.append((lo, hi, table))
            return
        row = None
    except pa.ArrowInvalid as exc:
        match = ERROR_ROW.search(str(exc))
        row = int(match.group(1)) if match else None
    if row is not None and lo + row < hi:
        # parsing stopped at that line: re-parse the lines before it, leave it to the slow path
        _parse_block(lines, lo, lo + row, done)
        _parse_block(lines, lo + row + 1, hi, done)
    elif hi - lo > BISECT_MIN:
        step = -(-(hi - lo) // BISECT_WAYS)
        for start in range(lo, hi, step):
            _parse_block(lines, start, min(start + step, hi), done)


# -- acceptance -----------------------------------------------------------------------------------

def _all(*conds) -> pa.Array:
    out = conds[0]
    for cond in conds[1:]:
        out = pc.and_kleene(out, cond)
    return pc.fill_null(out, False)


def _absent_or(arr, cond) -> pa.Array:
    return pc.or_kleene(pc.is_null(arr), cond)


def _max_chars(arr, n: int) -> pa.Array:
    return pc.less_equal(pc.utf8_length(arr), n)


def _safe_id(arr) -> pa.Array:
    return pc.match_substring_regex(arr, SAFE_ID)


def _count_ok(arr) -> pa.Array:
    return _absent_or(arr, pc.and_(pc.greater_equal(arr, 0), pc.less_equal(arr, COUNT_MAX)))


def _uri_ok(arr) -> pa.Array:
    return pc.and_(_max_chars(arr, URI_MAX_CHARS), pc.match_substring_regex(arr, URI))


def _lists_ok(lists: pa.ListArray, child_ok: pa.Array) -> pa.Array:
    """Per row: true unless some element fails child_ok (child_ok aligned with lists.flatten())."""
    bad_rows = pc.filter(pc.list_parent_indices(lists), pc.invert(pc.fill_null(child_ok, False)))
    if len(bad_rows) == 0:
        return pa.repeat(pa.scalar(True), len(lists))
    return pc.invert(pc.is_in(pa.array(range(len(lists)), pa.int64()), value_set=bad_rows))


def _accept(t: pa.Table, created_us: pa.Array, kafka_ms: pa.Array, ctx: Context) -> pa.Array:
    """True where validate_post certainly accepts the row (False means 'ask validate_post')."""
    n, lim = t.num_rows, ctx.limits
    if ctx.platform not in ctx.known_platforms or len(ctx.platform) > 32:
        return pa.repeat(pa.scalar(False), n)
    col = {name: t.column(name).combine_chunks() for name in t.column_names}
    metrics = col["metrics"].flatten()
    media = col["media"]
    media_items = media.flatten()
    created = col["created_at"]
    ref = pa.scalar(ctx.reference_ms, pa.int64())
    kafka_ok = pc.and_(pc.greater_equal(kafka_ms, MIN_EVENT_MS), pc.less_equal(kafka_ms, ref.as_py() + MAX_SKEW_MS))
    # with kafka_ok false the products below may wrap (Arrow's unchecked arithmetic): _all is false anyway
    latest_us = pc.add(pc.multiply(pc.min_element_wise(kafka_ms, ref), 1000), MAX_SKEW_US)
    return _all(
        kafka_ok,
        _safe_id(col["post_id"]), _safe_id(col["author_id"]),
        pc.equal(col["platform"], ctx.platform),
        _max_chars(col["text"], min(lim.max_text_chars, lim.max_message_bytes)),
        _absent_or(col["author_handle"], _max_chars(col["author_handle"], 128)),
        _absent_or(col["url"], _uri_ok(col["url"])),
        _absent_or(col["language"], pc.and_(_max_chars(col["language"], 32),
                                            pc.match_substring_regex(col["language"], LANGUAGE))),
        _absent_or(col["repost_of"], _safe_id(col["repost_of"])),
        _absent_or(col["reply_to"], _safe_id(col["reply_to"])),
        _count_ok(col["author_followers"]), *(_count_ok(m) for m in metrics),
        _absent_or(created, pc.and_(pc.greater_equal(created_us, MIN_EVENT_US),
                                    pc.less_equal(created_us, latest_us))),
        _lists_ok(col["hashtags"], pc.is_valid(col["hashtags"].flatten())),
        _lists_ok(col["mentions"], pc.is_valid(col["mentions"].flatten())),
        _lists_ok(media, _all(pc.is_valid(media_items), pc.is_valid(media_items.field("type")),
                              _uri_ok(media_items.field("uri")))),
    )


def _created_us(created: pa.ChunkedArray) -> pa.Array:
    """Epoch microseconds (UTC) of ISO_OFFSET timestamps with valid fields; null otherwise."""
    created = created.combine_chunks()
    shaped = pc.fill_null(pc.match_substring_regex(created, ISO_OFFSET), False)
    c = pc.if_else(shaped, created, EPOCH_ISO)  # fixed layout below: fields sit at fixed positions

    def num(arr, start, stop=None):
        return pc.cast(pc.utf8_slice_codeunits(arr, start, stop), pa.int64())

    y, mo, d, h, mi, s = num(c, 0, 4), num(c, 5, 7), num(c, 8, 10), num(c, 11, 13), num(c, 14, 16), num(c, 17, 19)
    zulu = pc.ends_with(c, "Z")
    frac = pc.if_else(zulu, pc.utf8_slice_codeunits(c, 19, -1), pc.utf8_slice_codeunits(c, 19, -6))  # "" or ".ddd"
    frac = pc.cast(pc.utf8_rpad(pc.utf8_ltrim(frac, characters="."), 6, "0"), pa.int64())
    zone = pc.if_else(zulu, "+00:00", pc.utf8_slice_codeunits(c, -6))
    oh, om = num(zone, 1, 3), num(zone, 4, 6)
    leap = pc.and_(pc.equal(pc.bit_wise_and(y, 3), 0),
                   pc.or_(pc.not_equal(pc.remainder(y, 100), 0), pc.equal(pc.remainder(y, 400), 0)))
    month_ok = pc.and_(pc.greater_equal(mo, 1), pc.less_equal(mo, 12))
    dim = pc.add(pc.take(DAYS_IN_MONTH, pc.if_else(month_ok, mo, 0)),
                 pc.cast(pc.and_(leap, pc.equal(mo, 2)), pa.int64()))
    valid = _all(shaped, pc.greater_equal(y, 2000), month_ok, pc.greater_equal(d, 1), pc.less_equal(d, dim),
                 pc.less_equal(h, 23), pc.less_equal(mi, 59), pc.less_equal(s, 59),
                 pc.less_equal(oh, 23), pc.less_equal(om, 59))
    sign = pc.if_else(pc.starts_with(zone, "-"), -1, 1)
    offset_s = pc.multiply(sign, pc.add(pc.multiply(oh, 3600), pc.multiply(om, 60)))
    seconds = pc.add(pc.multiply(_days_from_civil(y, mo, d), 86400),
                     pc.add(pc.add(pc.multiply(h, 3600), pc.multiply(mi, 60)), s))
    us = pc.add(pc.multiply(pc.subtract(seconds, offset_s), US), frac)
    return pc.if_else(valid, us, pa.scalar(None, pa.int64()))


def _days_from_civil(y, m, d) -> pa.Array:
    """Days since 1970-01-01 (H. Hinnant's algorithm; here y >= 1999 so integer division is floor)."""
    y = pc.subtract(y, pc.cast(pc.less_equal(m, 2), pa.int64()))
    era = pc.divide(y, 400)
    yoe = pc.subtract(y, pc.multiply(era, 400))
    mp = pc.add(m, pc.if_else(pc.greater(m, 2), -3, 9))
    doy = pc.add(pc.divide(pc.add(pc.multiply(mp, 153), 2), 5), pc.subtract(d, 1))
    doe = pc.add(pc.subtract(pc.add(pc.multiply(yoe, 365), pc.divide(yoe, 4)), pc.divide(yoe, 100)), doy)
    return pc.add(pc.multiply(era, 146097), pc.subtract(doe, 719468))


# -- building rows --------------------------------------------------------------------------------

def _rebuild_list(lists: pa.ListArray, new_values: pa.Array, keep_nulls: bool) -> pa.ListArray:
    """Same list boundaries over new_values (aligned with lists.flatten()); a null list
    stays null if keep_nulls, else becomes empty."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cast(pc.cumulative_sum(lengths), pa.int32())])
    return pa.ListArray.from_arrays(offsets, new_values, mask=pc.is_null(lists) if keep_nulls else None)


def _const(value, type_: pa.DataType, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def _fast_table(t: pa.Table, created_us: pa.Array, kafka_ms: pa.Array, offsets: pa.Array,
                ctx: Context) -> pa.Table:
    n = t.num_rows
    col = {name: t.column(name).combine_chunks() for name in t.column_names}
    metrics = dict(zip([f.name for f in col["metrics"].type], col["metrics"].flatten()))
    media = col["media"]
    items = media.flatten()
    media_out = _rebuild_list(media, pa.StructArray.from_arrays(
        [pc.utf8_slice_codeunits(items.field("type"), 0, 32), items.field("uri")], fields=list(MEDIA_TYPE.value_type)),
        keep_nulls=False)
    kafka_us = pc.multiply(kafka_ms, 1000)
    has_created = pc.is_valid(created_us)
    ts_us = pa.timestamp("us", tz="UTC")
    columns = {
        **{name: col[name] for name in ("post_id", "author_id", "author_handle", "author_followers", "text")},
        "created_at": pc.cast(created_us, ts_us),
        "url": col["url"], "language": col["language"],
        **{name: _rebuild_list(col[name], pc.utf8_ltrim(col[name].flatten(), characters="#@"), keep_nulls=True)
           for name in ("hashtags", "mentions")},
        "media": media_out,
        **{name: metrics[name] for name in ("likes", "shares", "comments", "views")},
        "repost_of": col["repost_of"], "reply_to": col["reply_to"],
        "event_time": pc.cast(pc.if_else(has_created, created_us, kafka_us), ts_us),
        "event_time_source": pc.if_else(has_created, "created_at", "kafka_timestamp"),
        "schema_version": _const(RAW_POSTS_SCHEMA_VERSION, pa.int32(), n),
        "kafka_topic": _const(ctx.topic, pa.string(), n),
        "kafka_partition": _const(ctx.partition, pa.int32(), n),
        "kafka_offset": offsets,
        "kafka_timestamp": pc.cast(kafka_ms, pa.timestamp("ms", tz="UTC")),
    }
    return pa.Table.from_arrays([pc.cast(columns[f.name], f.type) for f in RAW_POSTS], schema=RAW_POSTS)


# -- the slow path --------------------------------------------------------------------------------

def kafka_datetime(ts_ms: int) -> datetime | None:
    """The broker timestamp as a datetime; None where it has none (-1) or one no reader can hold."""
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc) if ts_ms >= 0 else None
    except (OverflowError, OSError, ValueError):
        return None


def quarantine_row(ctx: Context, offset: int, ts_ms: int, key: bytes | None, value: bytes | None,
                   rejection: Rejection) -> dict:
    return {"reason": rejection.reason, "detail": rejection.detail, "topic": ctx.topic, "partition": ctx.partition,
            "offset": offset, "kafka_timestamp": kafka_datetime(ts_ms), "key": key, **quarantine_raw(value)}


def quarantine_raw(value: bytes | None) -> dict:
    """The raw columns of a quarantine row: a bounded prefix of the bytes (a 1 MB junk message
    must not cost a drain 1 MB per row held), with the whole message's size and sha256."""
    if value is None:
        return {"raw": None, "raw_size": None, "raw_sha256": None}
    return {"raw": value[:QUARANTINE_RAW_BYTES], "raw_size": len(value), "raw_sha256": hashlib.sha256(value).hexdigest()}


def _slow_path(indices: list[int], values, offsets, timestamps_ms, keys, ctx: Context) -> tuple[pa.Table, list[dict]]:
    rows, quarantine = [], []
    for i in indices:
        value, offset, ts_ms = values[i], offsets[i], timestamps_ms[i]
        result = validate_post(value, topic_platform=ctx.platform, known_platforms=ctx.known_platforms,
                               kafka_timestamp_ms=ts_ms, reference_ms=ctx.reference_ms, limits=ctx.limits)
        if isinstance(result, Rejection):
            quarantine.append(quarantine_row(ctx, offset, ts_ms, keys[i], value, result))
            continue
        result.update(kafka_topic=ctx.topic, kafka_partition=ctx.partition, kafka_offset=offset,
                      kafka_timestamp=kafka_datetime(ts_ms))
        rows.append((i, result))
    try:
        return pa.Table.from_pylist([row for _, row in rows], schema=RAW_POSTS), quarantine
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass  # a row validate_post accepted but Arrow refuses: find it, quarantine only it
    tables = []
    for i, row in rows:
        try:
            tables.append(pa.Table.from_pylist([row], schema=RAW_POSTS))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            quarantine.append(quarantine_row(ctx, offsets[i], timestamps_ms[i], keys[i], values[i], Rejection(
                "unconvertible_record", f"{type(exc).__name__}: {str(exc)[:200]}")))
    quarantine.sort(key=lambda q: q["offset"])
    return pa.concat_tables([RAW_POSTS.empty_table(), *tables]), quarantine


# -- output files ---------------------------------------------------------------------------------

def split_by_hour(tables: list[pa.Table]) -> list[tuple[str, str, pa.Table]]:
    """(dt, hour, rows in offset order) per UTC event hour, hours ascending."""
    table = pa.concat_tables(tables) if tables else RAW_POSTS.empty_table()
    if table.num_rows == 0:
        return []
    hours = pc.floor_temporal(table.column("event_time"), unit="hour")
    order = pc.sort_indices(pa.table({"h": hours, "o": table.column("kafka_offset")}),
                            sort_keys=[("h", "ascending"), ("o", "ascending")])
    table, hours = table.take(order).combine_chunks(), pc.take(hours, order)
    out, start = [], 0
    for run in pc.value_counts(hours):  # sorted input: runs come out in ascending hour order
        hour, count = run["values"].as_py(), run["counts"].as_py()
        out.append((hour.strftime("%Y-%m-%d"), hour.strftime("%H"), table.slice(start, count)))
        start += count
    return out
