"""dbt (DuckDB) as Dagster assets: the whole dbt_project/ is one hourly
partitioned multi-asset whose sources map onto the upstream ``raw_posts`` and
``post_scores`` assets, so dbt lineage joins the Dagster graph; dbt tests
become asset checks. A backfill of a range is one dbt invocation
(``BackfillPolicy.single_run``) over [min_date, max_date).

Per-invocation costs are kept off the alert path (docs/aggregation.md, "Speed"):
the partition window reaches dbt through the environment (read only at
execution, see macros/lake.sql ``window_bound``), and every warehouse keeps one
dbt target folder, so dbt's partial parsing stays valid from one micro-batch to
the next instead of re-parsing the whole project; dbt runs in the run's own
process with the parsed manifest kept in memory (dbt_inprocess.py), and no
separate dbt adapter is built for dagster-dbt (it only serves column-metadata /
row-count fetching, which these assets do not use)."""

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from pydantic import Field

from reputation_pipeline.aggregation.brands import BrandListError, brands_csv, check_brand_list
from reputation_pipeline.aggregation.dbt_inprocess import common_args, parse_ahead, stream_build
from reputation_pipeline.aggregation.merge import (BASE_TABLES, MERGE_ENV, RAW_FILES_ENV, WINDOW_TABLES, plan_merge,
                                                   record_merge, window_loaded)
from reputation_pipeline.aggregation.warehouse import DUCKDB_POOL, WarehouseResource, released
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


BASE_KEYS = {dg.AssetKey(name) for _, name in BASE_TABLES}
# the models that read the base tables (directly or through the staging views) and rebuild rows from them
BASE_READERS = {dg.AssetKey(name) for name in ("stg_posts", "stg_post_scores", "fct_posts", "fct_brand_mentions")}


class DbtBuildConfig(dg.Config):
    merge_new_files: bool = Field(
        default=True,
        description="Merge into the window's tables only the lake files not merged yet, instead of rebuilding "
        "the window from every file (the same rows; aggregation/merge.py falls back to a rebuild when a merge "
        "is not safe). false: rebuild the window, as aggregation_job does.",
    )


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
    if BASE_READERS & selected and not BASE_KEYS <= selected:
        # the staging views read the base tables, which keep recent windows only: a run that
        # rebuilds the marts without reloading them must find the window there
        with contextlib.closing(warehouse.connect(lake.uri)) as conn:
            if not window_loaded(conn, window.start, window.end):
                raise dg.Failure(f"base_raw_posts / base_post_scores do not hold [{window.start}, {window.end}): "
                                 "materialize them in the same run (select the models' upstream dbt assets too)")
    if {dg.AssetKey(name) for _, name in WINDOW_TABLES} <= selected:  # the window's tables
        from reputation_pipeline.aggregation.reference import reference_fingerprint

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


WINDOW_ENV = {"min_date": "REPUTATION_DBT_MIN_DATE", "max_date": "REPUTATION_DBT_MAX_DATE"}


