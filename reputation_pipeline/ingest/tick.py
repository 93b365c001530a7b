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
from reputation_pipeline.resources import platform_refusal

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
    skipped: dict[str, str] = field(default_factory=dict)  # posts topics not drained: why


def posts_topics(consumer: Consumer, selection: frozenset[str] | None,
                 timeout: float = 10.0) -> tuple[list[str], dict[str, str]]:
    """(posts topics to drain, {skipped posts topic: why}) among the broker's topics.
    ``selection`` is ``REPUTATION_PLATFORMS`` (None: every valid platform name)."""
    topics = consumer.list_topics(timeout=timeout).topics
    ours, skipped = [], {}
    for name in sorted(topics):
        if name.startswith(TOPIC_PREFIX):
            refusal = platform_refusal(platform_of(name), selection)
            if refusal:
                skipped[name] = refusal
            else:
                ours.append(name)
    return ours, skipped


def skipped_summary(skipped: dict[str, str], limit: int = 10) -> str:
    """One line naming the skipped posts topics and why (topic names are Kafka's safe charset)."""
    shown = [f"{name} ({why})" for name, why in sorted(skipped.items())[:limit]]
    more = f" and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"{len(skipped)} posts topic(s) not drained: {'; '.join(shown)}{more}"


def plan_tick(
    consumer: Consumer,
    plan_log: PlanLog,
    selection: frozenset[str] | None,
    policy: PlanningPolicy,
    cursor: dict,
    now: float,
    force: bool = False,
) -> TickResult:
    result = TickResult()
    topics, result.skipped = posts_topics(consumer, selection)
    if result.skipped:  # every tick: the operator sees it in the sensor's status, not once in a log
        result.warnings.append(skipped_summary(result.skipped))
    for topic in topics:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        new, pending = [], []
        tcur = dict(cursor.get(topic, {}))
        for partition in sorted(md.partitions):
            pcur = dict(tcur.get(str(partition), {}))
            low, high = watermarks(consumer, topic, partition)
            # the lake's checkpoint, or the cursor's hint when it is ahead (a lost cursor costs nothing)
            checkpoint = plan_log.checkpoint(topic, partition)
            if checkpoint is not None and (pcur.get("hint") is None or checkpoint > pcur["hint"]):
                pcur["hint"] = checkpoint
            plans = plan_log.plans(topic, partition, after_start=pcur.get("hint"))
            committed_prefix = True
            for p in plans:
                if committed_prefix and plan_log.is_committed(p):
                    pcur["hint"] = p.start  # everything up to here is committed
                else:
                    committed_prefix = False
                    if not plan_log.is_committed(p):
                        pending.append(p)
            if pcur.get("hint") is not None:
                plan_log.advance_checkpoint(topic, partition, pcur["hint"], checkpoint)
                if pcur.get("archived") != pcur["hint"] and plan_log.archive(topic, partition, pcur["hint"]):
                    pcur["archived"] = pcur["hint"]
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
