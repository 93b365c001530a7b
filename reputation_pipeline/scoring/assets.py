"""Dagster definitions of the scoring stage: the ``post_scores`` asset and its checks."""

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa

from reputation_pipeline.partitions import hour_partition_key, hourly_partitions, split_partition_key
from reputation_pipeline.lake.layout import scores_hour_prefix
from reputation_pipeline.resources import LakeResource
from reputation_pipeline.scoring.data import LABELS, TASKS
from reputation_pipeline.scoring.pipeline import (
    lake_platforms,
    partition_validity,
    read_partition_scores,
    score_partition,
)
from reputation_pipeline.scoring.resources import ScoringModelsResource

DRIFT_MAX_TVD = 0.25  # total variation distance between label distributions
DRIFT_MIN_ROWS = 30
MAX_UNSCORED_RATE = 0.5


@dg.asset(
    key="post_scores",
    deps=[dg.AssetKey("raw_posts")],
    partitions_def=hourly_partitions,
    group_name="scoring",
    kinds={"onnx", "parquet"},
    # A range of hours runs in one process: the models load once, and a late
    # batch touching many past hours (or a backfill) costs one run, not dozens.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # one encoder at a time on the machine (the instance limits every pool to 1 by default)
    pool="encoder",
    description="Sentiment, offensive-language and hate-speech scores per unique post, "
    "under scores/model=<version>/dt=…/hour=…/ in the lake.",
)
def post_scores(context: dg.AssetExecutionContext, lake: LakeResource,
                scoring_models: ScoringModelsResource) -> dg.MaterializeResult:
    store = lake.open()
    scorer = scoring_models.get_scorer()
    platforms = lake_platforms(store)
    results = {}
    for key in context.partition_keys:
        dt, hh = split_partition_key(key)
        results[key] = score_partition(store, scorer, dt, hh, platforms, log=context.log.info)
    first = next(iter(results.values()))
    metadata = {
        "model_version": first.model_version,
        "input_files": sum(r.inputs for r in results.values()),
        "skipped_input_files": sum(r.skipped_inputs for r in results.values()),
        "uncommitted_input_files": sum(r.uncommitted_inputs for r in results.values()),
        "written_files": [w for r in results.values() for w in r.written],
        "rows_written": sum(r.rows_written for r in results.values()),
        "unscored_rows": sum(r.unscored_rows for r in results.values()),
        "unsupported_language_rows": sum(r.unsupported_language_rows for r in results.values()),
        "distinct_texts_scored": sum(r.texts_scored for r in results.values()),
        "seconds": round(sum(r.seconds for r in results.values()), 2),
    }
    if len(results) == 1:
        dt, hh = split_partition_key(context.partition_key)
        metadata["path"] = dg.MetadataValue.path(store.url(scores_hour_prefix(first.model_version, dt, hh)))
    else:
        metadata["rows_per_partition"] = dg.MetadataValue.json(
            {k: r.rows_written for k, r in results.items() if r.rows_written})
    return dg.MaterializeResult(metadata=metadata)


def _partition_table(context, lake: LakeResource, scoring_models: ScoringModelsResource,
                     key: str | None = None) -> tuple[pa.Table, str]:
    """The scores of one hour, or of every hour of the run's range (ranged runs)."""
    keys = [key] if key else list(context.partition_keys)
    version = scoring_models.model_version()
    store = lake.open()
    tables = [read_partition_scores(store, version, *split_partition_key(k)) for k in keys]
    return pa.concat_tables(tables), version


@dg.asset_check(asset="post_scores", name="scores_in_range", partitions_def=hourly_partitions, blocking=True,
                description="Scores within their ranges, known labels, one row per post_id.")
def scores_in_range(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                    scoring_models: ScoringModelsResource) -> dg.AssetCheckResult:
    # on the live path every micro-batch: each score file is read and checked once per
    # process (files are immutable; scoring/score_files.py), not the whole hour again
    version = scoring_models.model_version()
    store = lake.open()
    rows, problems = 0, {}
    for key in context.partition_keys:
        n, counts = partition_validity(store, version, *split_partition_key(key))
        rows += n
        for name, v in counts.items():
            problems[name] = problems.get(name, 0) + v
    bad = {k: v for k, v in problems.items() if v}
    return dg.AssetCheckResult(passed=not bad, metadata={"rows": rows, "model_version": version, **problems})


