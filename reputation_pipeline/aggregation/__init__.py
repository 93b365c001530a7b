"""Aggregation: the dbt project (dbt_project/) as Dagster assets over the lake,
the DuckDB warehouse resource, and the export of the marts to <lake>/published/."""
from reputation_pipeline.aggregation.assets import reputation_dbt_assets
from reputation_pipeline.aggregation.cli_resource import dbt_resource
from reputation_pipeline.aggregation.project import dbt_project
from reputation_pipeline.aggregation.publish import published_marts
from reputation_pipeline.aggregation.warehouse import DUCKDB_POOL, WarehouseResource, warehouse_resource_from_env

# dbt tests are asset checks of reputation_dbt_assets (part of its definition): no other checks
aggregation_assets = [reputation_dbt_assets, published_marts]
aggregation_resources = {"dbt": dbt_resource(), "warehouse": warehouse_resource_from_env()}

__all__ = ["aggregation_assets", "aggregation_resources", "dbt_project", "dbt_resource", "reputation_dbt_assets",
           "DUCKDB_POOL", "WarehouseResource"]
