"""``reputation-pipeline import FILE… --platform P``: historical posts from JSONL,
CSV or Parquet files into the same lake layout and hour partitions as live posts.

Same contract as the Kafka drain (README, "Exactly once"), with the file's
content hash in the role of the offset range:

1. ``sha256`` of the file's bytes names everything. If the import manifest
   ``_ingest/imports/<sha>.json`` exists the file was imported: nothing is done.
2. The import plan ``_ingest/import_plans/<sha>.json`` is created with a
   conditional create (or read, when a crashed or concurrent import made it):
   it fixes the platform, the chunk size and the reference time, so a retry
   rewrites byte-identical objects.
3. Records are read in chunks of ``chunk_rows`` or ``REPUTATION_INGEST_PART_BYTES``
   of record bytes, whichever comes first (memory stays bounded), each
   validated by the live ingest code (``fastpath.convert``, whose slow path is
   ``validate_post``), grouped by event hour and written atomically as
   ``raw/posts/platform=<p>/dt=…/hour=…/import-<sha16>-<chunk>.parquet``;
   rejects go to ``quarantine/import=<sha16>/import-<sha16>-<chunk>.parquet``.
4. The manifest (conditional create) commits the chunks: until it exists no
   reader trusts them (lake/layout.py), so an import killed after chunk k and
   never re-run leaves nothing that is scored, aggregated or alerted on.
5. With a Dagster instance, one ``raw_posts`` materialization per touched hour
   is reported, then ``_ingest/imports_reported/<sha>.json`` is written: a crash
   in between reports again when the file is imported again (at least once).

Stand-ins for the Kafka coordinates (RAW_POSTS and QUARANTINE columns):
``kafka_topic`` / ``topic`` = ``import:<sha256>``, ``kafka_partition`` = 0,
``kafka_offset`` = the record number (JSONL/CSV: the 1-based line where the
record starts; Parquet: the 1-based row), ``kafka_timestamp`` = the plan's
reference time (the time of the first import attempt, or ``--as-of``).
``validate_post`` judges "absurd future" against that reference time. A
historical record must carry ``created_at``: without it there is no event time
(live ingest falls back to the broker timestamp), so it is quarantined as
``missing_field``. Records that cannot become a JSON object at all (a CSV row
with the wrong number of fields) are quarantined as ``malformed_record``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from reputation_pipeline.ingest import fastpath
from reputation_pipeline.ingest.drain import DrainSettings
from reputation_pipeline.ingest.import_readers import FORMATS, Malformed, detect_format, read_records
from reputation_pipeline.ingest.validate import Limits
from reputation_pipeline.lake.layout import import_file_key, import_manifest_key, import_quarantine_key
from reputation_pipeline.lake.schemas import QUARANTINE
from reputation_pipeline.lake.store import LakeStore
from reputation_pipeline.partitions import hour_partition_key
from reputation_pipeline.lake.parquet import parquet_bytes

PLAN_PREFIX = "_ingest/import_plans/"
DEFAULT_CHUNK_ROWS = 50_000
NO_CREATED_AT = "a historical record needs 'created_at' (there is no broker timestamp to take the event time from)"


class ImportFailed(RuntimeError):
    """An import that cannot proceed (bad arguments, a conflicting earlier plan)."""


def file_sha256(path: str | os.PathLike[str], block: int = 1 << 20, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def plan_key(sha: str) -> str:
    return f"{PLAN_PREFIX}{sha}.json"


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class ImportPlan:
    sha256: str
    platform: str
    format: str
    chunk_rows: int
    reference_ms: int
    source_name: str
    # record bytes per chunk too (a file of 1 MB lines is as valid as one of tweets); None in a
    # plan written before chunks were cut by bytes, whose retry must cut as it did
    chunk_bytes: int | None = None

    def to_json(self) -> bytes:
        return json.dumps({**self.__dict__, "reference_time": _iso_ms(self.reference_ms)}, sort_keys=True).encode()

    @classmethod
    def from_manifest(cls, m: dict) -> "ImportPlan":
        reference_ms = int(datetime.fromisoformat(m["reference_time"]).timestamp() * 1000)
        return cls(m["sha256"], m["platform"], m["format"], int(m["chunk_rows"]), reference_ms, m["source_name"],
                   m.get("chunk_bytes"))

    @classmethod
    def from_json(cls, data: bytes) -> "ImportPlan":
        d = json.loads(data)
        return cls(d["sha256"], d["platform"], d["format"], int(d["chunk_rows"]), int(d["reference_ms"]), d["source_name"],
                   d.get("chunk_bytes"))


@dataclass
class FileResult:
    path: str
    sha256: str
    status: str  # 'imported' | 'already_imported'
    rows: int = 0
    quarantined: int = 0
    files: list[dict] = field(default_factory=list)
    quarantine_files: list[dict] = field(default_factory=list)
    partition_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"file": Path(self.path).name, "sha256": self.sha256, "status": self.status, "rows": self.rows,
                "quarantined": self.quarantined, "data_files": len(self.files),
                "partitions": len(self.partition_keys), "seconds": round(self.seconds, 2)}


@dataclass
class ImportSummary:
    lake: str
    files: list[FileResult]

    @property
    def partitions(self) -> list[str]:
        return sorted({k for f in self.files if f.status == "imported" for k in f.partition_keys})

    def as_dict(self) -> dict:
        imported = [f for f in self.files if f.status == "imported"]
        return {"lake": self.lake, "files": [f.summary() for f in self.files],
                "files_imported": len(imported), "files_skipped": len(self.files) - len(imported),
                "rows": sum(f.rows for f in imported), "quarantined": sum(f.quarantined for f in imported),
                "partitions_touched": self.partitions}


def _chunks(records: Iterator[tuple[int, bytes | Malformed]], size: int,
            max_bytes: int | None = None) -> Iterator[list[tuple[int, bytes | Malformed]]]:
    """Chunks of ``size`` records, or fewer when their bytes reach ``max_bytes``: cut by the
    file's content only, so a retry of the plan writes the same chunks."""
    chunk: list[tuple[int, bytes | Malformed]] = []
    held = 0
    for rec in records:
        chunk.append(rec)
        value = rec[1]
        held += len(value.raw if isinstance(value, Malformed) else value)
        if len(chunk) >= size or (max_bytes is not None and held >= max_bytes):
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def convert_chunk(records: Sequence[tuple[int, bytes | Malformed]], plan: ImportPlan,
                  known_platforms: frozenset[str], limits: Limits = Limits()) -> tuple[pa.Table, list[dict]]:
    """RAW_POSTS rows and QUARANTINE rows (in record order) for one chunk."""
    topic = f"import:{plan.sha256}"
    ref_dt = fastpath.kafka_datetime(plan.reference_ms)
    quarantine: list[dict] = []

    def reject(number: int, reason: str, detail: str, raw: bytes | None) -> None:
        quarantine.append({"reason": reason, "detail": detail, "topic": topic, "partition": 0, "offset": number,
                           "kafka_timestamp": ref_dt, "key": None, **fastpath.quarantine_raw(raw)})

    values, numbers = [], []
    for number, value in records:
        if isinstance(value, Malformed):
            reject(number, value.reason, value.detail, value.raw)
        else:
            values.append(value)
            numbers.append(number)
    ctx = fastpath.Context(topic, 0, plan.platform, known_platforms, reference_ms=plan.reference_ms, limits=limits)
    result = fastpath.convert(values, numbers, [plan.reference_ms] * len(values), [None] * len(values), ctx)
    quarantine.extend(result.quarantine)
    posts = result.posts
    no_created = pc.fill_null(pc.equal(posts.column("event_time_source"), "kafka_timestamp"), False)
    if pc.any(no_created).as_py():
        by_number = dict(zip(numbers, values))
        for number in posts.filter(no_created).column("kafka_offset").to_pylist():
            reject(number, "missing_field", NO_CREATED_AT, by_number[number])
        posts = posts.filter(pc.invert(no_created))
    quarantine.sort(key=lambda q: q["offset"])
    return posts, quarantine


