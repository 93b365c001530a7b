"""reputation_pipeline: social posts -> Parquet lake -> scores -> dbt risk -> alerts."""
__version__ = "0.1.0"
