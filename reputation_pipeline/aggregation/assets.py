"""dbt (DuckDB) as Dagster assets: the whole dbt_project/ is one hourly
partitioned multi-asset whose sources map onto the upstream ``raw_posts`` and
``post_scores`` assets, so dbt lineage joins the Dagster graph; dbt tests
become asset checks. A backfill of a range is one dbt invocation
(``BackfillPolicy.single_run``) over [min_date, max_date).

Per-invocation costs are kept off the alert path (docs/aggregation.md, "Speed"):
the partition window reaches dbt through the environment (aggregation/dbt_env.py,
read only at execution, see macros/lake.sql ``window_bound``), and every warehouse
keeps one dbt target folder (aggregation/project.py ``state_target_path``), so dbt's
partial parsing stays valid from one micro-batch to the next instead of re-parsing
the whole project; dbt runs in the run's own process (aggregation/cli_resource.py)."""
import contextlib
import json
from collections.abc import Iterator

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field

from reputation_pipeline.aggregation.brands import BrandListError, brands_csv, check_brand_list
from reputation_pipeline.aggregation.dbt_env import window_env
from reputation_pipeline.aggregation.merge import plan_merge, record_merge, window_loaded
from reputation_pipeline.aggregation.project import (DBT_ASSETS_NAME, DBT_PROJECT_DIR, WindowModel, dbt_project,
                                                     prepare_manifest, state_target_path, window_models)
from reputation_pipeline.aggregation.reference import reference_fingerprint
from reputation_pipeline.aggregation.translator import translator
from reputation_pipeline.aggregation.warehouse import DUCKDB_POOL, WarehouseResource
from reputation_pipeline.partitions import hourly_partitions
from reputation_pipeline.resources import LakeResource


class DbtBuildConfig(dg.Config):
    merge_new_files: bool = Field(
        default=True,
        description="Merge into the window's tables only the lake files not merged yet, instead of rebuilding "
        "the window from every file (the same rows; aggregation/merge.py falls back to a rebuild when a merge "
        "is not safe). false: rebuild the window, as aggregation_job does.",
    )


@dbt_assets(
    manifest=prepare_manifest(),  # dagster-dbt reads the manifest here, when the assets are defined
    project=dbt_project,
    dagster_dbt_translator=translator,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    name=DBT_ASSETS_NAME,
    op_tags={"reputation/duckdb": "writer"},
)
def reputation_dbt_assets(
    context: dg.AssetExecutionContext, config: DbtBuildConfig, dbt: DbtCliResource, warehouse: WarehouseResource,
    lake: LakeResource,
):
    try:  # on every build: the live runs read the brand list without rebuilding or testing stg_brands
        check_brand_list(brands_csv(DBT_PROJECT_DIR))
    except BrandListError as err:
        raise dg.Failure(str(err)) from None
    # dbt in this process: the step opens the warehouse once for the plan, dbt and the record
    with warehouse.held(lake.uri) if getattr(dbt, "in_process", False) else contextlib.nullcontext():
        yield from _build_window(context, config, dbt, warehouse, lake)


def _keys(models: tuple[WindowModel, ...]) -> frozenset[dg.AssetKey]:
    return frozenset(translator.get_asset_key(m.node) for m in models)


WINDOW_TABLE_KEYS = _keys(window_models().tables)
BASE_KEYS = _keys(window_models().base_tables)
BASE_READER_KEYS = _keys(window_models().base_readers)


def _build_window(context: dg.AssetExecutionContext, config: DbtBuildConfig, dbt: DbtCliResource,
                  warehouse: WarehouseResource, lake: LakeResource) -> Iterator:
    window = context.partition_time_window  # the whole range in a single-run backfill
    dbt_vars = warehouse.dbt_vars(lake.uri)  # constant per deployment: partial parsing stays valid
    context.log.info(f"dbt build over [{window.start}, {window.end}) into {dbt_vars['duckdb_path']}")
    # The run's selection decides what is built: every model, seed and test (aggregation_job),
    # or the models and seeds on the alert path without the tests (live_job, live_full_job).
    target_path = state_target_path(dbt_vars, context.op_execution_context.op.name)
    plan, fingerprint = None, ""
    selected = context.selected_asset_keys
    if BASE_READER_KEYS & selected and not BASE_KEYS <= selected:
        # the staging views read the base tables, which keep recent windows only: a run that
        # rebuilds the marts without reloading them must find the window there
        with contextlib.closing(warehouse.connect(lake.uri)) as conn:
            if not window_loaded(conn, window.start, window.end):
                base = " / ".join(m.name for m in window_models().base_tables)
                raise dg.Failure(f"{base} do not hold [{window.start}, {window.end}): "
                                 "materialize them in the same run (select the models' upstream dbt assets too)")
    if WINDOW_TABLE_KEYS <= selected:  # the window's tables
        fingerprint = reference_fingerprint() + json.dumps(dict(dbt_vars), sort_keys=True)
        with contextlib.closing(warehouse.connect(lake.uri)) as conn:
            plan = plan_merge(conn, lake.open(), window.start, window.end, fingerprint, allow=config.merge_new_files)
        context.log.info(plan.describe())
    # No dbt unit test in any run: they check the SQL on fixed rows, not the data (CI runs them,
    # reputation_pipeline_tests/test_dbt_unit.py), and one that fails skips its model. dagster-dbt
    # selects a model by its FQN, which also names the model's unit tests, whatever the indirect
    # selection: without this, every micro-batch would run fct_brand_risk_window's.
    extra = ["--exclude-resource-type", "unit_test"]
    # A merge touches the window's few tables: dbt looks each up when it needs it instead of
    # listing every relation of the schemas first (0.1 s of a micro-batch's step)
    if plan is not None and plan.merge:
        extra.append("--no-populate-cache")
    # read by dbt while it executes (macros/lake.sql)
    with window_env(window.start, window.end, plan.env() if plan else None):
        yield from dbt.build(context, dbt_vars, target_path, extra_args=extra)
    if plan is not None:  # dbt succeeded: these files are in the marts now
        with contextlib.closing(warehouse.connect(lake.uri)) as conn:
            record_merge(conn, plan, fingerprint)
