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

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from reputation_pipeline.ingest.validate import MAX_FUTURE_SKEW, MIN_EVENT_TIME, Limits, Rejection, validate_post
from reputation_pipeline.lake.schemas import MEDIA_TYPE, RAW_POSTS, RAW_POSTS_SCHEMA_VERSION

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
FAST_MAX_BYTES = 1 << 20  # larger messages take the slow path, so any line fits one read block
READ_OPTIONS = pj.ReadOptions(use_threads=True, block_size=4 * FAST_MAX_BYTES)

# orjson refuses nesting deeper than 1024, Arrow does not: a message shorter than
# this cannot nest that deep, a longer one is counted.
DEPTH_SAFE_BYTES = 2000
MAX_OPENERS = 1000
BISECT_MIN = 8  # a failing block this small goes to the slow path whole

# RE2 forms of validate.py's patterns (same meaning, fullmatch).
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
# Printable ASCII only: a strict subset of URI's [^\s\x00] (Python's \s is
# Unicode-aware, RE2's is not). RE2 caps repeats at 1000, so the 2048 bound is
# enforced as a (stricter) limit on the whole string.
URI = r"^[a-z][a-z0-9+.-]{1,15}://[!-~]+$"
URI_MAX_CHARS = 2048
# The one ISO-8601 shape accepted in bulk; fromisoformat's other forms go slow.
ISO_OFFSET = (r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
              r"T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,6}))?"
              r"(?:Z|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))$")
COUNT_MAX = 2**62
US = 1_000_000
MIN_EVENT_US = int(MIN_EVENT_TIME.timestamp()) * US
MAX_SKEW_US = int(MAX_FUTURE_SKEW.total_seconds()) * US
DAYS_IN_MONTH = pa.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())


@dataclass(frozen=True)
class Context:
    """What a plan knows about its messages besides their bytes."""
    topic: str
    partition: int
    platform: str
    known_platforms: frozenset[str]
    limits: Limits = Limits()


@dataclass
class ChunkResult:
    posts: pa.Table  # RAW_POSTS rows of the accepted messages, in no particular order
    quarantine: list[dict]  # QUARANTINE rows, in offset order
    fast_rows: int  # how many were accepted without the Python validator


def convert(values: Sequence[bytes | None], offsets: Sequence[int], timestamps_ms: Sequence[int],
            keys: Sequence[bytes | None], ctx: Context) -> ChunkResult:
    """Rows and rejections for parallel sequences of message values and coordinates."""
    candidates, slow = _candidates(values, ctx.limits)
    positions, parsed, failed = _parse([values[i] for i in candidates])
    slow += [candidates[p] for p in failed]
    rows = pa.array([candidates[p] for p in positions], pa.int64())
    kafka_ms = pc.take(pa.array(timestamps_ms, pa.int64()), rows)
    created_us = _created_us(parsed.column("created_at"))
    ok = _accept(parsed, created_us, kafka_ms, ctx)
    slow += pc.filter(rows, pc.invert(ok)).to_pylist()
    fast = _fast_table(parsed.filter(ok), created_us.filter(ok), kafka_ms.filter(ok),
                       pc.take(pa.array(offsets, pa.int64()), pc.filter(rows, ok)), ctx)
    slow_posts, quarantine = _slow_path(sorted(slow), values, offsets, timestamps_ms, keys, ctx)
    return ChunkResult(pa.concat_tables([fast, slow_posts]), quarantine, fast.num_rows)


# -- selecting and parsing candidates -------------------------------------------------------------

def _candidates(values: Sequence[bytes | None], limits: Limits) -> tuple[list[int], list[int]]:
    """Split indices into bulk-parse candidates and slow-path messages by byte tests.

    A candidate is one JSON object on one line: it starts with '{', ends with '}',
    has no CR/LF (the line separator), no NUL (raw or escaped) and no invalid UTF-8.
    """
    n = len(values)
    try:
        joined = b"\n".join(values)
        clean = _clean_lines(joined, n)
    except TypeError:  # a tombstone (None value)
        clean = False
    if clean:
        candidates, slow = list(range(n)), []
    else:
        candidates = [i for i, v in enumerate(values) if _plain_line(v)]
        slow = sorted(set(range(n)) - set(candidates))
    candidates, too_big = _within_size(values, candidates, limits)
    candidates, bad_utf8 = _valid_utf8(values, candidates)
    return candidates, slow + too_big + bad_utf8


def _clean_lines(joined: bytes, n: int) -> bool:
    """Whole-buffer version of _plain_line for all n values (C-speed scans)."""
    return (joined.startswith(b"{") and joined.endswith(b"}")
            and joined.count(b"\n") == n - 1 and joined.count(b"}\n{") == n - 1
            and b"\r" not in joined and b"\x00" not in joined and b"\\u0000" not in joined)


def _plain_line(v: bytes | None) -> bool:
    return (bool(v) and v[:1] == b"{" and v[-1:] == b"}" and b"\n" not in v and b"\r" not in v
            and b"\x00" not in v and b"\\u0000" not in v)


def _within_size(values, candidates: list[int], limits: Limits) -> tuple[list[int], list[int]]:
    max_bytes = min(limits.max_message_bytes, FAST_MAX_BYTES)
    if max(map(len, (values[i] for i in candidates)), default=0) <= min(max_bytes, DEPTH_SAFE_BYTES):
        return candidates, []
    keep, drop = [], []
    for i in candidates:
        v = values[i]
        fits = len(v) <= max_bytes and (len(v) <= DEPTH_SAFE_BYTES or v.count(b"{") + v.count(b"[") <= MAX_OPENERS)
        (keep if fits else drop).append(i)
    return keep, drop


