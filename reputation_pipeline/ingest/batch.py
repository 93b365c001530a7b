"""Run one batch (plans of one topic): the body of the ingest run, used by the
Dagster op and the headless driver alike."""
from __future__ import annotations

from dataclasses import dataclass, field

from reputation_pipeline.ingest.drain import DrainSettings, execute_plan, make_consumer
from reputation_pipeline.ingest.kafka_client import KafkaSettings, watermarks
from reputation_pipeline.ingest.plans import Commit, PlanLog
from reputation_pipeline.ingest.validate import Limits
from reputation_pipeline.lake.store import LakeStore


@dataclass
class BatchOutcome:
    commits: list[Commit]
    lag: dict[int, int]  # high watermark - plan end, per partition
    failures: list[tuple[str, Exception]] = field(default_factory=list)  # (plan id, error) of plans not committed

    @property
    def partition_keys(self) -> list[str]:
        return sorted({k for c in self.commits for k in c.partition_keys})

    def raise_failures(self) -> None:
        """After the committed plans were reported: fail with the first plan's error."""
        if self.failures:
            raise self.failures[0][1]


def run_batch(
    topic: str,
    refs: list[list[int]] | list[tuple[int, int]],
    *,
    kafka: KafkaSettings,
    store: LakeStore,
    platforms: frozenset[str],
    limits: Limits = Limits(),
    settings: DrainSettings | None = None,
) -> BatchOutcome:
    settings = settings or DrainSettings.from_env()
    plan_log = PlanLog(store)
    plans = []
    for partition, start in refs:
        plan = plan_log.get_plan(topic, int(partition), int(start))
        if plan is None:
            raise ValueError(f"no recorded plan for {topic}/{partition}@{start}: plans are written before runs are requested")
        plans.append(plan)
    consumer = make_consumer(kafka.client_config())
    outcome = BatchOutcome([], {})
    try:
        for plan in plans:
            # one partition's failure (a retention gap, a stalled broker) leaves the others to
            # commit, and what committed is still reported: its hours get scored and aggregated
            try:
                outcome.commits.append(execute_plan(plan, consumer=consumer, store=store, platforms=platforms,
                                                    limits=limits, settings=settings))
            except Exception as exc:  # noqa: BLE001 - raised by raise_failures() once the rest is reported
                outcome.failures.append((plan.plan_id, exc))
                continue
            _low, high = watermarks(consumer, topic, plan.partition, cached=True)
            outcome.lag[plan.partition] = max(0, high - plan.end) if high >= 0 else -1
        return outcome
    finally:
        consumer.close()
