"""Every ``REPUTATION_*`` environment variable in one place: its type, default and
meaning. Modules read a setting through its ``Setting`` (``settings.LAKE.get()``),
at the moment they need it, so a test's or a run's environment applies; Dagster
resources take ``Setting.env_var()`` (``dg.EnvVar``), resolved when a run starts.

An unset or empty variable means the default; a value of the wrong type is a
``ValueError`` naming the variable. The README's configuration table lists every
setting that is not ``internal`` (``test_settings.py`` checks both ways);
``internal`` ones are how the pipeline hands a run's window to dbt, not knobs.
Kafka's and AWS's own variables (``KAFKA_*``, ``AWS_*``) are read by their resources
(ingest/kafka_client.py, resources.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # str | int | float | bool | json
    default: Any
    doc: str
    internal: bool = False
    minimum: float | None = None

    def raw(self) -> str | None:
        value = os.environ.get(self.name)
        return value.strip() if value is not None and value.strip() != "" else None

    def is_set(self) -> bool:
        return self.raw() is not None

    def get(self) -> Any:
        raw = self.raw()
        if raw is None:
            return self.default
        try:
            value = _parse(self.kind, raw)
        except ValueError:
            raise ValueError(f"{self.name} must be {_KIND_NAMES[self.kind]}, got {raw!r}") from None
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name} must be at least {self.minimum:g}, got {raw!r}")
        return value

    def env_var(self):
        """``dg.EnvVar`` of this setting, for a Dagster resource field."""
        import dagster as dg

        return dg.EnvVar(self.name)


_KIND_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "0/1 (or true/false)",
               "json": "a JSON value"}


def _parse(kind: str, raw: str) -> Any:
    if kind == "str":
        return raw
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        low = raw.lower()
        if low in _FALSE:
            return False
        if low in ("1", "true", "yes", "on"):
            return True
        raise ValueError(raw)
    if kind == "json":
        return json.loads(raw)
    raise AssertionError(kind)


# -- where things are -------------------------------------------------------------------
LAKE = Setting("REPUTATION_LAKE", "str", "./lake", "lake root: a folder or `s3://bucket/prefix`")
DUCKDB_PATH = Setting("REPUTATION_DUCKDB_PATH", "str", None,
                      "the warehouse file (unset: `<lake>/warehouse/reputation.duckdb`, `./warehouse/` for an S3 lake)")
DUCKDB_EXTENSION_DIR = Setting("REPUTATION_DUCKDB_EXTENSION_DIR", "str", None,
                               "DuckDB's extension directory (unset: the `duckdb-ext-httpfs` wheel's, no download)")
BRANDS_CSV = Setting("REPUTATION_BRANDS_CSV", "str", None,
                     "your brands: `brand,keywords,handles,hashtags,exclusions` (unset: the `brands` seed)")
ALERTS_TOPIC = Setting("REPUTATION_ALERTS_TOPIC", "str", "reputation.alerts", "the Kafka topic alerts go to")

# -- ingest ----------------------------------------------------------------------------------
PLATFORMS = Setting("REPUTATION_PLATFORMS", "str", None,
                    "comma-separated platforms ingest and `import` are narrowed to (unset: every valid name)")
INGEST_MAX_RECORDS = Setting("REPUTATION_INGEST_MAX_RECORDS", "int", 50_000, "records per partition per plan",
                             minimum=1)
INGEST_MIN_RECORDS = Setting("REPUTATION_INGEST_MIN_RECORDS", "int", 5_000,
                             "records a partition waits for before a plan (or the delay)", minimum=1)
INGEST_MAX_DELAY_S = Setting("REPUTATION_INGEST_MAX_DELAY_S", "float", 5.0,
                             "seconds a smaller backlog waits before it is planned anyway", minimum=0)
INGEST_PART_BYTES = Setting("REPUTATION_INGEST_PART_BYTES", "int", 16 * 1024 * 1024,
                            "message bytes a drain holds before it writes a part (its memory bound)", minimum=1024)

# -- scoring ---------------------------------------------------------------------------------
SENTIMENT_MODEL = Setting("REPUTATION_SENTIMENT_MODEL", "str", "default", "the sentiment model")
OFFENSIVE_MODEL = Setting("REPUTATION_OFFENSIVE_MODEL", "str", "default", "the offensive-language model")
HATE_MODEL = Setting("REPUTATION_HATE_MODEL", "str", "default", "the hate-speech model")
PLATFORM_MODELS = Setting("REPUTATION_PLATFORM_MODELS", "json", {}, "models per platform and analysis")
SCORING_QUANTIZE = Setting("REPUTATION_SCORING_QUANTIZE", "bool", False, "int8 encoder (the torch engine)")
SCORING_THREADS = Setting("REPUTATION_SCORING_THREADS", "int", 2, "the scoring engine's CPU threads", minimum=0)
SCORING_DEVICE = Setting("REPUTATION_SCORING_DEVICE", "str", "cpu", "where the encoder runs: cpu, cuda, cuda:<n>")
DETECT_LANGUAGE = Setting("REPUTATION_DETECT_LANGUAGE", "bool", True, "detect the language of posts stating none")
LANGUAGE_MIN_CONFIDENCE = Setting("REPUTATION_LANGUAGE_MIN_CONFIDENCE", "float", 0.5,
                                  "the detector's probability needed to leave a post unscored")
SCORING_DATA = Setting("REPUTATION_SCORING_DATA", "str", None, "labeled data for `models train` / `calibrate`")
BUILTIN_ENCODER_DIR = Setting("REPUTATION_BUILTIN_ENCODER_DIR", "str", None,
                              "a copy of the default encoder's folder, in place of its package")
TEACHER_DIR = Setting("REPUTATION_TEACHER_DIR", "str", None,
                      "a copy of the all-mpnet-base-v2 folder for `models train --distill-weight`, in place of its packages")

# -- aggregation and alerts ------------------------------------------------------------------
ALERT_HORIZON_HOURS = Setting("REPUTATION_ALERT_HORIZON_HOURS", "float", 6.0,
                              "windows older than this are recorded, never published", minimum=0)
CATCHUP_INTERVAL_S = Setting("REPUTATION_CATCHUP_INTERVAL_S", "float", 300.0,
                             "how often the live sensor requests the catch-up", minimum=1)
DBT_MERGE_NEW_FILES = Setting("REPUTATION_DBT_MERGE_NEW_FILES", "bool", True,
                              "micro-batches merge only new lake files into the window's tables")
MERGE_RETENTION_HOURS = Setting("REPUTATION_MERGE_RETENTION_HOURS", "float", 12.0,
                                "how far back a micro-batch still merges instead of rebuilding", minimum=0)

# -- the local stack -------------------------------------------------------------------------
STACK_DIR = Setting("REPUTATION_STACK_DIR", "str", ".stack", "state of the local stack")
KAFKA_PORT = Setting("REPUTATION_KAFKA_PORT", "int", 29092, "the local broker's port", minimum=1)
KAFKA_CONTROLLER_PORT = Setting("REPUTATION_KAFKA_CONTROLLER_PORT", "int", None,
                                "the local KRaft controller's port (unset: the broker's + 1)", minimum=1)
S3_PORT = Setting("REPUTATION_S3_PORT", "int", 29000, "the local S3 endpoint's port", minimum=1)
S3_BUCKET = Setting("REPUTATION_S3_BUCKET", "str", "reputation-lake", "the local S3 endpoint's bucket")
KAFKA_LIBS = Setting("REPUTATION_KAFKA_LIBS", "str", None,
                     "a folder of Kafka's jars (unset: fetched once with Maven into the cache)")
KAFKA_HEAP = Setting("REPUTATION_KAFKA_HEAP", "str", "768m", "the local broker's JVM heap")

# -- set by the pipeline for one dbt invocation, read by the dbt project's macros -------------
DBT_MIN_DATE = Setting("REPUTATION_DBT_MIN_DATE", "str", None, "a run's window start", internal=True)
DBT_MAX_DATE = Setting("REPUTATION_DBT_MAX_DATE", "str", None, "a run's window end", internal=True)
DBT_MERGE_FILES = Setting("REPUTATION_DBT_MERGE_FILES", "json", None, "the new lake files a micro-batch merges",
                          internal=True)
DBT_RAW_FILES_LISTED = Setting("REPUTATION_DBT_RAW_FILES_LISTED", "str", None,
                               "a full build reads the committed raw files the run lists", internal=True)

ALL: tuple[Setting, ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Setting))
