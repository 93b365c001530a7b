"""Alert history and outbox, in the DuckDB warehouse (schema ``alerting``).

Every decision of ``plan_notifications`` becomes one row keyed by its
deterministic ``alert_id`` (insert-or-ignore, so re-runs add nothing). Rows to
publish carry the exact JSON payload, written *before* publishing (the outbox);
``publish_attempted_at`` is set before the produce call and ``sent_at`` (with
the Kafka partition/offset) after the broker acknowledged it. All history is
queryable: ``select * from alerting.alert_history``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

from reputation_pipeline.alerts.rules import NOTIFY, Decision, HistoryEntry, Silence

SCHEMA_SQL = """
create schema if not exists alerting;
create table if not exists alerting.alert_history (
    alert_id varchar primary key,
    fingerprint varchar not null,
    brand varchar not null,
    rule varchar not null,
    status varchar not null,            -- firing | resolved
    window_start timestamptz not null,
    window_end timestamptz not null,
    severity varchar,
    decision varchar not null,          -- notify | suppressed | silenced | historical
    reason varchar,
    resolves_alert_id varchar,
    payload json,                       -- exactly what is (or would be) published
    decided_at timestamptz not null,
    run_id varchar,
    publish_attempted_at timestamptz,
    sent_at timestamptz,
    kafka_topic varchar,
    kafka_partition integer,
    kafka_offset bigint,
    reconciled boolean default false    -- sent_at found by reading the topic back
);
"""


@dataclass(frozen=True)
class OutboxRow:
    alert_id: str
    brand: str
    payload: str
    publish_attempted_at: datetime | None


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class AlertStore:
    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn
        conn.execute(SCHEMA_SQL)

    def history(self, brands: Iterable[str] | None = None) -> list[HistoryEntry]:
        sql = ("select alert_id, brand, rule, status, window_start, window_end, decision "
               "from alerting.alert_history")
        params: list = []
        brands = sorted(set(brands)) if brands is not None else None
        if brands is not None:
            if not brands:
                return []
            sql += " where list_contains(?, brand)"
            params.append(brands)
        return [HistoryEntry(*row) for row in self.conn.execute(sql, params).fetchall()]

    def silences(self) -> list[Silence]:
        exists = self.conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'staging' and table_name = 'stg_alert_silences'"
        ).fetchone()[0]
        if not exists:
            return []
        rows = self.conn.execute("select brand, rule, starts_at, ends_at, coalesce(comment, '') from staging.stg_alert_silences").fetchall()
        return [Silence(*r) for r in rows]

    def record(self, decisions: Sequence[Decision], payloads: dict[str, dict], run_id: str | None) -> int:
        """Insert the decisions (one transaction); ids already present are left alone."""
        if not decisions:
            return 0
        before = self.conn.execute("select count(*) from alerting.alert_history").fetchone()[0]
        decided_at = now_utc()
        self.conn.execute("begin transaction")
        try:
            self.conn.executemany(
                """insert into alerting.alert_history
                   (alert_id, fingerprint, brand, rule, status, window_start, window_end, severity, decision,
                    reason, resolves_alert_id, payload, decided_at, run_id)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   on conflict do nothing""",
                [
                    (d.alert_id, d.fingerprint, d.brand, d.rule, d.status, d.window_start, d.window_end, d.severity,
                     d.decision, d.reason, d.resolves_alert_id,
                     json.dumps(payloads[d.alert_id], sort_keys=True, default=str), decided_at, run_id)
                    for d in decisions
                ],
            )
            self.conn.execute("commit")
        except BaseException:
            self.conn.execute("rollback")
            raise
        return self.conn.execute("select count(*) from alerting.alert_history").fetchone()[0] - before

    def pending(self) -> list[OutboxRow]:
        rows = self.conn.execute(
            """select alert_id, brand, payload::varchar, publish_attempted_at from alerting.alert_history
               where decision = ? and sent_at is null order by window_start, alert_id""",
            [NOTIFY],
        ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def mark_attempted(self, alert_ids: Sequence[str], at: datetime) -> None:
        if alert_ids:
            self.conn.execute(
                "update alerting.alert_history set publish_attempted_at = ? where list_contains(?, alert_id) and sent_at is null",
                [at, list(alert_ids)],
            )

    def mark_sent(self, alert_id: str, topic: str, partition: int, offset: int, *, reconciled: bool = False) -> None:
        self.conn.execute(
            """update alerting.alert_history
               set sent_at = ?, kafka_topic = ?, kafka_partition = ?, kafka_offset = ?, reconciled = ?
               where alert_id = ? and sent_at is null""",
            [now_utc(), topic, partition, offset, reconciled, alert_id],
        )
