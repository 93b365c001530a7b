"""Small readers over a LakeStore (tests, CLI summaries). Bulk analytics read
the lake with DuckDB through dbt instead."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from reputation_pipeline.lake.store import LakeStore


def read_parquet_prefix(store: LakeStore, prefix: str, columns: list[str] | None = None) -> pa.Table | None:
    """Concatenate every ``*.parquet`` object under ``prefix`` (None if there is none)."""
    tables = [pq.read_table(io.BytesIO(store.get(key)), columns=columns)
              for key in store.list(prefix) if key.endswith(".parquet")]
    return pa.concat_tables(tables) if tables else None
