"""Ingest: Kafka topics drained exactly once into the raw-posts Parquet lake."""
