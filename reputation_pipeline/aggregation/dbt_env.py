"""What a dbt invocation reads from the environment while it executes: the partition
window (macros/lake.sql ``window_bound``) and the lake files of a merge
(aggregation/merge.py). Kept out of ``--vars``, so dbt's partial parsing stays valid
from one micro-batch to the next (docs/aggregation.md, "Speed")."""
import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime

from reputation_pipeline.aggregation.merge import MERGE_ENV, RAW_FILES_ENV

WINDOW_ENV = {"min_date": "REPUTATION_DBT_MIN_DATE", "max_date": "REPUTATION_DBT_MAX_DATE"}


@contextlib.contextmanager
def window_env(start: datetime, end: datetime, extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """The partition window for the dbt process started inside the block (macros/lake.sql
    ``window_bound`` reads it at execution time), and the new files of a merge
    (``MERGE_ENV``, unset for a full build). Restored afterwards."""
    values = {WINDOW_ENV["min_date"]: start.isoformat(), WINDOW_ENV["max_date"]: end.isoformat(),
              MERGE_ENV: "", RAW_FILES_ENV: "", **(extra or {})}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