@dg.asset_check(asset="post_scores", name="scores_null_rate", partitions_def=hourly_partitions,
                description="Scored rows have every score; the share of unscored rows "
                f"(unsupported language, empty text) stays under {MAX_UNSCORED_RATE:.0%}.")
def scores_null_rate(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                     scoring_models: ScoringModelsResource) -> dg.AssetCheckResult:
    table, version = _partition_table(context, lake, scoring_models)
    n = table.num_rows
    reasons = table.column("unscored_reason").to_pylist()
    scored = np.array([r is None for r in reasons], dtype=bool)
    nulls_in_scored = 0
    for c in ("sentiment_label", "sentiment_score", "offensive_score", "hate_score", "content_hash"):
        col = np.array([v is None for v in table.column(c).to_pylist()], dtype=bool)
        nulls_in_scored += int(np.sum(col & scored))
    unscored_rate = float(1 - scored.mean()) if n else 0.0
    by_reason: dict[str, int] = {}
    for r in reasons:
        if r is not None:
            by_reason[r.split(":")[0]] = by_reason.get(r.split(":")[0], 0) + 1
    if nulls_in_scored:
        severity, passed = dg.AssetCheckSeverity.ERROR, False
    else:
        severity, passed = dg.AssetCheckSeverity.WARN, unscored_rate <= MAX_UNSCORED_RATE
    return dg.AssetCheckResult(passed=passed, severity=severity, metadata={
        "rows": n, "model_version": version, "null_scores_in_scored_rows": nulls_in_scored,
        "unscored_rate": round(unscored_rate, 4), "unscored_by_reason": by_reason})


def label_distribution(table: pa.Table, task: str) -> np.ndarray | None:
    labels = [l for l in table.column(f"{task}_label").to_pylist() if l is not None]
    if len(labels) < DRIFT_MIN_ROWS:
        return None
    counts = np.array([labels.count(name) for name in LABELS[task]], dtype=np.float64)
    return counts / counts.sum()


def previous_partition_key(key: str) -> str:
    t = datetime.strptime(key, "%Y-%m-%d-%H:%M") - timedelta(hours=1)
    return hour_partition_key(t.strftime("%Y-%m-%d"), t.hour)


@dg.asset_check(asset="post_scores", name="label_drift", partitions_def=hourly_partitions,
                description="Label distribution per analysis vs the previous hour (same model version): "
                f"total variation distance at most {DRIFT_MAX_TVD}.")
def label_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                scoring_models: ScoringModelsResource) -> dg.AssetCheckResult:
    cur, version = _partition_table(context, lake, scoring_models)
    # a ranged run is compared with the hour before its range
    prev_key = previous_partition_key(context.partition_keys[0])
    prev, _ = _partition_table(context, lake, scoring_models, prev_key)
    meta: dict[str, object] = {"model_version": version, "previous_partition": prev_key,
                               "rows": cur.num_rows, "previous_rows": prev.num_rows}
    drifted = []
    for task in TASKS:
        a, b = label_distribution(cur, task), label_distribution(prev, task)
        if a is None or b is None:
            meta[f"{task}_tvd"] = "n/a (fewer than %d scored rows)" % DRIFT_MIN_ROWS
            continue
        tvd = float(0.5 * np.abs(a - b).sum())
        meta[f"{task}_tvd"] = round(tvd, 4)
        meta[f"{task}_distribution"] = {n: round(float(p), 4) for n, p in zip(LABELS[task], a)}
        if tvd > DRIFT_MAX_TVD:
            drifted.append(task)
    meta["drifted"] = drifted
    return dg.AssetCheckResult(passed=not drifted, severity=dg.AssetCheckSeverity.WARN, metadata=meta)


SCORING_CHECKS = [scores_in_range, scores_null_rate, label_drift]
