"""Every place the project reaches into Dagster's private modules (``dagster._``), each
with what it buys, and a check of exactly the pieces it relies on, so a Dagster release
that moves one fails here, by name, before it fails in a run. A new private import
fails the inventory test until it is listed here with its reason.

| module | private piece | why (the measured figure or the failure it prevents) |
| --- | --- | --- |
| pipeline/storage.py | SQLite run and consolidated event-log storages, their connection helpers | one engine per storage: 0.4 s less bookkeeping per run on the alert path (bench/bench_instance.py) |
| pipeline/instance.py | InstanceRef, ConfigurableClassData, the no-op compute-log manager | no compute-log capture in the headless driver: four helper processes less per run, and no stdout swap between two threads |
| pipeline/launcher.py | CheckRunHealthResult, WorkerStatus | run monitoring fails a run whose process died (else it stays STARTED and holds its lane) |
| aggregation/cli_resource.py | dagster-dbt's `DbtCliResource._cli_version`, `._initialize_dbt_core_adapter`, `asset_utils.get_updated_cli_invocation_params_for_context` | `dbt --version` once per process and no adapter per run: 3-8 s a run; the run's selection for the in-process build |
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import dagster as dg

PACKAGE = Path(__file__).resolve().parents[1] / "reputation_pipeline"
PRIVATE = re.compile(r"(?:from|import)\s+(dagster\._[\w.]*)|\"(dagster\._[\w.]+)\"")

KNOWN = {
    "pipeline/storage.py": {"dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log",
                            "dagster._core.storage.runs.sqlite.sqlite_run_storage", "dagster._core.storage.sqlite"},
    "pipeline/instance.py": {"dagster._core.instance.ref", "dagster._serdes",
                             "dagster._core.storage.noop_compute_log_manager"},
    "pipeline/launcher.py": {"dagster._core.launcher.base"},
}


def test_the_private_dagster_imports_are_the_listed_ones():
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        names = {a or b for a, b in PRIVATE.findall(path.read_text())}
        if names:
            found[str(path.relative_to(PACKAGE))] = names
    assert found == KNOWN, "a private Dagster import changed: list it (and why) in this module"


def test_sqlite_storages_have_what_the_pooled_ones_override():
    from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
        SQLITE_EVENT_LOG_FILENAME, ConsolidatedSqliteEventLogStorage)
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string

    assert SQLITE_EVENT_LOG_FILENAME == "event_log" and SQLITE_BUSY_TIMEOUT_SECONDS > 0
    assert create_db_conn_string("/x", "runs").startswith("sqlite:///")
    # the constructors and hooks the subclasses call or replace
    assert list(inspect.signature(SqliteRunStorage.__init__).parameters)[:3] == ["self", "conn_string", "inst_data"]
    assert list(inspect.signature(ConsolidatedSqliteEventLogStorage.__init__).parameters)[:3] == [
        "self", "base_dir", "inst_data"]
    for cls, hooks in ((SqliteRunStorage, ("connect", "from_local", "dispose")),
                       (ConsolidatedSqliteEventLogStorage, ("_connect", "watch", "on_modified", "get_db_path",
                                                            "dispose"))):
        missing = [h for h in hooks if not callable(getattr(cls, h, None))]
        assert not missing, f"{cls.__name__} no longer has {missing}"
    # the state the pooled watch() fills in place of Dagster's own observer
    init = inspect.getsource(ConsolidatedSqliteEventLogStorage.__init__)
    assert "self._obs" in init and "self._watchers" in init


def test_an_instance_ref_can_swap_its_compute_log_manager_and_class(tmp_path):
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import ConfigurableClassData

    from reputation_pipeline.pipeline.instance import HeadlessInstance, headless_instance

    assert {"compute_logs_data", "custom_instance_class_data"} <= set(InstanceRef._fields)
    assert ConfigurableClassData("m", "C", "{}").class_name == "C"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as base:
        out = headless_instance(base)
        assert isinstance(out, HeadlessInstance)
        assert type(out.compute_log_manager).__name__ == "NoOpComputeLogManager"
        # HeadlessInstance overrides this hook of Dagster's (run-start logging configuration)
        assert callable(getattr(dg.DagsterInstance, "get_yaml_python_handlers", None))
        assert callable(getattr(dg.DagsterInstance, "get_python_log_dagster_handler_config", None))


def test_the_run_health_protocol_is_what_the_launcher_returns():
    from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

    from reputation_pipeline.pipeline.launcher import LocalRunLauncher

    assert {"RUNNING", "FAILED"} <= set(WorkerStatus.__members__)
    assert CheckRunHealthResult(WorkerStatus.FAILED, "gone").status == WorkerStatus.FAILED
    base = dg.DefaultRunLauncher
    assert isinstance(inspect.getattr_static(base, "supports_check_run_worker_health"), property)
    assert callable(getattr(base, "check_run_worker_health", None))
    assert LocalRunLauncher.supports_check_run_worker_health.fget(None) is True


def test_dagster_dbt_members_the_dbt_resource_overrides_or_calls():
    from dagster_dbt import DbtCliResource
    from dagster_dbt.asset_utils import DbtCliInvocationPartialParams, get_updated_cli_invocation_params_for_context

    from reputation_pipeline.aggregation.cli_resource import ReputationDbtCliResource, dbt_resource

    assert hasattr(DbtCliResource, "_cli_version") and hasattr(DbtCliResource, "_initialize_dbt_core_adapter")
    res = dbt_resource()
    assert isinstance(res, ReputationDbtCliResource)
    assert res._cli_version.major == 1 and res._initialize_dbt_core_adapter(["build"]) is None
    params = inspect.signature(get_updated_cli_invocation_params_for_context).parameters
    assert list(params)[:3] == ["context", "manifest", "dagster_dbt_translator"]
    fields = set(DbtCliInvocationPartialParams._fields)  # a NamedTuple the build reads by name
    assert {"selection_args", "indirect_selection", "dbt_project", "manifest", "dagster_dbt_translator"} <= fields
