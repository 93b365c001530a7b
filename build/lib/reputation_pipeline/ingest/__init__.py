"""Ingest: Kafka topics drained exactly once into the raw-posts Parquet lake."""
from reputation_pipeline.ingest.assets import ingest_job, quarantined_posts, raw_posts
from reputation_pipeline.ingest.checks import offset_ranges_contiguous
from reputation_pipeline.ingest.sensors import kafka_posts_sensor

ingest_assets = [raw_posts, quarantined_posts]
ingest_checks = [offset_ranges_contiguous]
ingest_jobs = [ingest_job]
ingest_sensors = [kafka_posts_sensor]

__all__ = ["ingest_assets", "ingest_checks", "ingest_jobs", "ingest_sensors"]
