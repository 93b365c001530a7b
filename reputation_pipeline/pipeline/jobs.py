"""Asset jobs over the stages (also launchable and backfillable from the UI)."""
import dagster as dg
from dagster_dbt import build_dbt_asset_selection

from reputation_pipeline.aggregation import aggregation_assets, reputation_dbt_assets
from reputation_pipeline.alerts import alerts_assets
from reputation_pipeline.pipeline.live import (CATCHUP_JOB, FULL_BUILD_CONFIG, LIVE_FULL_JOB, LIVE_JOB,
                                               build_live_sensor)

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets("post_scores"),
    description="Score the posts of a range of hour partitions in one run (re-runs skip files already scored by the model version).",
)

aggregation_job = dg.define_asset_job(
    "aggregation_job",
    # dbt models and seeds (and their tests), published marts, alerts; and the scores'
    # monitoring checks (null rate, label drift) that the live path leaves out
    selection=dg.AssetSelection.assets(*aggregation_assets, *alerts_assets)
    | dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("post_scores"), "scores_null_rate"),
                               dg.AssetCheckKey(dg.AssetKey("post_scores"), "label_drift")),
    # the full build rebuilds the windows from every lake file (the micro-batches merge new files only)
    config={"ops": {"reputation_dbt": {"config": {"merge_new_files": False}}}},
    description="dbt models, seeds and every dbt test (as asset checks), published marts and alerts for a range "
    "of hour partitions (one dbt invocation, rebuilding the windows from every lake file), with the scores' "
    "null-rate and drift checks.",
)

# The dbt models and seeds brand_alerts depends on (the whole dbt graph today, minus the tests).
ALERT_PATH = dg.AssetSelection.assets("brand_alerts").upstream() - dg.AssetSelection.assets("raw_posts", "post_scores")
# The dbt models that change with the window (tag `window`, dbt_project.yml).
WINDOW_MODELS = build_dbt_asset_selection([reputation_dbt_assets], dbt_select="tag:window")
ALERTS = dg.AssetSelection.checks_for_assets("brand_alerts")

# The live path (pipeline/live.py): each run does its whole micro-batch in one process
# (in_process_executor), so the models load once and dbt runs in that process, instead of a
# process per step, each loading the models and dbt again. scores_in_range is blocking: bad scores
# never reach the marts; the monitoring checks (null rate, drift) run with the catch-up. No dbt
# test on the live runs (seconds each): the catch-up runs every one of them as an asset check.
SCORES = dg.AssetSelection.assets("post_scores").without_checks() | dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey("post_scores"), "scores_in_range"))

live_job = dg.define_asset_job(
    LIVE_JOB,
    selection=SCORES | (WINDOW_MODELS | dg.AssetSelection.assets("brand_alerts")).without_checks() | ALERTS,
    executor_def=dg.in_process_executor,
    description="The live micro-batch of the daemon: scores of the freshly ingested hours within the alert horizon, "
    "the dbt models that change with the window (merging the new lake files) and alerts, in one run.",
)

live_full_job = dg.define_asset_job(
    LIVE_FULL_JOB,
    selection=SCORES | ALERT_PATH.without_checks() | ALERTS,
    executor_def=dg.in_process_executor,
    description="live_job with every dbt model and seed brand_alerts depends on: the first live run, and whenever "
    "the dbt project or the brands changed or a live run failed.",
)

catchup_job = dg.define_asset_job(
    CATCHUP_JOB,
    selection=SCORES | aggregation_job.selection,
    config=FULL_BUILD_CONFIG,
    executor_def=dg.in_process_executor,
    description="Catch-up on a slower cadence: scores of late hours, the full dbt build with every test, "
    "published marts and alerts (history only beyond the alert horizon) for a range of hours.",
)

live_pipeline_sensor = build_live_sensor([live_job, live_full_job, catchup_job])

pipeline_jobs = [scoring_job, aggregation_job, live_job, live_full_job, catchup_job]
