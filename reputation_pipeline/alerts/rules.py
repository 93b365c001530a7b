"""Notification semantics of the alert stage, as pure functions (Alertmanager's
model applied to the rule results that dbt computes in mart_alert_candidates).

- Identity by labels: an alert is (brand, rule, window); its ``alert_id`` is a hash
  of the labels and the status, so the same decision always has the same id and a
  re-run of the asset finds it in the history and publishes nothing new. ``brand`` is
  the brand's key (stg_brands: its name lower-cased), never the name as displayed, so
  an operator changing only the case or spacing of a name changes no identity.
- An *incident* is a run of firing windows of one (brand, rule) (its fingerprint).
  The first firing window notifies; later firing windows of the same incident are
  ``suppressed`` until ``repeat_interval`` (the cooldown) has passed since the last
  notification, then they notify again (a reminder).
- When an incident's (brand, rule) is judged not firing, a ``resolved`` notice is
  published once.
- A rule that could not be judged (``is_firing is None``: the window had no posts or
  no scores) changes nothing: no data never resolves an incident and never reads
  as calm; the ``no_data`` rule is its own alert.
- Silences: (brand, rule or every rule, [starts_at, ends_at)) matched on the
  window's start; silenced decisions are recorded (queryable) but not published.
Times are window times (event time), so decisions are the same whenever the
asset runs (live or in a backfill).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

NOTIFY = "notify"
SUPPRESSED = "suppressed"
SILENCED = "silenced"
HISTORICAL = "historical"  # recorded, never published: a backfill of old windows
FIRING = "firing"
RESOLVED = "resolved"


def _ts(value: datetime) -> str:
    return value.isoformat()


def fingerprint(brand: str, rule: str) -> str:
    return hashlib.sha256(f"{brand}\x1f{rule}".encode()).hexdigest()[:16]


def alert_id(brand: str, rule: str, window_start: datetime, window_end: datetime, status: str) -> str:
    """Deterministic id from the labels and the status."""
    key = "\x1f".join([brand, rule, _ts(window_start), _ts(window_end), status])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Candidate:
    """One row of mart_alert_candidates."""

    brand: str
    rule: str
    window_start: datetime
    window_end: datetime
    is_firing: bool | None
    severity: str | None = None
    repeat_interval: timedelta = timedelta(hours=6)
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    brand_name: str | None = field(default=None, compare=False)  # as the brands CSV writes it: display only

    @property
    def display_name(self) -> str:
        return self.brand_name or self.brand


@dataclass(frozen=True)
class HistoryEntry:
    alert_id: str
    brand: str
    rule: str
    status: str  # firing | resolved
    window_start: datetime
    window_end: datetime
    decision: str  # notify | suppressed | silenced


@dataclass(frozen=True)
class Silence:
    brand: str
    rule: str | None  # None = every rule
    starts_at: datetime
    ends_at: datetime
    comment: str = ""

    def matches(self, brand: str, rule: str, at: datetime) -> bool:
        return self.brand == brand and (self.rule is None or self.rule == rule) and self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class Decision:
    alert_id: str
    fingerprint: str
    brand: str
    rule: str
    status: str
    window_start: datetime
    window_end: datetime
    severity: str | None
    decision: str
    reason: str
    candidate: Candidate
    resolves_alert_id: str | None = None

    def as_history(self) -> HistoryEntry:
        return HistoryEntry(self.alert_id, self.brand, self.rule, self.status, self.window_start,
                            self.window_end, self.decision)


@dataclass
class IncidentState:
    open: bool = False
    last_notified: datetime | None = None  # window_start of the last published firing
    open_alert_id: str | None = None  # the firing alert that opened the incident


_STATUS_ORDER = {FIRING: 0, RESOLVED: 1}


def incident_state(entries: Iterable[HistoryEntry], before: datetime) -> IncidentState:
    """The (brand, rule) incident as of the start of window ``before``, from the
    history of earlier windows only (so the answer does not depend on run order)."""
    state = IncidentState()
    for e in sorted(entries, key=lambda e: (e.window_start, _STATUS_ORDER.get(e.status, 9))):
        if e.window_start >= before:
            break
        if e.status == FIRING and e.decision == NOTIFY:
            if not state.open:
                state.open_alert_id = e.alert_id
            state.open = True
            state.last_notified = e.window_start
        elif e.status == RESOLVED:
            state.open = False
            state.open_alert_id = None
    return state


def matching_silence(silences: Sequence[Silence], brand: str, rule: str, at: datetime) -> Silence | None:
    return next((s for s in silences if s.matches(brand, rule, at)), None)


def plan_notifications(
    candidates: Iterable[Candidate], history: Iterable[HistoryEntry], silences: Sequence[Silence] = (),
    publish_after: datetime | None = None,
) -> list[Decision]:
    """Decide, for each candidate in window order, whether it notifies, is
    suppressed (cooldown), silenced, resolves an incident, or does nothing.
    Candidates whose decision is already in the history yield nothing.
    A notification for a window that ended before ``publish_after`` is recorded
    as HISTORICAL instead: re-scoring or backfilling history never pages anyone."""
    history = list(history)
    known = {h.alert_id for h in history}
    by_fp: dict[str, list[HistoryEntry]] = defaultdict(list)
    for h in history:
        by_fp[fingerprint(h.brand, h.rule)].append(h)

    decisions: list[Decision] = []
    for c in sorted(candidates, key=lambda c: (c.window_start, c.brand, c.rule)):
        if c.is_firing is None:
            continue  # not judged (no data): never resolves, never calm
        fp = fingerprint(c.brand, c.rule)
        state = incident_state(by_fp[fp], before=c.window_start)
        silence = matching_silence(silences, c.brand, c.rule, c.window_start)
        resolves = None
        if c.is_firing:
            status = FIRING
            aid = alert_id(c.brand, c.rule, c.window_start, c.window_end, status)
            if aid in known:
                continue
            if silence is not None:
                decision, reason = SILENCED, f"silenced until {_ts(silence.ends_at)}: {silence.comment}".rstrip(": ")
            elif state.open and state.last_notified is not None and c.window_start - state.last_notified < c.repeat_interval:
                decision, reason = SUPPRESSED, (
                    f"incident open, last notified for window {_ts(state.last_notified)}; "
                    f"repeat interval {c.repeat_interval}")
            elif state.open:
                decision, reason = NOTIFY, "incident still firing after the repeat interval"
            else:
                decision, reason = NOTIFY, "new incident"
        else:
            if not state.open:
                continue
            status = RESOLVED
            aid = alert_id(c.brand, c.rule, c.window_start, c.window_end, status)
            if aid in known:
                continue
            resolves = state.open_alert_id
            if silence is not None:
                decision, reason = SILENCED, f"resolved during a silence until {_ts(silence.ends_at)}"
            else:
                decision, reason = NOTIFY, "rule no longer firing"
        if decision == NOTIFY and publish_after is not None and c.window_end <= publish_after:
            decision, reason = HISTORICAL, f"window ended before the alerting horizon ({_ts(publish_after)}); {reason}"
        d = Decision(aid, fp, c.brand, c.rule, status, c.window_start, c.window_end,
                     c.severity if status == FIRING else "info", decision, reason, c, resolves)
        decisions.append(d)
        known.add(aid)
        by_fp[fp].append(d.as_history())
    return decisions
