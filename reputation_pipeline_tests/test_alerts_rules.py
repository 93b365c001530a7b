"""Notification semantics (pure functions) and the outbox with a fake publisher."""
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from reputation_pipeline.alerts.evaluate import deliver
from reputation_pipeline.alerts.publisher import AlertPublishError, Delivered
from reputation_pipeline.alerts.rules import (
    NOTIFY, RESOLVED, SILENCED, SUPPRESSED, Candidate, Silence, alert_id, plan_notifications,
)
from reputation_pipeline.alerts.store import AlertStore

T0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)


def cand(hour, firing, brand="acme", rule="risk_threshold", repeat=timedelta(hours=3)):
    start = T0 + hour * H
    return Candidate(brand, rule, start, start + H, firing, "warning" if firing else None, repeat)


def run(cands, history=(), silences=()):
    decisions = plan_notifications(cands, list(history), silences)
    return decisions, [d.as_history() for d in decisions]


def test_alert_id_is_identity_by_labels():
    a = alert_id("acme", "risk_spike", T0, T0 + H, "firing")
    assert a == alert_id("acme", "risk_spike", T0, T0 + H, "firing")
    assert a != alert_id("acme", "risk_spike", T0 + H, T0 + 2 * H, "firing")
    assert a != alert_id("acme", "risk_spike", T0, T0 + H, "resolved")
    assert a != alert_id("globex", "risk_spike", T0, T0 + H, "firing")


def test_alert_identity_is_the_brand_key_not_its_display_name():
    """Renaming "Northwind Air" to "NORTHWIND AIR" in the brands CSV changes what people read,
    not the alerts: the same ids and incident, so the history decides nothing new."""
    def cands(name):
        return [Candidate("northwind air", "risk_threshold", T0 + h * H, T0 + (h + 1) * H, firing,
                          "warning" if firing else None, timedelta(hours=3), brand_name=name)
                for h, firing in ((0, True), (1, True), (2, False))]

    first, history = run(cands("Northwind Air"))
    renamed = plan_notifications(cands("NORTHWIND AIR"), [], ())
    assert [(d.alert_id, d.fingerprint) for d in renamed] == [(d.alert_id, d.fingerprint) for d in first]
    assert {d.candidate.display_name for d in renamed} == {"NORTHWIND AIR"}
    assert run(cands("NORTHWIND AIR"), history)[0] == []


def test_new_incident_cooldown_repeat_and_resolved():
    cands = [cand(h, True) for h in range(5)] + [cand(5, False), cand(6, False)]
    decisions, _ = run(cands)
    got = [(d.window_start.hour, d.status, d.decision) for d in decisions]
    assert got == [
        (0, "firing", NOTIFY),       # new incident
        (1, "firing", SUPPRESSED),   # within the 3h repeat interval
        (2, "firing", SUPPRESSED),
        (3, "firing", NOTIFY),       # reminder after the repeat interval
        (4, "firing", SUPPRESSED),
        (5, "resolved", NOTIFY),     # resolved once
    ]
    assert decisions[-1].resolves_alert_id == decisions[0].alert_id


def test_rerun_with_history_decides_nothing_new():
    cands = [cand(0, True), cand(1, True), cand(2, False)]
    _, history = run(cands)
    again, _ = run(cands, history)
    assert again == []


def test_no_data_never_resolves_nor_reads_calm():
    cands = [cand(0, True), cand(1, None), cand(2, None)]
    decisions, history = run(cands)
    assert [(d.status, d.decision) for d in decisions] == [("firing", NOTIFY)]
    later, _ = run([cand(3, False)], history)
    assert [(d.status, d.window_start.hour) for d in later] == [(RESOLVED, 3)]


def test_silence_with_end_time():
    silence = Silence("acme", None, T0 + 1 * H, T0 + 3 * H, "campaign launch")
    cands = [cand(h, True, repeat=timedelta(0)) for h in range(1, 5)]
    decisions, _ = run(cands, silences=[silence])
    assert [(d.window_start.hour, d.decision) for d in decisions] == [
        (1, SILENCED), (2, SILENCED), (3, NOTIFY), (4, NOTIFY)]
    # a silence of another rule or brand does not apply
    other = [Silence("acme", "risk_spike", T0, T0 + 9 * H), Silence("globex", None, T0, T0 + 9 * H)]
    decisions, _ = run(cands, silences=other)
    assert all(d.decision == NOTIFY for d in decisions)


