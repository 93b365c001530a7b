"""``reputation-pipeline ingest --until-drained``: the sensor's planning tick and
the run's batch code, driven in a loop without a Dagster daemon until every
planned range is committed. Safe to kill at any instant and run again: the
plans and commits in the lake carry all the state."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from reputation_pipeline.ingest.batch import run_batch
from reputation_pipeline.ingest.drain import DrainSettings, make_consumer
from reputation_pipeline.ingest.kafka_client import KafkaSettings, platform_of
from reputation_pipeline.ingest.planner import PlanningPolicy
from reputation_pipeline.ingest.plans import PlanLog
from reputation_pipeline.ingest.tick import plan_tick
from reputation_pipeline.ingest.validate import Limits
from reputation_pipeline.lake.store import LakeStore
from reputation_pipeline.resources import admitted_platforms


@dataclass
class DrainSummary:
    batches: int = 0
    plans: int = 0
    rows: int = 0
    quarantined: int = 0
    partitions_touched: set[str] = field(default_factory=set)
    lag: dict[str, dict[int, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"batches": self.batches, "plans": self.plans, "rows": self.rows, "quarantined": self.quarantined,
                "hour_partitions_touched": len(self.partitions_touched),
                "lag": {t: {str(p): n for p, n in parts.items()} for t, parts in self.lag.items()},
                "warnings": self.warnings, "seconds": round(self.seconds, 2)}


def drain_until_idle(
    kafka: KafkaSettings,
    store: LakeStore,
    platforms: frozenset[str] | None,
    *,
    policy: PlanningPolicy = PlanningPolicy(),
    limits: Limits = Limits(),
    settings: DrainSettings | None = None,
    on_batch=None,
    max_ticks: int | None = None,
) -> DrainSummary:
    """Plan with force=True (no waiting for min size) and run until nothing is left.
    ``platforms``: the platforms to drain (None: every posts topic with a valid name)."""
    started = time.monotonic()
    summary = DrainSummary()
    plan_log = PlanLog(store)
    cursor: dict = {}
    admin = make_consumer(kafka.client_config())
    ticks = 0
    try:
        while True:
            tick = plan_tick(admin, plan_log, platforms, policy, cursor, time.time(), force=True)
            cursor = tick.cursor
            summary.lag = tick.lag
            summary.warnings = sorted(set(summary.warnings) | set(tick.warnings))
            batches = tick.pending_batches + tick.new_batches
            if not batches:
                break
            for batch in batches:
                outcome = run_batch(batch.topic, batch.refs(), kafka=kafka, store=store,
                                    platforms=admitted_platforms(platform_of(batch.topic), platforms),
                                    limits=limits, settings=settings)
                summary.batches += 1
                summary.plans += len(outcome.commits)
                summary.rows += sum(c.rows for c in outcome.commits)
                summary.quarantined += sum(c.quarantined for c in outcome.commits)
                summary.partitions_touched.update(outcome.partition_keys)
                if on_batch is not None:
                    on_batch(batch, outcome)
                outcome.raise_failures()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
    finally:
        admin.close()
    summary.seconds = time.monotonic() - started
    return summary
