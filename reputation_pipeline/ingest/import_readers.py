"""Readers for historical post files (JSONL, CSV, Parquet), used by ``importer``.

Every reader yields ``(record_number, value)`` where ``value`` is the record as
JSON bytes in the shape of docs/post-schema.md (what a producer would have put
on Kafka) or a ``Malformed`` marker for a record that cannot even become a JSON
object. The record number is 1-based: the physical line for JSONL and CSV (the
line where the record starts; the CSV header is line 1), the row for Parquet.
The importer validates the values with the same code as live ingest, so a
historical post is accepted or rejected exactly as if it had come from Kafka.

CSV dialect: a header row; columns named like the schema's fields, with the
engagement counts flat (``likes, shares, comments, views``); an empty cell is an
absent field (except ``text``, where it is the empty string); ``hashtags`` and
``mentions`` are ``|``-separated or a JSON list; ``media`` is a JSON list of
``{type, uri}``; counts are decimal integers (anything else stays a string and
is rejected as ``wrong_type``). Unknown columns are ignored.

Parquet: columns named like the schema's fields, ``metrics`` as a struct or flat
count columns; timestamps must be timezone-aware (a naive timestamp has no
UTC offset and is rejected as ``invalid_timestamp``, as in JSON); integral
floats in count columns (pandas writes nullable ints as float64) become ints.

For CSV and Parquet files without a ``platform`` column, the import's platform
is filled in; when the column exists its values are validated as usual.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Callable

import orjson

FORMATS = ("jsonl", "csv", "parquet")
COUNT_FIELDS = ("likes", "shares", "comments", "views")
INT_CELL = re.compile(r"[+-]?[0-9]{1,19}")
# read at most this much of one JSONL line; longer lines are cut (and rejected as oversized)
MAX_LINE_BYTES = 1_000_000 + 2
MAX_RAW_BYTES = 1_000_000


@dataclass(frozen=True)
class Malformed:
    """A record that is not a JSON object candidate at all (e.g. a CSV row with the
    wrong number of fields). ``raw`` keeps its bytes for the quarantine."""

    reason: str
    detail: str
    raw: bytes


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise ValueError(f"unknown format {explicit!r}: use one of {FORMATS}")
        return explicit
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {Path(path).name!r} from its name: pass --format {'|'.join(FORMATS)}")


class _Source:
    """The file (gunzipped when its name ends in .gz) and the byte position read so
    far in the file on disk, for the progress bar."""

    def __init__(self, path: str | Path):
        self.base = open(path, "rb")
        self.fh: IO[bytes] = gzip.GzipFile(fileobj=self.base, mode="rb") if str(path).lower().endswith(".gz") else self.base

    def position(self) -> int:
        return self.base.tell()

    def __enter__(self) -> "_Source":
        return self

    def __exit__(self, *exc) -> None:
        if self.fh is not self.base:
            self.fh.close()
        self.base.close()


Progress = Callable[[int], None]  # called with the byte position in the file on disk


# -- JSONL ----------------------------------------------------------------------------------------

def read_jsonl(path: str | Path, progress: Progress | None = None) -> Iterator[tuple[int, bytes | Malformed]]:
    """One value per non-blank line, as the raw line bytes (validated like a Kafka message)."""
    with _Source(path) as src:
        fh, line_no = src.fh, 0
        while True:
            if progress and line_no % 4096 == 0:
                progress(src.position())
            line = fh.readline(MAX_LINE_BYTES)
            if not line:
                return
            line_no += 1
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                # an oversized line: skip the rest of it, keep what was read for the quarantine
                while True:
                    rest = fh.readline(1 << 20)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield line_no, line
                continue
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue  # blank lines carry no record
            yield line_no, line


# -- CSV ------------------------------------------------------------------------------------------

def _csv_value(name: str, cell: str) -> Any:
    if name in ("author_followers", *COUNT_FIELDS):
        return int(cell) if INT_CELL.fullmatch(cell) else cell
    if name in ("hashtags", "mentions"):
        if cell.startswith("["):
            try:
                return orjson.loads(cell)
            except orjson.JSONDecodeError:
                return cell
        return [part.strip() for part in cell.split("|") if part.strip()]
    if name == "media":
        try:
            return orjson.loads(cell)
        except orjson.JSONDecodeError:
            return cell
    return cell


def csv_row_to_object(header: list[str], row: list[str], platform: str) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for name, cell in zip(header, row):
        if cell == "" and name != "text":
            continue  # an empty cell is an absent field
        value = _csv_value(name, cell)
        if name in COUNT_FIELDS:
            metrics[name] = value
        else:
            obj[name] = value
    if metrics:
        obj["metrics"] = metrics
    if "platform" not in header:
        obj["platform"] = platform
    return obj


def _csv_line(row: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue().encode("utf-8", "surrogateescape")


def read_csv(path: str | Path, platform: str, progress: Progress | None = None) -> Iterator[tuple[int, bytes | Malformed]]:
    delimiter = "\t" if str(path).lower().removesuffix(".gz").endswith(".tsv") else ","
    with _Source(path) as src, io.TextIOWrapper(src.fh, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            return
        if len(set(header)) != len(header):
            raise ValueError(f"{Path(path).name}: duplicate column names in the CSV header")
        records = 0
        while True:
            start = reader.line_num + 1
            records += 1
            if progress and records % 4096 == 0:
                progress(src.position())
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, Malformed("malformed_record", f"CSV parse error: {str(exc)[:120]}", b"")
                continue
            if not row or (len(row) == 1 and row[0] == ""):
                continue  # blank line
            line = _csv_line(row)
            if len(row) != len(header):
                yield start, Malformed("malformed_record",
                                       f"CSV record has {len(row)} fields, the header has {len(header)}", line)
                continue
            try:
                "".join(row).encode("utf-8")
            except UnicodeEncodeError:
                yield start, line  # undecodable bytes: validate_post classifies it as invalid_utf8
                continue
            try:
                yield start, orjson.dumps(csv_row_to_object(header, row, platform))
            except orjson.JSONEncodeError as exc:  # e.g. a count below -2**63
                yield start, Malformed("malformed_record", f"CSV record cannot be represented as JSON: {str(exc)[:120]}",
                                       line)


# -- Parquet --------------------------------------------------------------------------------------

def _normalize(name: str, value: Any) -> Any:
    if isinstance(value, float) and name in ("author_followers", *COUNT_FIELDS):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")  # a binary column is not text: validate_post rejects it by content
    if isinstance(value, datetime):
        return value.isoformat()  # naive stays without an offset (rejected, as in JSON)
    if isinstance(value, date):
        return value.isoformat()
    return value


def parquet_row_to_object(row: dict[str, Any], platform: str, has_platform: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for name, value in row.items():
        if value is None:
            continue
        if name in COUNT_FIELDS:
            metrics[name] = _normalize(name, value)
        elif name == "metrics" and isinstance(value, dict):
            obj["metrics"] = {k: _normalize(k, v) for k, v in value.items() if v is not None}
        else:
            obj[name] = _normalize(name, value)
    if metrics:
        obj.setdefault("metrics", {}).update(metrics)
    if not has_platform:
        obj["platform"] = platform
    return obj


def _default(value: Any) -> Any:
    # orjson handles str/int/float/list/dict/datetime; anything else (Decimal, ...) as text
    return str(value)


def read_parquet(path: str | Path, platform: str, progress: Progress | None = None,
                 batch_rows: int = 10_000) -> Iterator[tuple[int, bytes | Malformed]]:
    """Row groups are read in batches of ``batch_rows`` (memory stays bounded)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    has_platform = "platform" in pf.schema_arrow.names
    total_rows, size = max(pf.metadata.num_rows, 1), Path(path).stat().st_size
    row_no = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        if progress:
            progress(size * row_no // total_rows)
        for row in _batch_rows(batch):
            row_no += 1
            if isinstance(row, Malformed):
                yield row_no, row
                continue
            try:
                yield row_no, orjson.dumps(parquet_row_to_object(row, platform, has_platform), default=_default)
            except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError) as exc:
                yield row_no, Malformed("malformed_record", f"row cannot be represented as JSON: {str(exc)[:120]}",
                                        repr(row).encode("utf-8", "replace")[:MAX_RAW_BYTES])


