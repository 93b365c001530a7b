"""Where things live in the lake, and which raw files readers may trust.

    raw/posts/platform=<p>/dt=<d>/hour=<HH>/<topic>-p<n>-<start:020d>-<end:020d>[-<part:04d>].parquet   a drained range
    raw/posts/platform=<p>/dt=<d>/hour=<HH>/import-<sha16>-<chunk:06d>.parquet           an imported chunk
    _ingest/{plans,commits,gaps}/<topic>/p=<n>/<start:020d>.json                        the ingest log
    _ingest/imports/<sha256>.json                                                       an import's manifest
    quarantine/topic=<topic>/p=<n>/…, quarantine/import=<sha16>/…                       rejected records
    scores/model=<version>/dt=<d>/hour=<HH>/<platform>__<raw file name>                 a raw file's scores
    published/<mart>/dt=<d>/hour=<HH>/part-0.parquet                                    an exported mart hour

The read protocol: a raw file is committed once the commit manifest of its range (drain) or
the manifest of its import exists, and readers (scoring, the dbt window builds) read
committed files only. A file without one is a write in progress, or the leftover of a drain
that can never commit (its offsets expired before a retry: a retention gap) or of an import
killed and not re-run; either way no score, mart or alert may count it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own topic charset
RAW_ROOT = "raw/posts/"
SCORES_ROOT = "scores/"
PUBLISHED_ROOT = "published/"
# per lake table: its root and the key of its first folder level (<root><key><value>/dt=…/hour=…/)
TABLE_ROOTS = {"raw_posts": (RAW_ROOT, "platform="), "post_scores": (SCORES_ROOT, "model=")}
# the files each dbt source reads: macros/lake.sql lake_glob and models/staging/_sources.yml say
# the same (test_lake_layout.py)
LAKE_GLOBS = {table: f"{root}{key}*/dt=*/hour=*/*.parquet" for table, (root, key) in TABLE_ROOTS.items()}
PATH_SAFE = re.compile(r"[A-Za-z0-9._=-]+")  # one folder name or file name of a key
IMPORT_MANIFESTS = "_ingest/imports/"
DRAIN_FILE = re.compile(r"(?P<topic>[A-Za-z0-9._-]{1,249})-p(?P<partition>[0-9]+)-(?P<start>[0-9]{20})-(?P<end>[0-9]{20})"
                        r"(-(?P<part>[0-9]{4,}))?\.parquet")
IMPORT_FILE = re.compile(r"import-(?P<sha16>[0-9a-f]{16})-(?P<chunk>[0-9]{6})\.parquet")


def check_topic(topic: str) -> str:
    if not TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(f"invalid Kafka topic name: {topic!r}")
    return topic


def raw_hour_prefix(platform: str, dt: str, hour: str) -> str:
    return f"{RAW_ROOT}platform={platform}/dt={dt}/hour={hour}/"


def scores_hour_prefix(model_version: str, dt: str, hour: str) -> str:
    if not PATH_SAFE.fullmatch(model_version):
        raise ValueError(f"model version not path-safe: {model_version!r}")
    return f"{SCORES_ROOT}model={model_version}/dt={dt}/hour={hour}/"


def published_key(mart: str, dt: str, hour: str) -> str:
    if not PATH_SAFE.fullmatch(mart):
        raise ValueError(f"mart name not path-safe: {mart!r}")
    return f"{PUBLISHED_ROOT}{mart}/dt={dt}/hour={hour}/part-0.parquet"


def _range_file(topic: str, partition: int, start: int, end: int, part: int) -> str:
    """Part 0 of a range keeps the name it had before plans were cut by bytes."""
    suffix = f"-{int(part):04d}" if part else ""
    return f"{check_topic(topic)}-p{int(partition)}-{int(start):020d}-{int(end):020d}{suffix}.parquet"


def drain_file_key(platform: str, dt: str, hour: str, topic: str, partition: int, start: int, end: int,
                   part: int = 0) -> str:
    return raw_hour_prefix(platform, dt, hour) + _range_file(topic, partition, start, end, part)


def drain_quarantine_key(topic: str, partition: int, start: int, end: int, part: int = 0) -> str:
    return f"quarantine/topic={check_topic(topic)}/p={int(partition)}/" + _range_file(topic, partition, start, end, part)


def import_quarantine_key(sha: str, chunk: int) -> str:
    return f"quarantine/import={sha[:16]}/import-{sha[:16]}-{int(chunk):06d}.parquet"


def import_file_key(platform: str, dt: str, hour: str, sha: str, chunk: int) -> str:
    return raw_hour_prefix(platform, dt, hour) + f"import-{sha[:16]}-{int(chunk):06d}.parquet"


def ingest_log_key(kind: str, topic: str, partition: int, start: int) -> str:
    return f"_ingest/{kind}/{check_topic(topic)}/p={int(partition)}/{int(start):020d}.json"


def import_manifest_key(sha: str) -> str:
    return f"{IMPORT_MANIFESTS}{sha}.json"


def commit_marker(raw_key: str) -> tuple[str, str] | None:
    """('key', K) when the raw file is committed once object K exists, ('prefix', P) when
    once an object under P does (an import names its manifest by the sha's first 16 digits);
    None for a name no writer of this lake produces (never trusted)."""
    name = raw_key.rsplit("/", 1)[-1]
    if m := DRAIN_FILE.fullmatch(name):
        return "key", ingest_log_key("commits", m["topic"], int(m["partition"]), int(m["start"]))
    if m := IMPORT_FILE.fullmatch(name):
        return "prefix", f"{IMPORT_MANIFESTS}{m['sha16']}"
    return None


class CommittedFiles:
    """Which raw files are committed, asking the store once per range or import. A commit is
    never undone, so positive answers are kept for the life of the object."""

    def __init__(self, store):
        self.store = store
        self._known: dict[tuple[str, str], bool] = {}

    def __call__(self, raw_key: str) -> bool:
        marker = commit_marker(raw_key)
        if marker is None:
            return False
        if self._known.get(marker):
            return True
        kind, where = marker
        found = self.store.exists(where) if kind == "key" else any(True for _ in self.store.list(where))
        if found:
            self._known[marker] = True
        return found

    def filter(self, raw_keys: Iterable[str]) -> list[str]:
        return [k for k in raw_keys if self(k)]
