"""Score one hour partition of the lake (pure logic behind the ``post_scores`` asset).

Input: ``raw/posts/platform=<p>/dt=<d>/hour=<h>/<name>.parquet`` for every
platform. Output, one file per input file:
``scores/model=<version>/dt=<d>/hour=<h>/<p>__<name>.parquet``.

- Idempotent per input file: an input whose output file already exists for
  this model version is skipped; outputs are created with a conditional write
  (if-absent), so concurrent runs cannot overwrite each other.
- One row per unique post_id in the partition: inside a file the row with the
  highest Kafka offset wins; post_ids already present in earlier score files of
  the same partition and model version are not scored again.
- A new model version writes under a new ``model=`` folder (a backfill).
"""
from __future__ import annotations

import io
import posixpath
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reputation_pipeline.scoring.data import LABELS, TASKS
from reputation_pipeline.lake.layout import RAW_ROOT, CommittedFiles, raw_hour_prefix, scores_hour_prefix
from reputation_pipeline.resources import PLATFORM_NAME
from reputation_pipeline.scoring.models import Scorer
from reputation_pipeline.scoring.schemas import SCORES, conform
from reputation_pipeline.scoring.score_files import SCORE_FILES
from reputation_pipeline.lake.parquet import parquet_bytes

def lake_platforms(store) -> list[str]:
    """The platforms with raw posts in the lake: whatever ingest admitted is scored."""
    return [f.removeprefix("platform=") for f in store.folders(RAW_ROOT)
            if f.startswith("platform=") and PLATFORM_NAME.fullmatch(f.removeprefix("platform="))]


def output_key(model_version: str, dt: str, hh: str, platform: str, raw_key: str) -> str:
    """Deterministic output file for an input file."""
    return scores_hour_prefix(model_version, dt, hh) + f"{platform}__{posixpath.basename(raw_key)}"


def read_parquet(store, key: str, columns: list[str] | None = None) -> pa.Table:
    data = store.get(key)
    if data is None:
        raise FileNotFoundError(store.url(key))
    return pq.read_table(io.BytesIO(data), columns=columns)


def write_parquet(store, key: str, table: pa.Table) -> bool:
    return store.put(key, parquet_bytes(table), if_absent=True)


def latest_per_post(table: pa.Table) -> pa.Table:
    """One row per post_id: the highest kafka_offset (then last row) wins."""
    if table.num_rows == 0:
        return table
    ids = table.column("post_id").to_pylist()
    offs = table.column("kafka_offset").to_pylist() if "kafka_offset" in table.column_names else [None] * len(ids)
    best: dict[str, int] = {}
    for i, (pid, off) in enumerate(zip(ids, offs)):
        if pid is None:
            continue
        j = best.get(pid)
        if j is None or (off if off is not None else -1) >= (offs[j] if offs[j] is not None else -1):
            best[pid] = i
    keep = sorted(best.values())
    return table.take(pa.array(keep, type=pa.int64()))


