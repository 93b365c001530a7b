"""dbt's unit tests (``unit_tests:`` in dbt_project/models/*/_*_unit_tests.yml): the risk formula and
the alert rules on fixed rows, run for real against a temporary DuckDB; and no Dagster run executes
them (they check the SQL, not the data: the live micro-batches and the catch-up leave them out)."""
import json
from datetime import datetime, timezone

import dagster as dg

from reputation_pipeline.aggregation import dbt_resource
from reputation_pipeline.aggregation.assets import reputation_dbt_assets
from reputation_pipeline.aggregation.project import state_target_path
from reputation_pipeline.aggregation.sample_lake import SampleLakeSpec, write_sample_lake
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.pipeline.jobs import WINDOW_MODELS
from reputation_pipeline.resources import LakeResource

UNIT_TESTS = {
    "int_posts_scored_blends_scores_and_weighs_exposure",
    "int_brand_alert_rules_brand_rows_override_the_defaults",
    "fct_brand_risk_window_weighs_risk_by_exposure_per_window",
    "mart_brand_baselines_roll_over_the_previous_hours_with_data",
    "mart_alert_candidates_judge_each_rule_at_its_thresholds",
}


def dbt(args: list[str], lake: str, db: str, extra_vars: dict | None = None):
    """``dbt <args>`` on a warehouse of its own; returns (success, {unique_id: status}, invocation)."""
    dbt_vars = {**WarehouseResource(duckdb_path=db).dbt_vars(lake), **(extra_vars or {})}
    inv = dbt_resource().cli([*args, "--vars", json.dumps(dbt_vars)], raise_on_error=False)
    inv.wait()
    results = {r["unique_id"]: r["status"] for r in inv.get_artifact("run_results.json")["results"]}
    return inv.is_successful(), results, inv


def unit_results(results: dict) -> dict:
    return {uid.split(".")[-1]: status for uid, status in results.items() if uid.startswith("unit_test.")}


def test_dbt_unit_tests_pass_and_bind_the_formula(tmp_path):
    lake, db = str(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    # the unit tests read their inputs' columns from the warehouse: build the models they test and
    # everything upstream (an empty lake: no rows, every relation), without the data tests
    ok, results, _ = dbt(["build", "--select", "+test_type:unit", "--exclude", "test_type:data"], lake, db)
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    assert unit_results(results) == dict.fromkeys(UNIT_TESTS, "pass")

    # `dbt test --select test_type:unit` on the warehouse they built, as a developer runs them
    ok, results, _ = dbt(["test", "--select", "test_type:unit"], lake, db)
    assert ok and set(results) == {uid for uid in results if uid.startswith("unit_test.")}
    assert unit_results(results) == dict.fromkeys(UNIT_TESTS, "pass")

    # and they are not vacuous: another toxic threshold (not overridden by the window test) changes
    # toxic_mentions, which its expected rows pin
    ok, results, _ = dbt(["test", "--select", "fct_brand_risk_window_weighs_risk_by_exposure_per_window"],
                         lake, db, extra_vars={"toxic_threshold": 0.8})
    assert not ok and unit_results(results) == {"fct_brand_risk_window_weighs_risk_by_exposure_per_window": "fail"}


T0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
TAGS = {"dagster/asset_partition_range_start": "2026-11-20-00:00",
        "dagster/asset_partition_range_end": "2026-11-20-00:00"}


def test_dagster_runs_no_dbt_unit_test(tmp_path):
    """The full build (aggregation_job, catchup_job: every model and dbt test) and the live
    micro-batch's window models (live_job, no dbt test), dbt in the run's process and as a subprocess:
    dbt's own log of each invocation names no unit test. (dagster-dbt selects a model by its FQN,
    which also selects the model's unit tests, even with indirect selection off as on the live path.)"""
    lake, db = str(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    write_sample_lake(open_lake(lake), SampleLakeSpec(start=T0, hours=1, crisis_brand=None))
    warehouse = WarehouseResource(duckdb_path=db)
    log = state_target_path(warehouse.dbt_vars(lake), reputation_dbt_assets.op.name) / "dbt.log"
    instance = dg.DagsterInstance.ephemeral()
    live = WINDOW_MODELS.without_checks()
    for selection, merge, in_process in ((None, False, True), (live, True, True), (live, True, False)):
        resources = {"dbt": dbt_resource(in_process=in_process), "warehouse": warehouse,
                     "lake": LakeResource(uri=lake)}
        seen = log.stat().st_size if log.exists() else 0
        result = dg.materialize([reputation_dbt_assets], resources=resources, tags=TAGS, instance=instance,
                                selection=selection, raise_on_error=False,
                                run_config={"ops": {"reputation_dbt": {"config": {"merge_new_files": merge}}}})
        assert result.success
        with open(log, encoding="utf-8") as f:
            f.seek(seen)
            text = f.read()
        assert "model.reputation.fct_brand_risk_window" in text  # this invocation's log
        assert "unit_test." not in text
