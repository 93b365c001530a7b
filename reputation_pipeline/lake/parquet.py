"""The one way the lake's Parquet files are written (raw posts, quarantine, imports,
scores, published marts): zstd, row groups of 50,000 rows, one chunk per column, so a
file's bytes depend on its rows only, not on how they were batched before the write
(a retried drain or import then writes byte-identical files)."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"
ROW_GROUP_SIZE = 50_000


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table.combine_chunks(), buf, compression=COMPRESSION, row_group_size=ROW_GROUP_SIZE)
    return buf.getvalue()