def _get_or_create_plan(store: LakeStore, wanted: ImportPlan, as_of_given: bool) -> ImportPlan:
    key = plan_key(wanted.sha256)
    if not store.put(key, wanted.to_json(), if_absent=True):
        existing = store.get(key)
        if existing is None:  # deleted between the two calls: try once more
            if store.put(key, wanted.to_json(), if_absent=True):
                return wanted
            existing = store.get(key) or wanted.to_json()
        plan = ImportPlan.from_json(existing)
        if plan.platform != wanted.platform:
            raise ImportFailed(f"{wanted.source_name} (sha256 {wanted.sha256[:16]}…) was already planned as platform "
                               f"{plan.platform!r}, not {wanted.platform!r}")
        if as_of_given and plan.reference_ms != wanted.reference_ms:
            raise ImportFailed(f"{wanted.source_name} was already planned with reference time "
                               f"{_iso_ms(plan.reference_ms)}; --as-of cannot change it")
        return plan
    return wanted


def import_file(path: str | os.PathLike[str], *, platform: str, store: LakeStore, known_platforms: frozenset[str],
                fmt: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS, as_of: datetime | None = None,
                limits: Limits = Limits(), instance: Any = None, progress: bool = False,
                now: Callable[[], float] = time.time) -> FileResult:
    started = time.monotonic()
    path = Path(path)
    size = path.stat().st_size
    bar = _bar(size * 2, f"{path.name}", progress)  # one pass to hash, one to import
    try:
        sha = file_sha256(path, progress=bar.update)
        result = FileResult(str(path), sha, "imported")
        existing = store.get(import_manifest_key(sha))
        if existing is not None:
            manifest = json.loads(existing)
            result.status = "already_imported"
            result.partition_keys = manifest.get("partition_keys", [])
            if instance is not None and not store.exists(reported_key(sha)):
                # an earlier import committed but died before telling Dagster: tell it now
                _report(store, instance, ImportPlan.from_manifest(manifest), manifest)
            return result
        reference_ms = int((as_of.timestamp() if as_of else now()) * 1000)
        plan = _get_or_create_plan(store, ImportPlan(sha, platform, detect_format(path, fmt), chunk_rows,
                                                     reference_ms, path.name, DrainSettings.from_env().part_bytes),
                                   as_of is not None)
        read_base = bar.n

        def moved(pos: int) -> None:
            bar.update(max(0, read_base + pos - bar.n))

        per_hour: dict[str, dict] = {}
        records = read_records(path, plan.format, plan.platform, progress=moved)
        for chunk_no, chunk in enumerate(_chunks(records, plan.chunk_rows, plan.chunk_bytes)):
            posts, quarantine = convert_chunk(chunk, plan, known_platforms, limits)
            for dt, hour, rows in fastpath.split_by_hour([posts]):
                key = import_file_key(plan.platform, dt, hour, sha, chunk_no)
                store.put(key, parquet_bytes(rows))
                pk = hour_partition_key(dt, hour)
                result.files.append({"key": key, "rows": rows.num_rows, "partition_key": pk})
                stats = per_hour.setdefault(pk, {"rows": 0, "files": []})
                stats["rows"] += rows.num_rows
                stats["files"].append(key)
            if quarantine:
                key = import_quarantine_key(sha, chunk_no)
                store.put(key, parquet_bytes(pa.Table.from_pylist(quarantine, schema=QUARANTINE)))
                result.quarantine_files.append({"key": key, "rows": len(quarantine)})
            result.rows += posts.num_rows
            result.quarantined += len(quarantine)
        bar.update(max(0, bar.total - bar.n))
        result.partition_keys = sorted(per_hour)
        manifest = {
            "sha256": sha, "source_name": path.name, "platform": plan.platform, "format": plan.format,
            "chunk_rows": plan.chunk_rows, "chunk_bytes": plan.chunk_bytes, "reference_time": _iso_ms(plan.reference_ms),
            "rows": result.rows, "quarantined": result.quarantined, "files": result.files,
            "quarantine_files": result.quarantine_files, "partition_keys": result.partition_keys,
            "imported_at": _iso_ms(int(now() * 1000)),
        }
        # the manifest commits the chunks (lake/layout.py): readers trust them from here on
        if not store.put(import_manifest_key(sha), json.dumps(manifest, indent=1).encode(), if_absent=True):
            # a concurrent import of the same file finished first; its objects are identical to ours
            result.status = "already_imported"
        if instance is not None:
            _report(store, instance, plan, manifest)
        return result
    finally:
        bar.close()
        if "result" in locals():
            result.seconds = time.monotonic() - started


