"""The ingest log in the lake: durable plans and commit manifests.

    _ingest/plans/<topic>/p=<partition>/<start:020d>.json     written first
    _ingest/commits/<topic>/p=<partition>/<start:020d>.json   written last
    _ingest/gaps/<topic>/p=<partition>/<start:020d>.json      retention gaps
    _ingest/checkpoints/<topic>/p=<partition>.json            the committed prefix, for planning
    _ingest/plans-archive/<topic>/p=<partition>/…             plans behind the checkpoint

Both plans and commits are conditional creates (``if_absent``), keyed by the
range start: two planners racing for the same start cannot both win, and a
batch is committed exactly once. A plan without a commit is pending; its run
may be retried any number of times because it rewrites the same objects.
Readers trust a raw file only once the commit that lists it exists.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from reputation_pipeline.lake.layout import check_topic, ingest_log_key
from reputation_pipeline.lake.store import LakeStore, check_conditional_writes
from reputation_pipeline.ingest.planner import PlannedRange

def plan_key(topic: str, partition: int, start: int, kind: str = "plans") -> str:
    return ingest_log_key(kind, topic, partition, start)


ARCHIVE = "_ingest/plans-archive/"  # plans behind a partition's checkpoint


def archived_key(key: str) -> str:
    """Where the plan at ``key`` (under _ingest/plans/) lives once archived."""
    return ARCHIVE + key[len("_ingest/plans/"):]


def plans_prefix(topic: str, partition: int) -> str:
    return f"_ingest/plans/{check_topic(topic)}/p={int(partition)}/"


def checkpoint_key(topic: str, partition: int) -> str:
    return f"_ingest/checkpoints/{check_topic(topic)}/p={int(partition)}.json"


@dataclass
class Plan:
    topic: str
    partition: int
    start: int
    end: int
    planned_at: float = field(default_factory=time.time)

    @property
    def plan_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.start}-{self.end}"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


@dataclass
class Commit:
    topic: str
    partition: int
    start: int
    end: int
    rows: int
    quarantined: int
    files: list[dict]  # [{key, rows, partition_key}]
    quarantine_files: list[dict]
    partition_keys: list[str]  # Dagster hour partitions touched
    last_offset_read: int
    committed_at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


class PlanLog:
    def __init__(self, store: LakeStore):
        self.store = store

    # ---- plans
    def create_plan(self, topic: str, rng: PlannedRange) -> Plan | None:
        """Record a plan durably; None if another planner already owns this start."""
        check_conditional_writes(self.store)
        plan = Plan(topic, rng.partition, rng.start, rng.end)
        if self.store.put(plan_key(topic, rng.partition, rng.start), plan.to_json(), if_absent=True):
            return plan
        return None

    def get_plan(self, topic: str, partition: int, start: int) -> Plan | None:
        key = plan_key(topic, partition, start)
        raw = self.store.get(key)
        if raw is None:  # archived behind the checkpoint (a late retry of a committed plan)
            raw = self.store.get(archived_key(key))
        return Plan(**json.loads(raw)) if raw else None

    def plans(self, topic: str, partition: int, after_start: int | None = None) -> list[Plan]:
        prefix = plans_prefix(topic, partition)
        start_after = plan_key(topic, partition, after_start) if after_start is not None else None
        out = []
        for key in self.store.list(prefix, start_after=start_after):
            raw = self.store.get(key)
            if raw:
                out.append(Plan(**json.loads(raw)))
        return out

    # ---- commits
    def commit(self, commit: Commit) -> bool:
        check_conditional_writes(self.store)
        return self.store.put(plan_key(commit.topic, commit.partition, commit.start, "commits"), commit.to_json(), if_absent=True)

    def get_commit(self, topic: str, partition: int, start: int) -> Commit | None:
        raw = self.store.get(plan_key(topic, partition, start, "commits"))
        return Commit(**json.loads(raw)) if raw else None

    def is_committed(self, plan: Plan) -> bool:
        return self.store.exists(plan_key(plan.topic, plan.partition, plan.start, "commits"))

    def commits(self, topic: str, partition: int) -> list[Commit]:
        prefix = f"_ingest/commits/{check_topic(topic)}/p={int(partition)}/"
        return [Commit(**json.loads(self.store.get(k))) for k in self.store.list(prefix)]

    # ---- gaps
    def record_gap(self, topic: str, partition: int, start: int, log_start: int) -> None:
        body = json.dumps({"topic": topic, "partition": partition, "planned_start": start,
                           "log_start_offset": log_start, "lost_offsets": log_start - start,
                           "detected_at": time.time()}).encode()
        self.store.put(plan_key(topic, partition, start, "gaps"), body)

    # ---- the checkpoint: what a tick need not read again
    def checkpoint(self, topic: str, partition: int) -> int | None:
        """The start of the last plan of the partition's committed prefix, as last recorded."""
        raw = self.store.get(checkpoint_key(topic, partition))
        return int(json.loads(raw)["committed_through"]) if raw else None

    def advance_checkpoint(self, topic: str, partition: int, start: int, current: int | None) -> None:
        """Record that every plan up to the one at ``start`` is committed (``current``: the
        checkpoint as read; it only moves forward)."""
        if current is None or start > current:
            self.store.put(checkpoint_key(topic, partition),
                           json.dumps({"committed_through": int(start), "recorded_at": time.time()}).encode())

    def archive(self, topic: str, partition: int, checkpoint: int, limit: int = 1000) -> bool:
        """Move up to ``limit`` plans before the checkpoint's plan out of the live folder, so a
        tick lists what is pending, not the history (~17,000 plans a day per partition at the
        default 5 s delay). True when none is left. The checkpoint's own plan stays: a planner
        that read an older checkpoint still finds the last plan's end and never plans a start
        twice. Commits are never moved (readers and the contiguity check read them)."""
        prefix = plans_prefix(topic, partition)
        bound = plan_key(topic, partition, checkpoint)
        moved = 0
        for key in self.store.list(prefix):
            if key >= bound:
                return True
            if moved == limit:
                return False
            data = self.store.get(key)
            if data is not None:
                self.store.put(archived_key(key), data)
                self.store.delete(key)
            moved += 1
        return True
