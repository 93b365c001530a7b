"""Micro-batches merge only the lake files that are new to the warehouse.

A window's marts (``fct_posts``, ``fct_brand_mentions``) used to be rebuilt from every
file of the window on every micro-batch, so the dbt step grew through the hour (about
7-9 s for a full hour at 100 posts/s on 2 cores). Lake files are immutable, so the
warehouse records which files each window has merged (``meta.lake_files_merged``) and
a micro-batch passes dbt only the new ones (``REPUTATION_DBT_MERGE_FILES``, read by
macros/lake.sql while dbt executes). dbt then recomputes just the posts those files
name: all copies and scores of those post ids in the window, so the result is the
same as a full rebuild (docs/aggregation.md, "Merging new files").

An hour not built here yet merges all of its files. A window is built in full, and its
file list recorded afresh, when the dbt project or the brand list changed since its last
build (``reference_fingerprint``),
when a window table is missing, when the new files are too many to name, or when the
window is older than the retention of the base tables. A failed build
records nothing: the next one merges the same files again, which is idempotent.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import duckdb

from reputation_pipeline.aggregation.project import window_models
from reputation_pipeline.lake.layout import TABLE_ROOTS, CommittedFiles
from reputation_pipeline.lake.store import LakeStore
from reputation_pipeline import settings

# a full window build reads the committed raw files listed in RAW_FILES_TABLE (settings.DBT_RAW_FILES_LISTED;
# macros/lake.sql lake_rows), not whatever the folders hold (lake/layout.py, the read protocol)
RAW_FILES_TABLE = "meta.window_raw_files"
# Beyond this many new files the window is rebuilt instead (a backlog, a backfill): the
# list travels in an environment variable and ends up in the SQL text.
MAX_MERGE_FILES = 400
SAFE_KEY = re.compile(r"[A-Za-z0-9_.=/-]+")

STATE_DDL = (
    "create schema if not exists meta",
    "create table if not exists meta.window_builds (window_start timestamptz primary key, "
    "fingerprint varchar not null, built_at timestamptz not null)",
    "create table if not exists meta.lake_files_merged (path varchar primary key, window_start timestamptz not null)",
    f"create table if not exists {RAW_FILES_TABLE} (path varchar primary key)",
)
# The tables a merge updates (the persisted models tagged `window`) and the base tables among
# them come from the dbt manifest: aggregation/project.py window_models.
# base_* keep the raw and score rows of the recent windows only: a merge needs them, an older
# window (a late post, a backfill) is rebuilt in full from the lake.


def merging_enabled() -> bool:
    # the operator's switch: off makes every micro-batch rebuild its window from every file
    return settings.DBT_MERGE_NEW_FILES.get()


def retention_cutoff(now: datetime | None = None) -> datetime:
    hours = settings.MERGE_RETENTION_HOURS.get()
    return (now or datetime.now(timezone.utc)) - timedelta(hours=hours)


def window_hours(start: datetime, end: datetime) -> list[datetime]:
    start = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    out = []
    while start < end:
        out.append(start)
        start += timedelta(hours=1)
    return out


def window_files(store: LakeStore, hours: list[datetime]) -> dict[str, list[tuple[str, datetime]]]:
    """Per dbt source, the Parquet files of the window's hour partitions, with their hour:
    one folder listing per platform (or model version) and hour, never the whole lake."""
    out: dict[str, list[tuple[str, datetime]]] = {}
    for table, (root, part) in TABLE_ROOTS.items():
        files = []
        for folder in store.folders(root):
            if not folder.startswith(part):
                continue
            for hour in hours:
                prefix = f"{root}{folder}/dt={hour:%Y-%m-%d}/hour={hour:%H}/"
                files += [(k, hour) for k in store.list(prefix) if k.endswith(".parquet")]
        out[table] = sorted(files)
    return out


@dataclass
class MergePlan:
    """What a dbt invocation over [start, end) reads: ``new`` files only (``merge``) or the
    whole window; ``listed`` is recorded as merged once the build succeeded."""

    hours: list[datetime]
    listed: dict[str, list[tuple[str, datetime]]]
    merge: bool
    new: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""

    @property
    def new_files(self) -> int:
        return sum(map(len, self.new.values()))

    def env(self) -> dict[str, str]:
        """The environment for dbt: the new files' keys, or (a full window build) that the
        window's raw files are listed in RAW_FILES_TABLE."""
        return {settings.DBT_MERGE_FILES.name: json.dumps(self.new, sort_keys=True)} if self.merge else {
            settings.DBT_RAW_FILES_LISTED.name: "1"}

    def describe(self) -> str:
        if self.merge:
            return f"merging {self.new_files} new lake file(s) into the window's marts"
        return f"rebuilding the window's marts in full ({self.reason})"


def _ensure_state(conn: duckdb.DuckDBPyConnection) -> None:
    for ddl in STATE_DDL:
        conn.execute(ddl)


def _tables_exist(conn: duckdb.DuckDBPyConnection) -> bool:
    tables = [m.relation for m in window_models().tables]
    found = conn.execute("select count(*) from information_schema.tables where (table_schema, table_name) "
                         "in (select unnest(?), unnest(?))",
                         [[t[0] for t in tables], [t[1] for t in tables]]).fetchone()[0]
    return found == len(tables)


