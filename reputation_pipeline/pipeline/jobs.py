"""Asset jobs over the stages (also launchable and backfillable from the UI)."""
import dagster as dg

from reputation_pipeline.aggregation import aggregation_assets
from reputation_pipeline.alerts import alerts_assets

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets("post_scores"),
    description="Score the posts of a range of hour partitions in one run (re-runs skip files already scored by the model version).",
)

aggregation_job = dg.define_asset_job(
    "aggregation_job",
    # dbt models and seeds (and their tests), published marts, alerts
    selection=dg.AssetSelection.assets(*aggregation_assets, *alerts_assets),
    description="dbt models, published marts and alerts for a range of hour partitions (one dbt invocation).",
)

pipeline_jobs = [scoring_job, aggregation_job]
