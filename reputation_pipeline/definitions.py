"""The code location: every stage's assets, checks, jobs, sensors and resources."""
import dagster as dg

from reputation_pipeline.aggregation import aggregation_assets, aggregation_resources
from reputation_pipeline.alerts import alerts_assets, alerts_checks, alerts_resources
from reputation_pipeline.ingest import ingest_assets, ingest_checks, ingest_jobs, ingest_sensors
from reputation_pipeline.ingest.kafka_client import kafka_resource_from_env
from reputation_pipeline.pipeline.freshness import with_freshness
from reputation_pipeline.pipeline.jobs import live_pipeline_sensor, pipeline_jobs
from reputation_pipeline.resources import default_lake_resource
from reputation_pipeline.scoring import scoring_assets, scoring_checks, scoring_resources


def build_defs(**resources) -> dg.Definitions:
    """The definitions, with resources bound from the environment unless given
    (tests and embedded drivers pass their own lake, brokers and topics)."""
    return dg.Definitions(
        assets=with_freshness([*ingest_assets, *scoring_assets, *aggregation_assets, *alerts_assets]),
        asset_checks=[*ingest_checks, *scoring_checks, *alerts_checks],
        jobs=[*ingest_jobs, *pipeline_jobs],
        sensors=[*ingest_sensors, live_pipeline_sensor],
        resources={
            "kafka": kafka_resource_from_env(),
            "lake": default_lake_resource(),
            **scoring_resources,
            **aggregation_resources,
            **alerts_resources,
            **resources,
        },
    )


defs = build_defs()
