"""The DuckDB warehouse that dbt builds and the alert stage reads.

DuckDB has a single writer per file: every Dagster step that opens it (the dbt
build, brand_alerts, the publish step) runs in the ``duckdb`` concurrency pool
(limit it to 1 in dagster.yaml / the instance: ``concurrency: pools: default_limit``
or ``dagster instance concurrency set duckdb 1``), so two runs never write it at
once.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb

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
    explicit = os.environ.get("REPUTATION_DUCKDB_PATH")
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
        return self.extension_directory or os.environ.get("REPUTATION_DUCKDB_EXTENSION_DIR") or httpfs_extension_directory()

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

    def connect(self, lake_uri: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        config: dict = {}
        ext = self.ext_dir()
        if ext:
            config["extension_directory"] = ext
        conn = duckdb.connect(self.path_for(lake_uri), read_only=read_only, config=config)
        conn.execute("SET TimeZone = 'UTC'")
        return conn


def warehouse_resource_from_env() -> WarehouseResource:
    fields = {"duckdb_path": "REPUTATION_DUCKDB_PATH", "extension_directory": "REPUTATION_DUCKDB_EXTENSION_DIR"}
    return WarehouseResource(**{f: dg.EnvVar(v) for f, v in fields.items() if os.environ.get(v)})
