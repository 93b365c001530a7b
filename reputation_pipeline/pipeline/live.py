"""The live path in Dagster: after ingest, few and coarse runs.

``live_pipeline_sensor`` reads the ``raw_posts`` materializations recorded since its
cursor (ingest runs and imports report one per touched hour) and requests, in two lanes:

- ``live``: one run over every touched hour whose window can still page someone
  (``REPUTATION_ALERT_HORIZON_HOURS``): scores, the dbt models that change with the
  window, alerts (``live_job``; ``live_full_job`` with every dbt node on the alert path
  when the dbt project or the brands changed, or the last live run failed). While that
  run is queued or running, newly touched hours wait in the cursor and go into the next
  run together: when input outpaces scoring, runs grow larger, not more numerous.
- ``catchup``: every ``REPUTATION_CATCHUP_INTERVAL_S`` (default 300 s), every hour touched
  since the last catch-up (late posts beyond the horizon, history, and the live hours,
  whose dbt tests run here) in ranged ``catchup_job`` runs: scores, the full dbt build
  with every test, published marts and alerts (late windows record history, never page).

At most one run per lane is in flight (the sensor waits for it; the run queue's tag limit
on ``reputation/lane`` backs that up). Everything the sensor must remember is in its
cursor and in the runs' tags, so a daemon restart resumes where it stopped: a lane's run
that failed (and will not be retried by Dagster) puts its hours back.

The decisions are a pure function (``plan_tick``) of the cursor state, the new hours and
the lanes' run statuses; the sensor only gathers those from the instance."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from reputation_pipeline.partitions import hourly_partitions
from reputation_pipeline import settings

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
LANE_TAG = "reputation/lane"
BATCH_TAG = "reputation/live_batch"
KEY_FORMAT = "%Y-%m-%d-%H:%M"
# a requested run that has not shown up in the instance after this long was never created
UNSEEN_RUN_GRACE_S = 120.0
# a failed run marked for retry whose retry has not shown up this long after it ended never gets
# one: Dagster's retry daemon starts reading failures from where the event log is when it
# starts, so a failure marked just then (run monitoring, right after a restart) is never retried
UNSEEN_RETRY_GRACE_S = 120.0
RECORDS_PER_TICK = 1000
RETRY_BACKOFF_S, RETRY_BACKOFF_MAX_S = 15.0, 600.0

LIVE_JOB, LIVE_FULL_JOB, CATCHUP_JOB = "live_job", "live_full_job", "catchup_job"
# the catch-up rebuilds its windows from every lake file (the live runs merge new files only)
FULL_BUILD_CONFIG = {"ops": {"reputation_dbt": {"config": {"merge_new_files": False}}}}

BUSY, DONE, FAILED = "busy", "done", "failed"


@dataclass(frozen=True)
class LiveRun:
    lane: str
    job: str
    first: str
    last: str
    batch: str

    def run_request(self) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=f"{self.batch}:{self.first}:{self.last}",
            job_name=self.job,
            run_config=FULL_BUILD_CONFIG if self.job == CATCHUP_JOB else {},
            tags={RANGE_START: self.first, RANGE_END: self.last, LANE_TAG: self.lane, BATCH_TAG: self.batch},
        )


def contiguous_ranges(partitions, max_gap_hours: int = 3) -> list[tuple[str, str]]:
    """Touched hours grouped into ranges; a post a month late does not drag every
    hour in between into the run. Small gaps are bridged (one run beats three)."""
    hours = sorted(datetime.strptime(p, KEY_FORMAT) for p in partitions)
    ranges: list[list[datetime]] = []
    for h in hours:
        if ranges and h - ranges[-1][1] <= timedelta(hours=max_gap_hours):
            ranges[-1][1] = h
        else:
            ranges.append([h, h])
    return [(a.strftime(KEY_FORMAT), b.strftime(KEY_FORMAT)) for a, b in ranges]


def split_by_horizon(partitions, horizon: datetime | None) -> tuple[set[str], set[str]]:
    """(hours whose window ends after the alerting horizon: alerts may still be
    published, so they are on the live path; older hours: history only)."""
    if horizon is None:
        return set(partitions), set()
    live = {p for p in partitions
            if datetime.strptime(p, KEY_FORMAT).replace(tzinfo=timezone.utc) + timedelta(hours=1) > horizon}
    return live, set(partitions) - live


def catchup_interval_s() -> float:
    return settings.CATCHUP_INTERVAL_S.get()


def plan_tick(state: dict, new_hours: set[str], lane_status: dict[str, str], *, now: float,
              horizon: datetime | None, fingerprint: str, catchup_every_s: float,
              after: int | None = None) -> tuple[list[LiveRun], dict]:
    """The next runs and the next cursor state (pure).

    ``state``: the previous cursor (``{}`` at first); ``new_hours``: hour partitions of
    ``raw_posts`` materialized since; ``lane_status``: for each lane in flight, whether
    its runs are ``busy``, ``done`` or ``failed``; ``after``: the storage id the new
    hours were read up to."""
    live = set(state.get("live", []))
    unchecked = set(state.get("unchecked", []))
    inflight = dict(state.get("inflight", {}))
    reference = state.get("reference")
    last_catchup = state.get("last_catchup", now)

    fresh_live, _late = split_by_horizon(new_hours, horizon)
    live |= fresh_live
    unchecked |= set(new_hours)

    failures = dict(state.get("failures", {}))  # lane -> consecutive failed batches
    retry_at = dict(state.get("retry_at", {}))  # lane -> earliest time to request it again
    for lane, info in list(inflight.items()):
        status = lane_status.get(lane, BUSY)
        if status == BUSY:
            continue
        del inflight[lane]
        if status == DONE:
            failures.pop(lane, None)
            if info["job"] == LIVE_FULL_JOB:
                reference = info.get("fingerprint")
        else:  # put the work back; a failed build may have left the reference nodes half-built
            reference = None
            (live if lane == "live" else unchecked).update(info["hours"])
            failures[lane] = failures.get(lane, 0) + 1
            # a run that keeps failing is requested again after 15 s, 30 s, ... at most 10 min: no storm
            retry_at[lane] = now + min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** (failures[lane] - 1))
            if lane == "catchup":
                last_catchup = now - catchup_every_s  # due again once the backoff has passed

    live, _expired = split_by_horizon(live, horizon)  # too old to page: the catch-up has them
    runs: list[LiveRun] = []
    seq = int(state.get("seq", 0))
    if "live" not in inflight and live and now >= retry_at.get("live", 0):
        seq += 1
        job = LIVE_JOB if reference is not None and reference == fingerprint else LIVE_FULL_JOB
        batch = f"live-{seq}-{int(now)}"  # unique even if the cursor is reset (run keys stay new)
        hours = sorted(live)
        runs.append(LiveRun("live", job, hours[0], hours[-1], batch))
        inflight["live"] = {"batch": batch, "job": job, "hours": hours, "requested_at": now,
                            "fingerprint": fingerprint}
        live = set()
    if "catchup" not in inflight and unchecked and now - last_catchup >= catchup_every_s \
            and now >= retry_at.get("catchup", 0):
        seq += 1
        batch = f"catchup-{seq}-{int(now)}"
        # wide bridging: a catch-up is slow work off the alert path, few runs beat tight ones
        for first, last in contiguous_ranges(unchecked, max_gap_hours=24):
            runs.append(LiveRun("catchup", CATCHUP_JOB, first, last, batch))
        inflight["catchup"] = {"batch": batch, "job": CATCHUP_JOB, "hours": sorted(unchecked),
                               "requested_at": now}
        unchecked, last_catchup = set(), now

    new_state = {"after": after if after is not None else state.get("after"), "live": sorted(live),
                 "unchecked": sorted(unchecked), "inflight": inflight, "reference": reference,
                 "last_catchup": last_catchup, "seq": seq, "failures": failures,
                 "retry_at": {k: v for k, v in retry_at.items() if v > now}}
    return runs, new_state


def catchup_due_now(cursor: str | None) -> str:
    """The sensor's cursor with the catch-up due at its next evaluation (the headless
    executor's idle step: run the full build before stopping)."""
    state = json.loads(cursor) if cursor else {}
    state["last_catchup"] = 0.0
    return json.dumps(state, sort_keys=True)