@contextlib.contextmanager
def window_env(start: datetime, end: datetime, extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """The partition window for the dbt process started inside the block (macros/lake.sql
    ``window_bound`` reads it at execution time), and the new files of a merge
    (``MERGE_ENV``, unset for a full build). Restored afterwards."""
    values = {WINDOW_ENV["min_date"]: start.isoformat(), WINDOW_ENV["max_date"]: end.isoformat(),
              MERGE_ENV: "", RAW_FILES_ENV: "", **(extra or {})}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def state_target_path(dbt_vars: Mapping[str, Any], name: str) -> Path:
    """One dbt target folder per warehouse (lake, DuckDB file, extension folder): its
    partial_parse.msgpack carries over to the next invocation. dagster-dbt's default is a
    fresh folder per invocation, seeded from the project's parse (made without these
    vars), so every run would re-parse everything. Invocations on one warehouse never
    overlap: they all run in the ``duckdb`` pool (limit 1)."""
    key = hashlib.sha256(json.dumps(dict(dbt_vars), sort_keys=True).encode()).hexdigest()[:12]
    return dbt_project.project_dir / "target" / f"{name}-state-{key}"


@functools.lru_cache(maxsize=None)
def _dbt_cli_version(executable: str) -> str:
    out = subprocess.check_output([executable, "--version"]).decode("utf-8")
    return out


class ReputationDbtCliResource(DbtCliResource):
    """``DbtCliResource`` without two per-invocation costs that this project does not need
    (together 3-8 s per run on a 2-core machine): ``dbt --version`` is run once per
    process instead of once per run (the resource is re-created for every run), and no
    in-process dbt adapter is initialized (dagster-dbt builds one on every ``cli`` call,
    loading every macro, only for ``fetch_column_metadata`` / ``fetch_row_counts``).
    Pinned with dagster-dbt 0.29.27; test_pipeline_driver.py checks both hooks exist.

    ``build`` runs dbt in this process by default (``in_process``): the manifest stays
    parsed in memory and no interpreter starts per run (aggregation/dbt_inprocess.py)."""

    in_process: bool = Field(
        default=True,
        description="Run `dbt build` in the run's process with the parsed manifest kept in memory (seconds "
        "faster per run); false: a `dbt` subprocess per run, as DbtCliResource.cli does.",
    )

    @functools.cached_property
    def _cli_version(self):
        import re

        from packaging import version

        match = re.search(r"(\d+\.\d+\.\d+)", _dbt_cli_version(self.dbt_executable))
        if not match:
            return super()._cli_version
        return version.parse(match.group(1))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):
        return None

    def build(self, context: dg.AssetExecutionContext, dbt_vars: Mapping[str, Any], target_path: Path,
              extra_args: Sequence[str] = ()) -> Iterator:
        """``dbt build`` of the run's selection (plus ``extra_args``): in this process with the
        manifest kept in memory (``in_process``, aggregation/dbt_inprocess.py), else as a
        ``dbt`` subprocess."""
        if self.in_process:
            # the selection for the run's subset, as DbtCliResource.cli computes it (manifest and
            # translator come from the context's assets definition)
            params = get_updated_cli_invocation_params_for_context(context=context, manifest={},
                                                                     dagster_dbt_translator=translator)
            # over 200 selected nodes, dagster-dbt writes a selector into a temporary project copy:
            # that one runs as a subprocess
            if not params.dbt_project or Path(params.dbt_project.project_dir) == DBT_PROJECT_DIR:
                # no manifest.json / run_results.json per run (0.3-0.6 s): the results are in
                # Dagster's event log, the parse wrote the manifest, target/dbt.log keeps dbt's log
                args = ["build", *params.selection_args, "--no-send-anonymous-usage-stats", "--no-write-json",
                        "--no-use-colors",  # plain log lines on stdout, as the subprocess's were
                        *extra_args,
                        *(["--indirect-selection", params.indirect_selection] if params.indirect_selection else [])]
                shared = self._common_args(dbt_vars, target_path)
                yield from stream_build(context, args=args, shared=shared, manifest_json=params.manifest,
                                        translator=params.dagster_dbt_translator, project=dbt_project,
                                        target_path=target_path)
                return
        # a subprocess cannot open a warehouse this process holds
        with released(str(dbt_vars["duckdb_path"])):
            yield from self.cli(["build", "--vars", json.dumps(dict(dbt_vars)), *extra_args], context=context,
                                target_path=target_path).stream()

    def _common_args(self, dbt_vars: Mapping[str, Any], target_path: Path) -> list[str]:
        return common_args(project_dir=DBT_PROJECT_DIR, profiles_dir=self.profiles_dir or os.fspath(DBT_PROJECT_DIR),
                           target=self.target, target_path=target_path, dbt_vars=dbt_vars)

    def parse_ahead(self, dbt_vars: Mapping[str, Any]) -> bool:
        """Start parsing the project for this warehouse in a subprocess, for the first in-process
        build to read (aggregation/dbt_inprocess.py ``parse_ahead``); False when there is nothing
        to gain (dbt runs as a subprocess, or the warehouse's target folder has a parse)."""
        if not self.in_process:
            return False
        target_path = state_target_path(dbt_vars, reputation_dbt_assets.op.name)
        return parse_ahead(self.dbt_executable, self._common_args(dbt_vars, target_path), target_path)


def dbt_resource(in_process: bool = True) -> DbtCliResource:
    return ReputationDbtCliResource(project_dir=dbt_project, profiles_dir=os.fspath(DBT_PROJECT_DIR), target="dev",
                                    dbt_executable=DBT_EXECUTABLE, in_process=in_process)