def reported_key(sha: str) -> str:
    return f"_ingest/imports_reported/{sha}.json"


def _report(store: LakeStore, instance: Any, plan: ImportPlan, manifest: dict) -> None:
    """Report the committed import to Dagster, then mark it reported: at least once (a crash
    in between reports again on the next run of the same file), and never before the commit,
    so every run it starts finds the files committed."""
    per_hour: dict[str, dict] = {}
    for f in manifest["files"]:
        stats = per_hour.setdefault(f["partition_key"], {"rows": 0, "files": []})
        stats["rows"] += f["rows"]
        stats["files"].append(f["key"])
    report_materializations(instance, plan, manifest["quarantined"], manifest["quarantine_files"], per_hour)
    store.put(reported_key(plan.sha256), json.dumps({"reported_at": time.time()}).encode())


def report_materializations(instance: Any, plan: ImportPlan, quarantined: int, quarantine_files: list[dict],
                            per_hour: dict[str, dict]) -> None:
    """One ``raw_posts`` materialization per touched hour (and one ``quarantined_posts``),
    as runless events, so automation conditions and backfills see them."""
    import dagster as dg

    source = f"import:{plan.sha256}"
    for pk, stats in sorted(per_hour.items()):
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="raw_posts", partition=pk,
            metadata={"rows": dg.MetadataValue.int(stats["rows"]), "files": dg.MetadataValue.json(stats["files"]),
                      "source": source, "source_file": plan.source_name, "platform": plan.platform}))
    if quarantined:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="quarantined_posts",
            metadata={"quarantined_rows": dg.MetadataValue.int(quarantined), "source": source,
                      "files": dg.MetadataValue.json([q["key"] for q in quarantine_files])}))


