"""The alert stage as plain functions over a DuckDB connection (the Dagster
asset is a thin wrapper):

1. ``evaluate``: read mart_alert_candidates for [start, end), plan the
   notifications against the history (``rules.plan_notifications``), build each
   payload with its explanation, and record everything in the outbox in one
   transaction (deterministic alert ids: a re-run inserts nothing);
2. ``deliver``: publish every unsent notification.

Exactly-once delivery, by outbox + read-back: ``publish_attempted_at`` is
committed before producing and ``sent_at`` after the broker's ack. Rows with an
attempt but no ``sent_at`` (a crash between publish and bookkeeping) are first
looked up on the topic from the attempt time on; found ones are marked sent
(``reconciled``), the rest are published again. Consumers may still dedupe by
``alert_id`` (``alerts tail`` does) as a second line of defence.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import duckdb

from reputation_pipeline.alerts.rules import FIRING, Candidate, Decision, plan_notifications
from reputation_pipeline.alerts.store import AlertStore, now_utc
from reputation_pipeline.alerts.publisher import Delivered

PAYLOAD_SCHEMA_VERSION = 1
TOP_POSTS = 5
RECONCILE_MARGIN = timedelta(minutes=5)

CANDIDATE_SQL = """
select brand, brand_name, rule, window_start, window_end, is_firing, severity, repeat_interval_minutes,
       metric, metric_value, threshold, data_status, mention_count, scored_mentions, negative_mentions,
       toxic_mentions, weighted_risk, risk_sum, max_toxicity, total_reach, window_post_count,
       window_scored_count, baseline_risk_mean, baseline_risk_std, baseline_mentions_mean,
       baseline_windows, rule_description
