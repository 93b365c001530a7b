"""dbt (DuckDB) as Dagster assets: the whole dbt_project/ is one hourly
partitioned multi-asset whose sources map onto the upstream ``raw_posts`` and
``post_scores`` assets, so dbt lineage joins the Dagster graph; dbt tests
become asset checks. A backfill of a range is one dbt invocation
(``BackfillPolicy.single_run``) over [min_date, max_date)."""

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from reputation_pipeline.aggregation.warehouse import DUCKDB_POOL, WarehouseResource
from reputation_pipeline.partitions import hourly_partitions
from reputation_pipeline.resources import LakeResource

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


def dbt_executable() -> str:
    """dbt from PATH, else the one installed beside this interpreter (a venv used
    without activation, e.g. `.venv/bin/python -m pytest`)."""
    found = shutil.which("dbt")
    if found:
        return found
    sibling = Path(sys.executable).parent / "dbt"
    if sibling.exists():
        # dagster-dbt's project preparer looks dbt up on PATH
        os.environ["PATH"] = f"{sibling.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return str(sibling)
    return "dbt"


DBT_EXECUTABLE = dbt_executable()

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")
# `dagster dev` re-parses on every load; elsewhere (a fresh clone, tests, a deployed
# code server without `dagster-dbt project prepare-and-package`) parse when the
# manifest is missing or older than the project, so definitions always match it.
def _manifest_stale() -> bool:
    """Missing, or older than any file of the dbt project (an edited model or test
    would otherwise run against asset definitions from an old manifest)."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(f.stat().st_mtime > built for sub in ("models", "seeds", "macros", "tests")
               for f in (DBT_PROJECT_DIR / sub).rglob("*") if f.is_file()) or \
        (DBT_PROJECT_DIR / "dbt_project.yml").stat().st_mtime > built


dbt_project.prepare_if_dev()
if _manifest_stale():
    dbt_project.preparer.prepare(dbt_project)


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


translator = ReputationDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    name="reputation_dbt",
    op_tags={"reputation/duckdb": "writer"},
)
def reputation_dbt_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, lake: LakeResource
):
    window = context.partition_time_window  # the whole range in a single-run backfill
    dbt_vars = warehouse.dbt_vars(lake.uri, window.start, window.end)
    context.log.info(f"dbt build over [{window.start}, {window.end}) into {dbt_vars['duckdb_path']}")
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, profiles_dir=os.fspath(DBT_PROJECT_DIR), target="dev",
                          dbt_executable=DBT_EXECUTABLE)
