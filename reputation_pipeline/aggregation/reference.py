"""When the micro-batch may skip the dbt nodes that do not depend on the window.

Of the 20 dbt nodes on the alert path only seven change with the partition window
(tag ``window``: the base tables and staging views over the lake, the incremental marts).
The seeds and the other views (read by name in DuckDB, so they follow the rebuilt
staging views) change only with the project or the brand list, yet reloading and
re-creating them is most of a micro-batch's dbt time. The headless driver builds them
on its first micro-batch, whenever this fingerprint changes, and after a failure."""
from __future__ import annotations

import hashlib
from pathlib import Path

from reputation_pipeline.aggregation.project import DBT_PROJECT_DIR
from reputation_pipeline import settings

# what the non-window nodes are built from: the project's files and the brands override
PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "models", "seeds", "macros")
ENV_INPUTS = (settings.BRANDS_CSV,)


def reference_fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """Content hash of the dbt project's sources (a few dozen small files: a few ms)."""
    h = hashlib.sha256()
    for part in PROJECT_PARTS:
        root = project_dir / part
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            if f.exists():
                h.update(str(f.relative_to(project_dir)).encode())
                h.update(f.read_bytes())
    for setting in ENV_INPUTS:
        h.update(f"{setting.name}={setting.raw() or ''}".encode())
    return h.hexdigest()
