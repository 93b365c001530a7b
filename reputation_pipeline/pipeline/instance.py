"""The Dagster instance the headless driver and the demo record runs in."""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# One writer for the DuckDB warehouse: every asset that opens it runs in the
# `duckdb` pool, limited to one slot here (and in any production dagster.yaml).
DAGSTER_YAML = """\
concurrency:
  pools:
    default_limit: 1
run_retries:
  enabled: true
  max_retries: 2
telemetry:
  enabled: false
"""


def ensure_dagster_home(default: str = ".dagster") -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    return dg.DagsterInstance.get()