def _valid_utf8(values, candidates: list[int]) -> tuple[list[int], list[int]]:
    try:
        pa.array([b"".join(values[i] for i in candidates)], pa.binary()).cast(pa.string())
        return candidates, []
    except pa.ArrowInvalid:
        pass
    keep, drop = [], []
    for i in candidates:
        try:
            values[i].decode("utf-8")
            keep.append(i)
        except UnicodeDecodeError:
            drop.append(i)
    return keep, drop


def _parse(lines: list[bytes]) -> tuple[list[int], pa.Table, list[int]]:
    """Parse lines in bulk: (positions parsed, their rows in that order, positions that failed).

    A block that fails (or does not yield exactly one row per line) is bisected
    so that one bad line sends only itself and a few neighbours to the slow path.
    """
    done: list[tuple[int, int, pa.Table]] = []
    failed: list[int] = []
    _parse_block(lines, 0, len(lines), done, failed)
    positions = [p for lo, hi, _ in done for p in range(lo, hi)]
    tables = [t for _, _, t in done] or [PARSE_SCHEMA.empty_table()]
    return positions, pa.concat_tables(tables).combine_chunks(), failed


def _parse_block(lines, lo, hi, done, failed) -> None:
    if lo == hi:
        return
    try:
        table = pj.read_json(pa.BufferReader(b"\n".join(lines[lo:hi])), read_options=READ_OPTIONS,
                             parse_options=PARSE_OPTIONS)
        if table.num_rows == hi - lo:  # a line holding two objects would shift every row after it
            done.append((lo, hi, table))
            return
    except pa.ArrowInvalid:
        pass
    if hi - lo <= BISECT_MIN:
        failed.extend(range(lo, hi))
        return
    mid = (lo + hi) // 2
    _parse_block(lines, lo, mid, done, failed)
    _parse_block(lines, mid, hi, done, failed)


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
    return _all(
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
                                    pc.less_equal(created_us, pc.add(pc.multiply(kafka_ms, 1000), MAX_SKEW_US)))),
        _lists_ok(col["hashtags"], pc.is_valid(col["hashtags"].flatten())),
        _lists_ok(col["mentions"], pc.is_valid(col["mentions"].flatten())),
        _lists_ok(media, _all(pc.is_valid(media_items), pc.is_valid(media_items.field("type")),
                              _uri_ok(media_items.field("uri")))),
    )


def _created_us(created: pa.ChunkedArray) -> pa.Array:
    """Epoch microseconds (UTC) of ISO_OFFSET timestamps with valid fields; null otherwise."""
    parts = pc.extract_regex(created.combine_chunks(), ISO_OFFSET).flatten()  # null where no match
    f = dict(zip(["y", "mo", "d", "h", "mi", "s", "f", "sign", "oh", "om"], parts))

    def num(name, width=0):
        arr = f[name] if not width else pc.utf8_rpad(f[name], width, "0")  # "" when the group is absent
        return pc.cast(arr, pa.int64())

    y, mo, d, h, mi, s = (num(k) for k in ("y", "mo", "d", "h", "mi", "s"))
    frac, oh, om = num("f", 6), num("oh", 2), num("om", 2)
    leap = pc.and_(pc.equal(pc.bit_wise_and(y, 3), 0),
                   pc.or_(pc.not_equal(pc.remainder(y, 100), 0), pc.equal(pc.remainder(y, 400), 0)))
    month_ok = pc.and_(pc.greater_equal(mo, 1), pc.less_equal(mo, 12))
    dim = pc.add(pc.take(DAYS_IN_MONTH, pc.if_else(month_ok, mo, 0)),
                 pc.cast(pc.and_(leap, pc.equal(mo, 2)), pa.int64()))
    valid = _all(pc.greater_equal(y, 2000), month_ok, pc.greater_equal(d, 1), pc.less_equal(d, dim),
                 pc.less_equal(h, 23), pc.less_equal(mi, 59), pc.less_equal(s, 59),
                 pc.less_equal(oh, 23), pc.less_equal(om, 59))
    offset_s = pc.multiply(pc.if_else(pc.equal(f["sign"], "-"), -1, 1), pc.add(pc.multiply(oh, 3600), pc.multiply(om, 60)))
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

def kafka_datetime(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)


def _slow_path(indices: list[int], values, offsets, timestamps_ms, keys, ctx: Context) -> tuple[pa.Table, list[dict]]:
    rows, quarantine = [], []
    for i in indices:
        value, offset, ts_ms = values[i], offsets[i], timestamps_ms[i]
        result = validate_post(value, topic_platform=ctx.platform, known_platforms=ctx.known_platforms,
                               kafka_timestamp_ms=ts_ms, limits=ctx.limits)
        kafka_ts = kafka_datetime(ts_ms)
        if isinstance(result, Rejection):
            quarantine.append({"reason": result.reason, "detail": result.detail, "topic": ctx.topic,
                               "partition": ctx.partition, "offset": offset, "kafka_timestamp": kafka_ts,
                               "key": keys[i], "raw": value})
            continue
        result.update(kafka_topic=ctx.topic, kafka_partition=ctx.partition, kafka_offset=offset,
                      kafka_timestamp=kafka_ts)
        rows.append(result)
    return pa.Table.from_pylist(rows, schema=RAW_POSTS), quarantine


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