def test_out_of_order_windows_are_judged_on_earlier_history_only():
    # window 2 was processed first; a backfill of windows 0-1 later must not
    # suppress window 0 nor resolve anything because of window 2
    _, history = run([cand(2, True)])
    decisions, _ = run([cand(0, True), cand(1, False)], history)
    assert [(d.window_start.hour, d.status, d.decision) for d in decisions] == [
        (0, "firing", NOTIFY), (1, "resolved", NOTIFY)]


class FakePublisher:
    topic = "fake.alerts"

    def __init__(self):
        self.log: list[tuple[str, str, str]] = []
        self.fail_after_send = False

    def publish(self, messages):
        out = []
        for m in messages:
            self.log.append(m)
            out.append(Delivered(m[0], self.topic, 0, len(self.log) - 1))
        if self.fail_after_send:
            raise AlertPublishError("simulated crash after the broker acked")
        return out

    def find_published(self, alert_ids, since):
        wanted = set(alert_ids)
        return {m[0]: Delivered(m[0], self.topic, 0, i) for i, m in enumerate(self.log) if m[0] in wanted}


def _store_with(decisions):
    conn = duckdb.connect()
    store = AlertStore(conn)
    store.record(decisions, {d.alert_id: {"alert_id": d.alert_id, "brand": d.brand} for d in decisions}, "run-1")
    return conn, store


def test_outbox_records_once_and_publishes_once():
    decisions, _ = run([cand(0, True), cand(1, True), cand(2, False)])
    conn, store = _store_with(decisions)
    assert store.record(decisions, {d.alert_id: {} for d in decisions}, "run-2") == 0  # idempotent
    pub = FakePublisher()
    first = deliver(conn, pub)
    assert len(first.published) == 2  # firing + resolved; the suppressed one is history only
    assert deliver(conn, pub).published == []
    assert len(pub.log) == 2
    assert conn.execute("select count(*) from alerting.alert_history where decision = 'suppressed'").fetchone()[0] == 1


def test_crash_between_publish_and_bookkeeping_neither_duplicates_nor_loses():
    decisions, _ = run([cand(0, True), cand(5, True, brand="globex")])
    conn, store = _store_with(decisions)
    pub = FakePublisher()
    pub.fail_after_send = True
    with pytest.raises(AlertPublishError):
        deliver(conn, pub)
    assert len(store.pending()) == 2  # sent but not marked
    pub.fail_after_send = False
    out = deliver(conn, pub)
    assert sorted(out.reconciled) == sorted(d.alert_id for d in decisions)
    assert out.published == [] and len(pub.log) == 2 and store.pending() == []


def test_crash_before_publish_republishes():
    decisions, _ = run([cand(0, True)])
    conn, store = _store_with(decisions)
    store.mark_attempted([decisions[0].alert_id], T0)  # attempted, never reached the broker
    pub = FakePublisher()
    out = deliver(conn, pub)
    assert out.reconciled == [] and out.published == [decisions[0].alert_id] and len(pub.log) == 1


def test_history_before_the_horizon_is_recorded_not_published():
    from reputation_pipeline.alerts.assets import PUBLISH_HISTORY_TAG, alerting_horizon
    from reputation_pipeline.alerts.rules import HISTORICAL

    horizon = T0 + 5 * H
    decisions = plan_notifications([cand(1, True), cand(8, True, brand="globex")], [], (), publish_after=horizon)
    by_brand = {d.brand: d.decision for d in decisions}
    assert by_brand == {"acme": HISTORICAL, "globex": NOTIFY}
    # a historical firing does not open an incident: the next live window notifies
    later = plan_notifications([cand(9, True)], [d.as_history() for d in decisions], (), publish_after=horizon)
    assert [d.decision for d in later] == [NOTIFY]

    now = T0 + 10 * H
    assert alerting_horizon({}, now) == now - 6 * H
    assert alerting_horizon({PUBLISH_HISTORY_TAG: "true"}, now) is None


def test_an_alert_line_carries_no_terminal_control_sequence():
    from reputation_pipeline.alerts.render import alert_line

    hostile = {"status": "firing", "severity": "critical", "brand": "acme\x1b[2J\x1b]0;owned\x07",
               "rule": "toxic_post", "window_start": "2026-12-01T10:00:00+00:00",
               "summary": "[bold red]fake[/] \u202eevil\r\nforged line"}
    text = alert_line(hostile).plain
    assert not any(ch in text for ch in "\x1b\x07\r\n\u202e")
    assert "[bold red]fake[/]" in text  # printed as written, never read as markup
    # the brand as the brands CSV writes it, when the message has it, made as safe
    named = alert_line({**hostile, "brand_name": "Northwind\x1b[31m Air\u2066"}).plain
    assert "Northwind?[31m Air?" in named and "acme" not in named
