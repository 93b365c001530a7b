"""The ``dbt`` resource: dagster-dbt's ``DbtCliResource`` that runs ``dbt build`` in the
run's own process with the parsed manifest kept in memory (aggregation/dbt_inprocess.py),
and builds no separate dbt adapter for dagster-dbt (it only serves column-metadata /
row-count fetching, which these assets do not use)."""
import functools
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from pydantic import Field

from reputation_pipeline.aggregation.dbt_inprocess import common_args, parse_ahead, stream_build
from reputation_pipeline.aggregation.project import (DBT_ASSETS_NAME, DBT_PROJECT_DIR, dbt_executable, dbt_project,
                                                     state_target_path)
from reputation_pipeline.aggregation.translator import translator
from reputation_pipeline.aggregation.warehouse import released


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
        target_path = state_target_path(dbt_vars, DBT_ASSETS_NAME)
        return parse_ahead(self.dbt_executable, self._common_args(dbt_vars, target_path), target_path)


def dbt_resource(in_process: bool = True) -> DbtCliResource:
    return ReputationDbtCliResource(project_dir=dbt_project, profiles_dir=os.fspath(dbt_project.profiles_dir),
                                    target=dbt_project.target, dbt_executable=dbt_executable(), in_process=in_process)
