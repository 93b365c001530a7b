"""dbt-duckdb plugin (``plugins:`` in dbt_project/profiles.yml): the S3 settings, on
each DuckDB cursor dbt opens, only when the lake is on S3.

Setting any ``s3_*`` option makes DuckDB load its httpfs extension, about 85 ms per
dbt invocation on a 2-core machine, and a micro-batch is one invocation; a local lake
never needs it. The values come from the profile (the environment), not from data.

It lives in ``lake`` rather than ``aggregation`` because a ``dbt`` process imports it:
from ``aggregation`` that import loads dagster-dbt and the project's definitions into
dbt's own process, and the build then failed with dbt's global flags gone
("'Namespace' object has no attribute 'STORE_FAILURES'")."""
from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

S3_SETTINGS = ("s3_endpoint", "s3_use_ssl", "s3_url_style", "s3_region", "s3_access_key_id",
               "s3_secret_access_key", "s3_session_token")


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.on_s3 = str(plugin_config.get("lake_root") or "").startswith("s3://")
        self.settings = {k: plugin_config[k] for k in S3_SETTINGS if k in plugin_config}

    def configure_cursor(self, cursor) -> None:
        if self.on_s3:
            for name, value in self.settings.items():  # names from the fixed list above
                cursor.execute(f"SET {name} = {_literal(value)}")
