"""Asset jobs over the stages (also launchable and backfillable from the UI)."""
import dagster as dg

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets("post_scores"),
    description="Score the posts of an hour partition (re-runs skip files already scored by the model version).",
)

aggregation_job = dg.define_asset_job(
    "aggregation_job",
    # everything downstream of the scores: dbt models (and their tests), published marts, alerts
    selection=dg.AssetSelection.assets("post_scores").downstream(include_self=False),
    description="dbt models, published marts and alerts for a range of hour partitions (one dbt invocation).",
)

pipeline_jobs = [scoring_job, aggregation_job]
