"""The code location: every stage's assets, checks, jobs, sensors and resources."""
import dagster as dg

from reputation_pipeline.ingest import ingest_assets, ingest_checks, ingest_jobs, ingest_sensors
from reputation_pipeline.ingest.kafka_client import kafka_resource_from_env
from reputation_pipeline.resources import default_lake_resource

defs = dg.Definitions(
    assets=[*ingest_assets],
    asset_checks=[*ingest_checks],
    jobs=[*ingest_jobs],
    sensors=[*ingest_sensors],
    resources={
        "kafka": kafka_resource_from_env(),
        "lake": default_lake_resource(),
    },
)