def plan_merge(conn: duckdb.DuckDBPyConnection, store: LakeStore, start: datetime, end: datetime,
               fingerprint: str, allow: bool = True, now: datetime | None = None) -> MergePlan:
    """Merge or full build for [start, end), from the warehouse's records and a listing of
    the window's partitions (taken now: a file written later is merged next time)."""
    hours = window_hours(start, end)
    _ensure_state(conn)
    merged = {r[0] for r in conn.execute("select path from meta.lake_files_merged where window_start in "
                                         "(select unnest(?))", [hours]).fetchall()}
    committed = CommittedFiles(store)
    listed = window_files(store, hours)
    # raw files merged before were committed then; a new one is read once its commit exists.
    # (Score files derive from committed raw files only: scoring reads nothing else.)
    listed["raw_posts"] = [(k, h) for k, h in listed["raw_posts"] if k in merged or committed(k)]

    def full(reason: str) -> MergePlan:
        conn.execute("begin")
        conn.execute(f"delete from {RAW_FILES_TABLE}")
        conn.execute(f"insert into {RAW_FILES_TABLE} select distinct unnest(?::varchar[])",
                     [[k for k, _ in listed["raw_posts"]]])
        conn.execute("commit")
        return MergePlan(hours, listed, merge=False, reason=reason)

    if not _tables_exist(conn):
        return full("first build of the window's tables")
    if hours and hours[0] < retention_cutoff(now):
        return full(f"a window older than {settings.MERGE_RETENTION_HOURS.name}")
    # An hour not built here yet merges every file it has (none is recorded): the rows of a
    # rebuild, and the hour that a late post adds to the range does not rebuild the others.
    built = dict(conn.execute("select window_start, fingerprint from meta.window_builds "
                              "where window_start in (select unnest(?))", [hours]).fetchall())
    if any(f != fingerprint for f in built.values()):
        return full("the dbt project or the brand list changed since the last build")
    if not allow:
        return full("not requested")
    if not merging_enabled():
        return full(f"{settings.DBT_MERGE_NEW_FILES.name}=0")
    new = {table: [k for k, _ in files if k not in merged] for table, files in listed.items()}
    if sum(map(len, new.values())) > MAX_MERGE_FILES:
        return full(f"more than {MAX_MERGE_FILES} new files")
    if any(not SAFE_KEY.fullmatch(k) for keys in new.values() for k in keys):
        # the keys become quoted paths in read_parquet([...]), where * ? [ would glob
        return full("a new file name outside [A-Za-z0-9_.=/-]")
    return MergePlan(hours, listed, merge=True, new=new)


def window_loaded(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> bool:
    """Whether base_raw_posts / base_post_scores hold every hour of [start, end) (built here
    and not pruned since): what a run that reads them without rebuilding them needs."""
    _ensure_state(conn)
    hours = window_hours(start, end)
    built = {_utc(r[0]) for r in conn.execute("select window_start from meta.window_builds "
                                              "where window_start in (select unnest(?))", [hours]).fetchall()}
    return all(_utc(h) in built for h in hours)


def record_merge(conn: duckdb.DuckDBPyConnection, plan: MergePlan, fingerprint: str,
                 now: datetime | None = None) -> None:
    """After a successful build: the files it read are merged (a full build replaces the
    window's records), and the window was built with this fingerprint. Windows past the
    retention leave base_* and the records."""
    _ensure_state(conn)
    now = now or datetime.now(timezone.utc)
    cutoff = retention_cutoff(now)
    conn.execute("begin")
    try:
        if not plan.merge:
            conn.execute("delete from meta.lake_files_merged where window_start in (select unnest(?))", [plan.hours])
        rows = [(k, hour) for files in plan.listed.values() for k, hour in files]
        if rows:  # one statement for the lot (executemany goes row by row)
            conn.execute("insert or ignore into meta.lake_files_merged "
                         "select unnest(?::varchar[]), unnest(?::timestamptz[])",
                         [[k for k, _ in rows], [h for _, h in rows]])
        conn.execute("insert or replace into meta.window_builds "
                     "select unnest(?::timestamptz[]), ?, ?", [plan.hours, fingerprint, now])
        oldest = conn.execute("select min(window_start) from meta.window_builds").fetchone()[0]
        if oldest is not None and _utc(oldest) < cutoff:
            _prune(conn, cutoff)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


def _prune(conn: duckdb.DuckDBPyConnection, cutoff: datetime) -> None:
    conn.execute("delete from meta.window_builds where window_start < ?", [cutoff])
    conn.execute("delete from meta.lake_files_merged where window_start < ?", [cutoff])
    for schema, name in (m.relation for m in window_models().base_tables):
        # the same hour arithmetic as macros/lake.sql partition_filter
        conn.execute(f"delete from {schema}.{name} where dt + to_hours(hour) < ?::timestamptz::timestamp",
                     [cutoff])


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc) if ts.tzinfo else ts.replace(tzinfo=timezone.utc)

