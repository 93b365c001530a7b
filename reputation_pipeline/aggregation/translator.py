"""How dbt nodes become Dagster assets: keys and groups."""
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings


class ReputationDbtTranslator(DagsterDbtTranslator):
    """Groups by dbt folder (staging / intermediate / marts / seeds); source asset
    keys come from ``meta.dagster.asset_key`` in models/staging/_sources.yml;
    models and seeds are keyed by their bare name (``fct_brand_risk_window``), the
    dbt schema being a storage detail."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta_key = ((dbt_resource_props.get("meta") or {}).get("dagster") or {}).get("asset_key")
        if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot") and not meta_key:
            return dg.AssetKey([dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") == "seed":
            return "dbt_seeds"
        fqn = dbt_resource_props.get("fqn") or []
        if len(fqn) > 2 and fqn[1] in ("staging", "intermediate", "marts"):
            return f"dbt_{fqn[1]}"
        return "dbt"


# dbt tests become asset checks of the dbt assets
translator = ReputationDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
