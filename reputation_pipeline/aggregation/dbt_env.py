"""What a dbt invocation reads from the environment while it executes: the partition
window (macros/lake.sql ``window_bound``) and the lake files of a merge
(aggregation/merge.py). Kept out of ``--vars``, so dbt's partial parsing stays valid
from one micro-batch to the next (docs/aggregation.md, "Speed")."""
import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime

from reputation_pipeline import settings


@contextlib.contextmanager
def window_env(start: datetime, end: datetime, extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """The partition window for the dbt process started inside the block (macros/lake.sql
    ``window_bound`` reads it at execution time), and the new files of a merge
    (``REPUTATION_DBT_MERGE_FILES``, unset for a full build). Restored afterwards."""
    values = {settings.DBT_MIN_DATE.name: start.isoformat(), settings.DBT_MAX_DATE.name: end.isoformat(),
              settings.DBT_MERGE_FILES.name: "", settings.DBT_RAW_FILES_LISTED.name: "", **(extra or {})}
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