IN_PROGRESS = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.MANAGED, dg.DagsterRunStatus.CANCELING}
WILL_RETRY_TAG = "dagster/will_retry"


def batch_status(runs: list[dg.DagsterRun], requested_at: float, now: float,
                 ended_at: dict[str, float] | None = None) -> str:
    """busy while any run of the batch is queued or running or about to be retried by
    Dagster; done when every range of it has a successful run; failed otherwise.
    ``ended_at``: when runs ended (run id -> epoch s), which bounds the wait for a retry."""
    if not runs:
        return BUSY if now - requested_at < UNSEEN_RUN_GRACE_S else FAILED
    if any(r.status in IN_PROGRESS for r in runs):
        return BUSY
    ranges = {(r.tags.get(RANGE_START), r.tags.get(RANGE_END)) for r in runs}
    succeeded = {(r.tags.get(RANGE_START), r.tags.get(RANGE_END)) for r in runs
                 if r.status == dg.DagsterRunStatus.SUCCESS}
    if succeeded == ranges:
        return DONE
    retrying = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE
                and r.tags.get(WILL_RETRY_TAG) == "true"
                and not any(o.tags.get("dagster/parent_run_id") == r.run_id for o in runs)
                and now - (ended_at or {}).get(r.run_id, now) < UNSEEN_RETRY_GRACE_S]
    return BUSY if retrying else FAILED


