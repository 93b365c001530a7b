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
    description="dbt models, seeds and every dbt test (as asset checks), published marts and alerts for a range "
    "of hour partitions (one dbt invocation).",
)

# Everything brand_alerts needs, from the scores on: post_scores, and the dbt models and
# seeds upstream of brand_alerts (the whole dbt graph today, minus the tests).
ALERT_PATH = dg.AssetSelection.assets("brand_alerts").upstream() - dg.AssetSelection.assets("raw_posts")

micro_batch_job = dg.define_asset_job(
    "micro_batch_job",
    # the dbt tests are left to aggregation_job; the scores' own checks (scores_in_range
    # blocks bad scores from reaching the marts) and the alert outbox check stay
    selection=ALERT_PATH.without_checks() | dg.AssetSelection.checks_for_assets("post_scores", "brand_alerts"),
    description="The alert path for a range of freshly ingested hours, in one run: scores, the dbt models and "
    "seeds brand_alerts depends on (no dbt tests: aggregation_job runs them, with the published marts), alerts.",
)

pipeline_jobs = [scoring_job, aggregation_job, micro_batch_job]