def _batch_rows(batch) -> Iterator[dict[str, Any] | Malformed]:
    """The batch's rows as Python values; a row Python cannot hold (a timestamp past year
    9999, say) becomes a Malformed record instead of failing the batch."""
    try:
        yield from batch.to_pylist()
        return
    except (ValueError, OverflowError, TypeError, ArithmeticError):
        pass
    for i in range(batch.num_rows):
        row = batch.slice(i, 1)
        try:
            yield row.to_pylist()[0]
        except (ValueError, OverflowError, TypeError, ArithmeticError) as exc:
            yield Malformed("malformed_record", f"row has a value Python cannot represent: {str(exc)[:120]}",
                            _arrow_text(row).encode("utf-8", "replace")[:MAX_RAW_BYTES])


def _arrow_text(row) -> str:
    # Arrow formats its own values, including those Python's datetime cannot hold
    return "\n".join(f"{name}: {row.column(j).to_string(indent=0, window=3)}" for j, name in enumerate(row.schema.names))


def read_records(path: str | Path, fmt: str, platform: str,
                 progress: Progress | None = None) -> Iterator[tuple[int, bytes | Malformed]]:
    if fmt == "jsonl":
        return read_jsonl(path, progress)
    if fmt == "csv":
        return read_csv(path, platform, progress)
    if fmt == "parquet":
        return read_parquet(path, platform, progress)
    raise ValueError(f"unknown format {fmt!r}")
