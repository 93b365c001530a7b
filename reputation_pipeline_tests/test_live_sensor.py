"""The live sensor's decisions (pipeline/live.py ``plan_tick``, ``batch_status``): pure,
no Dagster instance, no broker."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
from hypothesis import given, settings
from hypothesis import strategies as st

from reputation_pipeline.pipeline.live import (BUSY, CATCHUP_JOB, DONE, FAILED, LIVE_FULL_JOB, LIVE_JOB, UNSEEN_RETRY_GRACE_S,
                                               RANGE_END, RANGE_START, batch_status, catchup_due_now, plan_tick)

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=timezone.utc)
HORIZON = NOW - timedelta(hours=6)


def hour(h_ago: int) -> str:
    return (NOW.replace(minute=0) - timedelta(hours=h_ago)).strftime("%Y-%m-%d-%H:%M")


def tick(state, hours=(), statuses=None, t=0.0, fingerprint="fp", every=300.0):
    return plan_tick(state, set(hours), statuses or {}, now=NOW.timestamp() + t,
                     horizon=HORIZON + timedelta(seconds=t),
                     fingerprint=fingerprint, catchup_every_s=every)


def test_one_live_run_at_a_time_and_the_next_one_takes_everything_that_waited():
    runs, state = tick({}, [hour(0), hour(2)])
    assert [(r.lane, r.job, r.first, r.last) for r in runs] == [("live", LIVE_FULL_JOB, hour(2), hour(0))]
    # while it runs, newly touched hours wait: no second run
    runs, state = tick(state, [hour(0)], {"live": BUSY}, t=5)
    assert runs == [] and state["live"] == [hour(0)]
    runs, state = tick(state, [hour(1)], {"live": BUSY}, t=10)
    assert runs == [] and state["live"] == [hour(1), hour(0)]
    # done: the reference nodes are built, so the next run is the window's models only, over both hours
    runs, state = tick(state, [], {"live": DONE}, t=15)
    assert [(r.job, r.first, r.last) for r in runs] == [(LIVE_JOB, hour(1), hour(0))]
    assert state["live"] == [] and state["inflight"]["live"]["hours"] == [hour(1), hour(0)]


def test_a_changed_dbt_project_or_brand_list_rebuilds_the_alert_path():
    _, state = tick({}, [hour(0)])
    runs, state = tick(state, [hour(0)], {"live": DONE}, t=5, fingerprint="fp")
    assert runs[0].job == LIVE_JOB
    runs, _ = tick(state, [hour(0)], {"live": DONE}, t=10, fingerprint="edited")
    assert runs[0].job == LIVE_FULL_JOB


def test_late_hours_wait_for_the_catch_up_and_never_take_the_live_lane():
    late = [hour(30), hour(31), hour(20)]
    runs, state = tick({}, late)
    assert runs == [] and state["live"] == [] and sorted(state["unchecked"]) == sorted(late)
    runs, state = tick(state, [hour(0)], t=100)
    assert [r.lane for r in runs] == ["live"]
    runs, state = tick(state, [], {"live": DONE}, t=301)
    # one ranged run per group of hours less than a day apart; every hour touched is in it
    assert {r.lane for r in runs} == {"catchup"} and {r.job for r in runs} == {CATCHUP_JOB}
    assert [(r.first, r.last) for r in runs] == [(hour(31), hour(0))]
    assert sorted(state["inflight"]["catchup"]["hours"]) == sorted([*late, hour(0)])
    assert state["unchecked"] == []
    assert runs[0].run_request().run_config == {"ops": {"reputation_dbt": {"config": {"merge_new_files": False}}}}


def test_a_failed_live_run_gives_its_hours_back_after_a_backoff():
    _, state = tick({}, [hour(0)])
    runs, state = tick(state, [], {"live": DONE}, t=1)
    runs, state = tick(state, [hour(1)], t=2)
    assert runs[0].job == LIVE_JOB
    runs, state = tick(state, [], {"live": FAILED}, t=3)
    assert runs == [] and state["live"] == [hour(1)] and state["reference"] is None
    runs, state = tick(state, [], t=3 + 14)
    assert runs == []
    runs, state = tick(state, [], t=3 + 15)
    assert [(r.job, r.first) for r in runs] == [(LIVE_FULL_JOB, hour(1))]
    runs, state = tick(state, [], {"live": FAILED}, t=20)
    runs, state = tick(state, [], t=20 + 29)
    assert runs == []  # the second failure waits twice as long
    runs, state = tick(state, [], t=20 + 30)
    assert runs and state["failures"] == {"live": 2}


def test_hours_that_fell_behind_the_horizon_leave_the_live_lane():
    _, state = tick({}, [hour(0)])
    runs, state = tick(state, [hour(6)], {"live": BUSY}, t=1)
    assert state["live"] == [hour(6)]
    runs, state = tick(state, [], {"live": DONE}, t=3600)  # an hour later, hour(6) can no longer page
    assert runs == [] or all(r.lane == "catchup" for r in runs)
    assert state["live"] == [] and hour(6) in state["unchecked"] + state["inflight"].get("catchup", {}).get("hours", [])


def test_catchup_due_now_keeps_the_rest_of_the_cursor():
    _, state = tick({}, [hour(30)])
    due = json.loads(catchup_due_now(json.dumps(state)))
    assert due["last_catchup"] == 0 and due["unchecked"] == state["unchecked"]
    runs, _ = tick(due, [], t=1)
    assert [r.lane for r in runs] == ["catchup"]
    assert json.loads(catchup_due_now(None)) == {"last_catchup": 0.0}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sets(st.integers(0, 40), max_size=4),
                          st.sampled_from([BUSY, DONE, FAILED]), st.sampled_from([BUSY, DONE, FAILED]),
                          st.floats(0, 400)), max_size=25))
def test_no_touched_hour_is_lost_and_each_lane_has_one_run_in_flight(steps):
    """Whatever the order of new hours and run outcomes: at most one batch per lane is in
    flight, and every hour touched is in a live run or waiting for one (while it can page),
    and in a catch-up or waiting for one, until a catch-up that holds it succeeds."""
    state: dict = {}
    t = 0.0
    owed_catchup: set[str] = set()
    for new, live_status, catchup_status, dt in steps:
        t += dt
        hours = {hour(h) for h in new}
        inflight = state.get("inflight", {})
        statuses = {"live": live_status, "catchup": catchup_status}
        if catchup_status == DONE and "catchup" in inflight:
            owed_catchup -= set(inflight["catchup"]["hours"])
        runs, state = tick(state, hours, {k: v for k, v in statuses.items() if k in inflight}, t=t)
        owed_catchup |= hours
        assert len({r.batch for r in runs if r.lane == "live"}) <= 1
        assert len({r.batch for r in runs if r.lane == "catchup"}) <= 1
        waiting_or_running = set(state["unchecked"]) | set(state["inflight"].get("catchup", {}).get("hours", []))
        assert owed_catchup <= waiting_or_running
        live_new = {h for h in hours if datetime.strptime(h, "%Y-%m-%d-%H:%M").replace(tzinfo=timezone.utc)
                    + timedelta(hours=1) > HORIZON + timedelta(seconds=t)}
        assert live_new <= set(state["live"]) | set(state["inflight"].get("live", {}).get("hours", []))


def _run(status, first="a", last="b", **tags):
    return dg.DagsterRun(job_name="live_job", run_id=tags.pop("run_id", f"r{first}{status.value}"), status=status,
                         tags={RANGE_START: first, RANGE_END: last, **tags})


def test_batch_status_follows_the_runs_and_dagsters_retries():
    S = dg.DagsterRunStatus
    assert batch_status([], requested_at=0, now=10) == BUSY  # not created yet
    assert batch_status([], requested_at=0, now=1000) == FAILED  # never created
    assert batch_status([_run(S.STARTED)], 0, 1) == BUSY
    assert batch_status([_run(S.SUCCESS)], 0, 1) == DONE
    assert batch_status([_run(S.SUCCESS), _run(S.FAILURE, first="c", last="d")], 0, 1) == FAILED
    failed = _run(S.FAILURE, run_id="p", **{"dagster/will_retry": "true"})
    assert batch_status([failed], 0, 1) == BUSY  # Dagster's run retries will re-execute it
    retried = _run(S.SUCCESS, run_id="c", **{"dagster/parent_run_id": "p"})
    assert batch_status([failed, retried], 0, 1) == DONE
    assert batch_status([failed, _run(S.FAILURE, run_id="c2", **{"dagster/parent_run_id": "p"})], 0, 1) == FAILED


def test_a_retry_that_never_comes_does_not_hold_the_lane():
    """Dagster marks a failed run for retry; when no retry run appears long after the failure
    (its retry daemon skips failures marked before it started), the batch counts as failed,
    so the live sensor requests the hours again instead of waiting for ever."""
    failed = _run(dg.DagsterRunStatus.FAILURE, run_id="p", **{"dagster/will_retry": "true"})
    assert batch_status([failed], 0, now=1000, ended_at={"p": 990}) == BUSY
    assert batch_status([failed], 0, now=1000, ended_at={"p": 1000 - UNSEEN_RETRY_GRACE_S}) == FAILED
