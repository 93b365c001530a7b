"""The DuckDB warehouse that dbt builds and the alert stage reads.

DuckDB has a single writer per file: every Dagster step that opens it (the dbt
build, brand_alerts, the publish step) runs in the ``duckdb`` concurrency pool
(limit it to 1 in dagster.yaml / the instance: ``concurrency: pools: default_limit``
or ``dagster instance concurrency set duckdb 1``), so two runs never write it at
once.

A process can *hold* the warehouse (``hold``): one DuckDB database instance kept open
for a block, which every ``connect`` of that process shares, and so does dbt-duckdb in
the process (a ``duckdb.connect`` of a file already open in the process, with the same
configuration, gets that open instance). Opening the file costs about 25 ms (its catalog), and
the last connection to close after writes checkpoints the WAL into the file, 0.1-0.2 s
after a micro-batch; held, both happen once for the block instead of at every step. The
headless driver holds the warehouse while micro-batches keep coming (pipeline/driver.py);
no other process can open the file meanwhile, as during any run that writes it.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb

from reputation_pipeline import settings

DUCKDB_POOL = "duckdb"
WAREHOUSE_FILE = "reputation.duckdb"


def httpfs_extension_directory() -> str | None:
    """The ``duckdb_ext/extensions`` folder of the duckdb-ext-httpfs wheel: httpfs
    loads from it with no network (DuckDB's extension_directory)."""
    try:
        import duckdb_ext  # the duckdb-ext-httpfs wheel
    except ImportError:
        return None
    for base in list(getattr(duckdb_ext, "__path__", [])):
        candidate = Path(base) / "extensions"
        if candidate.is_dir():
            return str(candidate)
    return None


def default_duckdb_path(lake_uri: str) -> str:
    """REPUTATION_DUCKDB_PATH, else <lake>/warehouse/reputation.duckdb for a local
    lake, else ./warehouse/reputation.duckdb (a DuckDB file cannot live on S3)."""
    explicit = settings.DUCKDB_PATH.get()
    if explicit:
        return str(Path(explicit).resolve())
    if lake_uri.startswith("s3://"):
        return str(Path("warehouse", WAREHOUSE_FILE).resolve())
    local = lake_uri[len("file://"):] if lake_uri.startswith("file://") else lake_uri
    return str(Path(local, "warehouse", WAREHOUSE_FILE).resolve())


def absolute_lake_root(lake_uri: str) -> str:
    if lake_uri.startswith("s3://"):
        return lake_uri.rstrip("/")
    local = lake_uri[len("file://"):] if lake_uri.startswith("file://") else lake_uri
    return str(Path(local).resolve())


class _Held:
    def __init__(self, conn: duckdb.DuckDBPyConnection, config: dict):
        self.conn, self.config, self.count = conn, config, 1


_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()


@contextlib.contextmanager
def hold(path: str, config: dict) -> Iterator[None]:
    """Keep the DuckDB file at ``path`` open in this process for the block (nested holds
    share it; the last one out closes it, which checkpoints). ``config`` must be what every
    connection of the block passes, dbt-duckdb's included: DuckDB refuses a second
    configuration for an open file."""
    with _HELD_LOCK:
        held = _HELD.get(path)
        if held is None:
            _HELD[path] = held = _Held(duckdb.connect(path, config=config), dict(config))
        elif held.config != config:
            raise ValueError(f"{path} is held with another DuckDB configuration")
        else:
            held.count += 1
    try:
        yield
    finally:
        with _HELD_LOCK:
            held.count -= 1
            if held.count == 0:
                if _HELD.get(path) is held:
                    del _HELD[path]
                if held.conn is not None:
                    held.conn.close()


def held_config(path: str) -> dict | None:
    """The configuration the file is held with in this process, else None."""
    with _HELD_LOCK:
        held = _HELD.get(path)
        return dict(held.config) if held is not None and held.conn is not None else None


@contextlib.contextmanager
def released(path: str) -> Iterator[None]:
    """Let another process open the file for the block (a ``dbt`` subprocess): a hold on
    it is closed (checkpointed) first and reopened after. Connections taken from the hold
    must be closed before."""
    with _HELD_LOCK:
        held = _HELD.get(path)
        if held is None or held.conn is None:
            held = None
        else:
            held.conn.close()
            held.conn = None
    try:
        yield
    finally:
        if held is not None:
            with _HELD_LOCK:
                if held.count > 0:
                    held.conn = duckdb.connect(path, config=held.config)


def iso(ts: datetime) -> str:
    return ts.isoformat()


class WarehouseResource(dg.ConfigurableResource):
    """Where the DuckDB warehouse file lives. Empty ``duckdb_path`` = derived from
    the lake (see ``default_duckdb_path``)."""

    duckdb_path: str = ""
    extension_directory: str = ""

    def path_for(self, lake_uri: str) -> str:
        path = str(Path(self.duckdb_path).resolve()) if self.duckdb_path else default_duckdb_path(lake_uri)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return path

    def ext_dir(self) -> str | None:
        return self.extension_directory or settings.DUCKDB_EXTENSION_DIR.get() or httpfs_extension_directory()

    def dbt_vars(self, lake_uri: str, start: datetime | None = None, end: datetime | None = None) -> dict:
        """The --vars of a dbt invocation: the lake, the warehouse file, the offline
        extension folder, and the partition window [min_date, max_date)."""
        out: dict = {"lake_root": absolute_lake_root(lake_uri), "duckdb_path": self.path_for(lake_uri)}
        ext = self.ext_dir()
        if ext:
            out["extension_directory"] = ext
        if start is not None and end is not None:
            out["min_date"] = iso(start)
            out["max_date"] = iso(end)
        return out

    def duckdb_config(self) -> dict:
        """What every connection passes: the same as dbt-duckdb's (profiles.yml config_options)."""
        ext = self.ext_dir()
        return {"extension_directory": ext} if ext else {}

    def connect(self, lake_uri: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        path = self.path_for(lake_uri)
        held = held_config(path)
        # a held file is shared as it is open (read-write): read_only would be another configuration
        conn = duckdb.connect(path, config=held) if held is not None else \
            duckdb.connect(path, read_only=read_only, config=self.duckdb_config())
        conn.execute("SET TimeZone = 'UTC'")
        return conn

    def held(self, lake_uri: str) -> contextlib.AbstractContextManager:
        """``hold`` this warehouse for the block; a no-op where dbt-duckdb would open it with
        another configuration (no extension folder: the profile then names DuckDB's default)."""
        if not self.ext_dir():
            return contextlib.nullcontext()
        return hold(self.path_for(lake_uri), self.duckdb_config())


def warehouse_resource_from_env() -> WarehouseResource:
    fields = {"duckdb_path": settings.DUCKDB_PATH.name, "extension_directory": settings.DUCKDB_EXTENSION_DIR.name}
    return WarehouseResource(**{f: dg.EnvVar(v) for f, v in fields.items() if os.environ.get(v)})