def score_table(scorer: Scorer, raw: pa.Table, platform: str | list[str], source_key: str | list[str],
                scored_at: datetime | None = None, stats: dict | None = None) -> pa.Table:
    """Score rows of a raw posts table (already one row per post_id) as one
    batch; ``platform``/``source_key`` are per table or per row."""
    n = raw.num_rows
    platforms = list(platform) if isinstance(platform, list) else [platform] * n
    sources = list(source_key) if isinstance(source_key, list) else [source_key] * n
    texts = raw.column("text").to_pylist() if n else []
    langs = raw.column("language").to_pylist() if "language" in raw.column_names and n else [None] * n
    res = scorer.score(texts, platforms, langs)
    if stats is not None:
        stats["texts_scored"] = stats.get("texts_scored", 0) + res.unique_scored
    scored_at = scored_at or datetime.now(timezone.utc)
    cols: dict[str, object] = {
        "post_id": raw.column("post_id").to_pylist() if n else [],
        "platform": platforms,
        "event_time": raw.column("event_time").to_pylist() if "event_time" in raw.column_names and n else [None] * n,
        "language": langs,
        "content_hash": res.content_hash,
    }

    def labels_of(task: str) -> list[str | None]:
        p = res.probs.get(task)
        if p is None:
            return [None] * n
        names = res.labels[task]
        return [None if np.isnan(row[0]) else names[int(np.argmax(row))] for row in p]

    def col(task: str, j: int) -> list[float | None]:
        p = res.probs.get(task)
        if p is None:
            return [None] * n
        return [None if np.isnan(v) else float(v) for v in p[:, j]]

    cols["sentiment_label"] = labels_of("sentiment")
    neg, neu, pos = col("sentiment", 0), col("sentiment", 1), col("sentiment", 2)
    cols["sentiment_negative"], cols["sentiment_neutral"], cols["sentiment_positive"] = neg, neu, pos
    cols["sentiment_score"] = [None if a is None else b - a for a, b in zip(neg, pos)]
    cols["offensive_label"] = labels_of("offensive")
    cols["offensive_score"] = col("offensive", 1)
    cols["hate_label"] = labels_of("hate")
    cols["hate_score"] = col("hate", 1)
    cols["model_version"] = [scorer.model_version] * n
    cols["scored_at"] = [scored_at] * n
    cols["unscored_reason"] = res.unscored_reason
    cols["source_file"] = sources
    cols["language_source"] = res.language_source
    cols["detected_language"] = res.detected_language
    cols["language_confidence"] = res.language_confidence
    return pa.table(cols, schema=SCORES)


@dataclass
class PartitionResult:
    model_version: str
    inputs: int = 0
    skipped_inputs: int = 0
    uncommitted_inputs: int = 0  # raw files without their commit yet (read on a later run)
    written: list[str] = field(default_factory=list)
    rows_written: int = 0
    unscored_rows: int = 0
    unsupported_language_rows: int = 0  # of unscored_rows: a language the models do not cover
    texts_scored: int = 0  # distinct normalized texts sent through the models
    seconds: float = 0.0


def value_problems(table: pa.Table) -> dict[str, int]:
    """Rows out of range in a scores table: probabilities in [0, 1], sentiment
    probabilities summing to 1, sentiment_score in [-1, 1], labels from the known set."""
    problems: dict[str, int] = {}
    for name in ("sentiment_negative", "sentiment_neutral", "sentiment_positive", "offensive_score", "hate_score"):
        v = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        problems[f"{name}_out_of_range"] = int(np.sum((v < 0) | (v > 1)))
    s = table.column("sentiment_score").to_numpy(zero_copy_only=False).astype(np.float64)
    problems["sentiment_score_out_of_range"] = int(np.sum((s < -1) | (s > 1)))
    tot = sum(table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
              for c in ("sentiment_negative", "sentiment_neutral", "sentiment_positive"))
    problems["sentiment_probs_not_summing_to_1"] = int(np.sum(np.abs(tot - 1) > 1e-3))
    for task in TASKS:
        labels = table.column(f"{task}_label").to_pylist()
        problems[f"{task}_unknown_label"] = sum(l is not None and l not in LABELS[task] for l in labels)
    return problems


def scored_post_ids(store, prefix: str, keys: Iterable[str]) -> set[str]:
    """The post_ids in the score files ``keys`` under ``prefix`` (each file read once per
    process: scoring/score_files.py). A live set: do not change it."""
    return SCORE_FILES.post_ids(store.url(prefix), keys,
                                lambda k: read_parquet(store, k, ["post_id"]).column("post_id").to_pylist())


