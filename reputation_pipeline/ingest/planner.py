"""Pure offset-range planning: which ``[start, end)`` to drain next, per partition.

Cut points are fixed here, before anything is read or written, and recorded
durably; a replay of a plan therefore rewrites identical files. Size caps bound
a run's memory; the minimum size avoids small files, and the maximum delay makes
an idle partition with a short backlog flush anyway.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanningPolicy:
    max_records: int = 50_000  # per partition per plan: bounds a run's memory
    min_records: int = 5_000  # below this, wait for more data ...
    max_delay_s: float = 5.0  # ... but never longer than this (alerts are minutes-sensitive)
    max_pending_plans: int = 2  # per partition: stop planning ahead of failing runs


@dataclass(frozen=True)
class PartitionView:
    partition: int
    low: int  # log-start offset (first retained)
    high: int  # high watermark (next offset to be written)
    next_start: int | None  # end of the partition's last plan, None if never planned
    pending_plans: int = 0
    waiting_since: float | None = None  # when a short backlog was first seen


@dataclass(frozen=True)
class PlannedRange:
    partition: int
    start: int
    end: int

    @property
    def records(self) -> int:
        return self.end - self.start


def plan_partition(view: PartitionView, policy: PlanningPolicy, now: float, force: bool = False) -> PlannedRange | None:
    """The next range for one partition, or None when it should wait.

    ``start`` is never moved forward past a retention gap here: if ``next_start``
    fell below ``low`` the range still starts at ``next_start`` so the run fails
    loudly and records the gap, instead of the planner skipping data silently.
    """
    start = view.low if view.next_start is None else view.next_start
    backlog = view.high - start
    if backlog <= 0 or view.pending_plans >= policy.max_pending_plans:
        return None
    if not force and backlog < policy.min_records:
        if view.waiting_since is None or now - view.waiting_since < policy.max_delay_s:
            return None
    return PlannedRange(view.partition, start, start + min(backlog, policy.max_records))


def waiting_since(view: PartitionView, previous: float | None, now: float) -> float | None:
    """Track since when a partition has had an unplanned backlog (for max_delay)."""
    start = view.low if view.next_start is None else view.next_start
    if view.high - start <= 0:
        return None
    return previous if previous is not None else now
