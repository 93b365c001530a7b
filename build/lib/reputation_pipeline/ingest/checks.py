"""Ingest asset checks: the commit log must cover offsets contiguously."""

import dagster as dg

from reputation_pipeline.ingest.plans import Commit, PlanLog
from reputation_pipeline.resources import LakeResource


def commit_log_problems(commits: list[Commit]) -> list[str]:
    """Overlaps or holes between consecutive committed ranges of one partition.
    (A hole is only a problem once a later range is committed: the middle one
    may simply still be pending.)"""
    problems = []
    ordered = sorted(commits, key=lambda c: c.start)
    for prev, cur in zip(ordered, ordered[1:]):
        if cur.start < prev.end:
            problems.append(f"{cur.topic}/{cur.partition}: [{cur.start},{cur.end}) overlaps [{prev.start},{prev.end})")
        elif cur.start > prev.end:
            problems.append(f"{cur.topic}/{cur.partition}: offsets [{prev.end},{cur.start}) not committed")
    return problems


def _partitions(store) -> list[tuple[str, int]]:
    seen = set()
    for key in store.list("_ingest/commits/"):
        _, _, topic, part, _ = key.split("/", 4)
        seen.add((topic, int(part.removeprefix("p="))))
    return sorted(seen)


@dg.asset_check(asset="raw_posts", description="Committed offset ranges are contiguous, with no overlap, per topic partition.")
def offset_ranges_contiguous(lake: LakeResource) -> dg.AssetCheckResult:
    store = lake.open()
    log = PlanLog(store)
    problems, ranges, rows = [], 0, 0
    for topic, partition in _partitions(store):
        commits = log.commits(topic, partition)
        ranges += len(commits)
        rows += sum(c.rows + c.quarantined for c in commits)
        problems += commit_log_problems(commits)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"committed_ranges": ranges, "records_accounted": rows, "problems": dg.MetadataValue.json(problems[:50])},
    )