def partition_validity(store, model_version: str, dt: str, hh: str) -> tuple[int, dict[str, int]]:
    """(rows, problem counts) of an hour's scores: ``value_problems`` summed over its files,
    and ``duplicate_post_ids`` across them (each file read once per process)."""
    prefix = scores_hour_prefix(model_version, dt, hh)
    keys = [k for k in store.list(prefix) if k.endswith(".parquet")]
    return SCORE_FILES.validity(store.url(prefix), keys, lambda k: conform(read_parquet(store, k)), value_problems)


def score_partition(store, scorer: Scorer, dt: str, hh: str, platforms: Iterable[str], log=None,
                    max_batch_rows: int = 50_000) -> PartitionResult:
    """Score every not-yet-scored input file of the partition. New files are
    scored together (identical texts across files go through the models once)
    and written one output file per input file."""
    t0 = time.time()
    version = scorer.model_version
    out_prefix = scores_hour_prefix(version, dt, hh)
    existing = sorted(k for k in store.list(out_prefix) if k.endswith(".parquet"))
    done = set(existing)
    scored = scored_post_ids(store, out_prefix, existing)  # earlier runs'
    seen: set[str] = set()  # this run's
    result = PartitionResult(version)
    pending: list[tuple[str, str, str, pa.Table]] = []  # (platform, raw key, output key, rows)
    committed = CommittedFiles(store)
    for platform in platforms:
        for key in store.list(raw_hour_prefix(platform, dt, hh)):
            if not key.endswith(".parquet"):
                continue
            result.inputs += 1
            out = output_key(version, dt, hh, platform, key)
            if out in done:
                result.skipped_inputs += 1
                continue
            if not committed(key):  # lake/layout.py: the read protocol
                result.uncommitted_inputs += 1
                continue
            raw = latest_per_post(read_parquet(store, key))
            mask = pa.array([pid not in seen and pid not in scored for pid in raw.column("post_id").to_pylist()],
                            type=pa.bool_())
            raw = raw.filter(mask)
            seen.update(raw.column("post_id").to_pylist())
            pending.append((platform, key, out, raw.select([c for c in ("post_id", "text", "language", "event_time")
                                                            if c in raw.column_names])))
    # batches of whole files, up to max_batch_rows rows each
    batches: list[list[tuple[str, str, str, pa.Table]]] = []
    rows = 0
    for item in pending:
        if not batches or rows + item[3].num_rows > max_batch_rows:
            batches.append([])
            rows = 0
        batches[-1].append(item)
        rows += item[3].num_rows
    for batch in batches:
        plats = [p for p, _k, _o, t in batch for _ in range(t.num_rows)]
        srcs = [k for _p, k, _o, t in batch for _ in range(t.num_rows)]
        merged = pa.concat_tables([t for *_x, t in batch], promote_options="permissive")
        stats: dict = {}
        scored = score_table(scorer, merged, plats, srcs, stats=stats)
        result.texts_scored += stats.get("texts_scored", 0)
        offset = 0
        for _platform, key, out, t in batch:
            table = scored.slice(offset, t.num_rows)
            offset += t.num_rows
            if write_parquet(store, out, table):
                done.add(out)
                SCORE_FILES.wrote(store.url(out_prefix), done, out, table, value_problems)
                result.written.append(out)
                result.rows_written += table.num_rows
                reasons = table.column("unscored_reason").to_pylist()
                result.unscored_rows += sum(r is not None for r in reasons)
                result.unsupported_language_rows += sum(r is not None and r.startswith("unsupported_language")
                                                        for r in reasons)
            else:
                result.skipped_inputs += 1  # another run wrote it first
            if log:
                log(f"scored {key} -> {out}: {table.num_rows} rows")
    result.seconds = round(time.time() - t0, 3)
    return result


def read_partition_scores(store, model_version: str, dt: str, hh: str) -> pa.Table:
    keys = sorted(k for k in store.list(scores_hour_prefix(model_version, dt, hh)) if k.endswith(".parquet"))
    tables = [read_parquet(store, k) for k in keys]
    if not tables:
        return SCORES.empty_table()
    return pa.concat_tables([conform(t) for t in tables])