class _NoBar:
    n = 0
    total = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        bar = _NoBar()
        bar.total = total
        return bar
    from tqdm import tqdm

    return tqdm(total=total, desc=desc[:40], unit="B", unit_scale=True, file=sys.stderr, leave=False)


def import_files(paths: Iterable[str | os.PathLike[str]], *, platform: str, store: LakeStore,
                 known_platforms: frozenset[str] | None = None, fmt: str | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, as_of: datetime | None = None, limits: Limits = Limits(),
                 instance: Any = None, progress: bool = False) -> ImportSummary:
    """Import each file (idempotent per file content). ``instance``: a Dagster instance to
    report the touched ``raw_posts`` partitions to (None: report nothing)."""
    from reputation_pipeline.resources import platform_refusal, platform_selection

    # known_platforms: a selection like REPUTATION_PLATFORMS (None: read it; unset admits any valid name)
    refusal = platform_refusal(platform or "", platform_selection() if known_platforms is None else frozenset(known_platforms))
    if refusal:
        raise ImportFailed(f"--platform {platform!r} is {refusal}")
    known = frozenset({platform})
    if fmt is not None and fmt not in FORMATS:
        raise ImportFailed(f"--format must be one of {FORMATS}")
    if chunk_rows < 1:
        raise ImportFailed("--chunk-rows must be at least 1")
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ImportFailed(f"not a file: {', '.join(missing)}")
    for p in paths:
        detect_format(p, fmt)  # fail before importing anything
    results = [import_file(p, platform=platform, store=store, known_platforms=known, fmt=fmt, chunk_rows=chunk_rows,
                           as_of=as_of, limits=limits, instance=instance, progress=progress) for p in paths]
    return ImportSummary(store.uri, results)


# -- CLI ------------------------------------------------------------------------------------------

def _parse_as_of(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    if ts.tzinfo is None:
        raise ValueError("--as-of needs a UTC offset, e.g. 2026-11-26T00:00:00+00:00")
    return ts.astimezone(timezone.utc)


def _cmd_import(args) -> int:
    from reputation_pipeline.lake.store import open_lake
    from reputation_pipeline.resources import lake_uri_from_env

    store = open_lake(args.lake or lake_uri_from_env())
    instance = None
    if os.environ.get("DAGSTER_HOME"):
        import dagster as dg

        instance = dg.DagsterInstance.get()
    try:
        as_of = _parse_as_of(args.as_of) if args.as_of else None
        summary = import_files(args.files, platform=args.platform, store=store, fmt=args.format,
                               chunk_rows=args.chunk_rows, as_of=as_of, instance=instance,
                               progress=not args.no_progress)
    except (ImportFailed, ValueError) as exc:
        print(f"import: {exc}", file=sys.stderr)
        return 2
    out = summary.as_dict()
    out["reported_to_dagster"] = instance is not None
    print(json.dumps(out))
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="import historical posts (JSONL, CSV, Parquet) into the lake's raw/posts partitions",
        description="Import historical posts into <lake>/raw/posts/platform=P/dt=…/hour=… (REPUTATION_LAKE), "
        "validated like live posts; idempotent per file content. Prints a JSON summary as the last line; with "
        "DAGSTER_HOME set, reports a raw_posts materialization per touched hour partition.")
    p.add_argument("files", nargs="+", metavar="FILE", help=".jsonl/.ndjson/.json, .csv/.tsv, .parquet (optionally .gz)")
    p.add_argument("--platform", required=True, help="the platform of the posts, e.g. x ([a-z0-9_]; in REPUTATION_PLATFORMS when that is set)")
    p.add_argument("--format", choices=FORMATS, default=None, help="override the format guessed from the name")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="records per chunk (bounds memory)")
    p.add_argument("--as-of", default=None,
                   help="reference time (ISO 8601 with offset) for the 'absurd future' rule and kafka_timestamp; "
                   "default: the time of the first import attempt of the file")
    p.add_argument("--lake", default=None, help="lake URI (default: REPUTATION_LAKE or ./lake)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_cmd_import)
