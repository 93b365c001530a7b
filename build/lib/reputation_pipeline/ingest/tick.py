"""One planning tick over the posts topics, shared by the Dagster sensor and
the headless driver. It reads only watermarks (never polls messages), so it
is fast and cannot hang a sensor tick."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from confluent_kafka import Consumer

from reputation_pipeline.ingest.kafka_client import TOPIC_PREFIX, platform_of, watermarks
from reputation_pipeline.ingest.planner import PartitionView, PlanningPolicy, plan_partition, waiting_since
from reputation_pipeline.ingest.plans import Plan, PlanLog

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """The unit of one run: plans of one topic, referenced by (partition, start)."""

    topic: str
    plans: list[Plan]

    @property
    def batch_id(self) -> str:
        refs = "+".join(f"{p.partition}@{p.start}" for p in sorted(self.plans, key=lambda p: p.partition))
        if len(refs) > 160:  # many partitions: keep run keys short and still unique
            refs = hashlib.sha256(refs.encode()).hexdigest()[:24]
        return f"{self.topic}:{refs}"

    def refs(self) -> list[list[int]]:
        return [[p.partition, p.start] for p in self.plans]


@dataclass
class TickResult:
    new_batches: list[Batch] = field(default_factory=list)
    pending_batches: list[Batch] = field(default_factory=list)  # planned earlier, not committed
    lag: dict[str, dict[int, int]] = field(default_factory=dict)  # unplanned + uncommitted offsets
    cursor: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


IGNORED_KEY = "_ignored_topics"  # cursor entry (posts topics are never named so)


def posts_topics(consumer: Consumer, platforms: frozenset[str], timeout: float = 10.0) -> tuple[list[str], list[str]]:
    """(topics to drain, posts topics ignored because their platform is unknown)."""
    topics = consumer.list_topics(timeout=timeout).topics
    ours, ignored = [], []
    for name in sorted(topics):
        if name.startswith(TOPIC_PREFIX):
            (ours if platform_of(name) in platforms else ignored).append(name)
    return ours, ignored


def plan_tick(
    consumer: Consumer,
    plan_log: PlanLog,
    platforms: frozenset[str],
    policy: PlanningPolicy,
    cursor: dict,
    now: float,
    force: bool = False,
) -> TickResult:
    result = TickResult()
    topics, ignored = posts_topics(consumer, platforms)
    # warn once per newly seen unconfigured topic, not on every tick (a shared broker may hold many)
    seen = set(cursor.get(IGNORED_KEY, []))
    for name in ignored:
        if name not in seen:
            result.warnings.append(f"topic {name!r} ignored: platform not in {sorted(platforms)}")
    if ignored:
        result.cursor[IGNORED_KEY] = sorted(ignored)
    for topic in topics:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        new, pending = [], []
        tcur = dict(cursor.get(topic, {}))
        for partition in sorted(md.partitions):
            pcur = dict(tcur.get(str(partition), {}))
            low, high = watermarks(consumer, topic, partition)
            plans = plan_log.plans(topic, partition, after_start=pcur.get("hint"))
            committed_prefix = True
            for p in plans:
                if committed_prefix and plan_log.is_committed(p):
                    pcur["hint"] = p.start  # everything up to here is committed
                else:
                    committed_prefix = False
                    if not plan_log.is_committed(p):
                        pending.append(p)
            if plans:
                next_start = plans[-1].end
            elif pcur.get("hint") is not None:
                hinted = plan_log.get_plan(topic, partition, pcur["hint"])
                next_start = hinted.end if hinted else None
            else:
                next_start = None
            n_pending = sum(1 for p in pending if p.partition == partition)
            view = PartitionView(partition, low, high, next_start, n_pending, pcur.get("waiting_since"))
            rng = plan_partition(view, policy, now, force)
            if rng is not None:
                plan = plan_log.create_plan(topic, rng)
                if plan is None:
                    result.warnings.append(f"{topic}/{partition}@{rng.start} was planned concurrently by another planner")
                else:
                    new.append(plan)
                    next_start = plan.end
                pcur["waiting_since"] = None
            else:
                pcur["waiting_since"] = waiting_since(view, pcur.get("waiting_since"), now)
            uncommitted_from = min([p.start for p in pending if p.partition == partition] + [next_start if next_start is not None else low])
            result.lag.setdefault(topic, {})[partition] = max(0, high - uncommitted_from)
            tcur[str(partition)] = pcur
        result.cursor[topic] = tcur
        if new:
            result.new_batches.append(Batch(topic, new))
        # group retries by the partition set so each old batch keeps its identity
        if pending:
            result.pending_batches.extend(Batch(topic, [p]) for p in pending)
    return result