from marts.mart_alert_candidates
where window_start >= ? and window_start < ?
order by window_start, brand, rule
"""


class Publisher(Protocol):
    topic: str

    def publish(self, messages: Sequence[tuple[str, str, str]]) -> list[Delivered]: ...
    def find_published(self, alert_ids, since: datetime) -> dict[str, Delivered]: ...


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else round(v, 4)
    return v


def load_candidates(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[Candidate]:
    cur = conn.execute(CANDIDATE_SQL, [start, end])
    cols = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        r = dict(zip(cols, row))
        metrics = {k: _num(v) for k, v in r.items()
                   if k not in ("brand", "brand_name", "rule", "window_start", "window_end", "is_firing", "severity",
                                "repeat_interval_minutes")}
        out.append(Candidate(r["brand"], r["rule"], r["window_start"], r["window_end"], r["is_firing"],
                             r["severity"], timedelta(minutes=int(r["repeat_interval_minutes"] or 0)), metrics,
                             brand_name=r["brand_name"]))
    return out


def _rows(conn, sql: str, params: list) -> list[dict]:
    cur = conn.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [{k: _num(v) for k, v in zip(cols, row)} for row in cur.fetchall()]


def explanation(conn: duckdb.DuckDBPyConnection, d: Decision) -> dict:
    """Top posts with their links, and the platforms and sources driving the window."""
    m = d.candidate.metrics
    order = "post_risk desc nulls last, post_id"
    params: list = [d.brand, d.window_start]
    if d.rule == "toxic_post":
        order = "(toxicity >= ?) desc, followers desc, toxicity desc nulls last, post_id"
        params = [d.brand, d.window_start, m.get("threshold") or 0.0]
    top_posts = _rows(conn, f"""
        select post_id, platform, url, author_handle, followers, engagement, sentiment_label,
               toxicity, offensive_score, hate_score, post_risk, left(text, 280) as text,
               matched_keywords, matched_handles, matched_hashtags
        from marts.fct_brand_mentions
        where brand = ? and window_start = ? and is_scored
        order by {order} limit {TOP_POSTS}""", params)
    platforms = _rows(conn, """
        select platform, count(*) as mentions, sum(post_risk) as risk,
               sum(post_risk) / nullif(sum(sum(post_risk)) over (), 0) as risk_share
        from marts.fct_brand_mentions where brand = ? and window_start = ?
        group by platform order by risk desc nulls last, platform""", [d.brand, d.window_start])
    sources = _rows(conn, """
        select author_handle, platform, count(*) as mentions, max(followers) as followers, sum(post_risk) as risk
        from marts.fct_brand_mentions where brand = ? and window_start = ?
        group by author_handle, platform order by risk desc nulls last, author_handle limit 5""",
        [d.brand, d.window_start])
    for p in top_posts:
        for k in ("matched_keywords", "matched_handles", "matched_hashtags"):
            p[k] = list(p[k] or [])
    return {"reason": d.reason, "rule_description": m.get("rule_description"), "top_posts": top_posts,
            "platforms": platforms, "sources": sources}


def summary_line(d: Decision) -> str:
    m = d.candidate.metrics
    name = d.candidate.display_name
    span = f"{d.window_start:%Y-%m-%d %H:%M}–{d.window_end:%H:%M} UTC"
    if d.status != FIRING:
        return f"{name}: {d.rule} resolved for {span} ({m.get('metric')} {m.get('metric_value')})"
    if d.rule == "no_data":
        what = "no posts from any platform (ingest stalled?)" if m.get("data_status") == "no_posts" else \
            "posts but no scores (scoring stalled?)"
        return f"{name}: no data for {span}: {what}"
    return (f"{name}: {d.rule} {d.severity} for {span}: {m.get('metric')} {m.get('metric_value')} "
            f"vs threshold {m.get('threshold')} over {m.get('mention_count')} mentions")


def build_payload(conn: duckdb.DuckDBPyConnection, d: Decision) -> dict:
    m = d.candidate.metrics
    return {
        "schema_version": PAYLOAD_SCHEMA_VERSION,
        "alert_id": d.alert_id,
        "fingerprint": d.fingerprint,
        # identity (labels, ids, the Kafka key) is the brand's key; brand_name is for people
        "labels": {"brand": d.brand, "rule": d.rule, "window_start": d.window_start.isoformat(),
                   "window_end": d.window_end.isoformat()},
        "brand": d.brand,
        "brand_name": d.candidate.display_name,
        "rule": d.rule,
        "status": d.status,
        "severity": d.severity,
        "window_start": d.window_start.isoformat(),
        "window_end": d.window_end.isoformat(),
        "summary": summary_line(d),
        "resolves_alert_id": d.resolves_alert_id,
        "metrics": {k: m.get(k) for k in ("metric", "metric_value", "threshold", "data_status", "mention_count",
                                          "scored_mentions", "negative_mentions", "toxic_mentions",
                                          "weighted_risk", "risk_sum", "max_toxicity", "total_reach",
                                          "window_post_count", "window_scored_count")},
        "baseline": {"risk_mean": m.get("baseline_risk_mean"), "risk_std": m.get("baseline_risk_std"),
                     "mentions_mean": m.get("baseline_mentions_mean"), "windows": m.get("baseline_windows")},
        "explanation": explanation(conn, d),
    }


@dataclass
class EvaluationSummary:
    candidates: int = 0
    firing: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    recorded: int = 0


@dataclass
class DeliverySummary:
    published: list[str] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)


def evaluate(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime, run_id: str | None = None,
             publish_after: datetime | None = None) -> EvaluationSummary:
    store = AlertStore(conn)
    candidates = load_candidates(conn, start, end)
    brands = {c.brand for c in candidates}
    decisions = plan_notifications(candidates, store.history(brands), store.silences(), publish_after)
    payloads = {d.alert_id: build_payload(conn, d) for d in decisions}
    summary = EvaluationSummary(candidates=len(candidates), firing=sum(1 for c in candidates if c.is_firing))
    for d in decisions:
        key = f"{d.status}:{d.decision}"
        summary.decisions[key] = summary.decisions.get(key, 0) + 1
    summary.recorded = store.record(decisions, payloads, run_id)
    return summary


def deliver(conn: duckdb.DuckDBPyConnection, publisher: Publisher) -> DeliverySummary:
    store = AlertStore(conn)
    out = DeliverySummary()
    pending = store.pending()
    attempted = [p for p in pending if p.publish_attempted_at is not None]
    if attempted:
        since = min(p.publish_attempted_at for p in attempted) - RECONCILE_MARGIN
        found = publisher.find_published([p.alert_id for p in attempted], since)
        for aid, where in found.items():
            store.mark_sent(aid, where.topic, where.partition, where.offset, reconciled=True)
            out.reconciled.append(aid)
        pending = [p for p in pending if p.alert_id not in found]
    if not pending:
        return out
    store.mark_attempted([p.alert_id for p in pending], now_utc())
    delivered = publisher.publish([(p.alert_id, p.brand, p.payload) for p in pending])
    for dl in delivered:
        store.mark_sent(dl.alert_id, dl.topic, dl.partition, dl.offset)
        out.published.append(dl.alert_id)
    return out