def new_raw_hours(instance: dg.DagsterInstance, after: int | None) -> tuple[set[str], int | None]:
    """Hour partitions of raw_posts materialized after storage id ``after``."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_posts"), after_storage_id=after),
        limit=RECORDS_PER_TICK, ascending=True)
    keys = {r.asset_materialization.partition for r in result.records if r.asset_materialization}
    if result.records:
        after = max(r.storage_id for r in result.records)
    # never request an hour Dagster does not know
    return {k for k in keys if k and hourly_partitions.has_partition_key(k)}, after


def lane_statuses(instance: dg.DagsterInstance, inflight: dict, now: float) -> dict[str, str]:
    out = {}
    for lane, info in inflight.items():
        records = instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: info["batch"]}))
        out[lane] = batch_status([r.dagster_run for r in records], info["requested_at"], now,
                                 ended_at={r.dagster_run.run_id: _epoch(r.update_timestamp) for r in records})
    return out


def _epoch(ts: datetime) -> float:
    # run storages keep naive UTC timestamps
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()


def build_live_sensor(jobs: list) -> dg.SensorDefinition:
    from reputation_pipeline.aggregation.reference import reference_fingerprint
    from reputation_pipeline.alerts.assets import alerting_horizon

    @dg.sensor(
        name="live_pipeline_sensor",
        jobs=jobs,
        minimum_interval_seconds=3,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After ingest: one live run (scores, window models, alerts) over the freshly touched hours "
        "within the alert horizon at a time, and ranged catch-up runs (full dbt build with tests, published "
        "marts) on a slower cadence.",
    )
    def live_pipeline_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        now = time.time()
        hours, after = new_raw_hours(context.instance, state.get("after"))
        statuses = lane_statuses(context.instance, state.get("inflight", {}), now)
        runs, new_state = plan_tick(state, hours, statuses, now=now, horizon=alerting_horizon({}),
                                    fingerprint=reference_fingerprint(), catchup_every_s=catchup_interval_s(),
                                    after=after)
        cursor = json.dumps(new_state, sort_keys=True)
        if not runs:
            waiting = ", ".join(f"{lane} run {info['batch']} in flight" for lane, info in new_state["inflight"].items())
            return dg.SensorResult(cursor=cursor, skip_reason=(
                f"{len(new_state['live'])} live hours waiting, {len(new_state['unchecked'])} for the catch-up"
                + (f"; {waiting}" if waiting else "")))
        return dg.SensorResult(run_requests=[r.run_request() for r in runs], cursor=cursor)

    return live_pipeline_sensor
