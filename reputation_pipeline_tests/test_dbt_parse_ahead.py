"""A new warehouse's first dbt build reads the parse started ahead for it
(aggregation/dbt_inprocess.py ``parse_ahead``) instead of parsing the whole
project on the alert path. Real dbt: a `dbt parse` subprocess, then dbt in process."""
from pathlib import Path

import dagster as dg

from reputation_pipeline.aggregation import dbt_inprocess, dbt_resource
from reputation_pipeline.aggregation.assets import reputation_dbt_assets
from reputation_pipeline.aggregation.project import DBT_PROJECT_DIR, state_target_path
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.pipeline.driver import Driver
from reputation_pipeline.resources import LakeResource

FULL_PARSE = "Unable to do partial parsing"
PARTIAL_PARSE = "Partial parsing enabled"


def test_the_first_in_process_parse_waits_for_the_parse_ahead_and_reads_it(tmp_path):
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "warehouse.duckdb"))
    dbt = dbt_resource()
    dbt_vars = warehouse.dbt_vars(str(tmp_path / "lake"))
    target = state_target_path(dbt_vars, reputation_dbt_assets.op.name)
    assert not (target / "partial_parse.msgpack").exists()

    assert dbt.parse_ahead(dbt_vars)
    assert not dbt.parse_ahead(dbt_vars)  # one parse per target folder at a time
    # straight away, as the first build would: it waits for the subprocess rather than parse alongside it
    shared = dbt._common_args(dbt_vars, target)
    with dbt_inprocess._LOCK:
        assert dbt_inprocess.parsed_manifest(shared, DBT_PROJECT_DIR) is not None
    assert not dbt_inprocess._AHEAD

    log = (target / "dbt.log").read_text()
    # the subprocess parsed in full (a new folder), dbt in process then only read its parse
    assert log.count(FULL_PARSE) == 1, log[-3000:]
    assert log.rfind(PARTIAL_PARSE) > log.find(FULL_PARSE)
    # a warehouse whose folder has a parse gets none ahead
    assert not dbt.parse_ahead(dbt_vars)
    assert not dbt_resource(in_process=False).parse_ahead(warehouse.dbt_vars(str(tmp_path / "other-lake")))


def test_the_driver_parses_ahead_for_a_new_warehouse_only(tmp_path):
    logs: list[str] = []
    defs = dg.Definitions(resources={"dbt": dbt_resource(), "lake": LakeResource(uri=str(tmp_path / "lake")),
                                     "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb"))})
    driver = Driver(defs, dg.DagsterInstance.ephemeral(), log=logs.append)
    driver.parse_dbt_ahead()
    assert logs == ["dbt: parsing the project ahead for a new warehouse"]
    dbt_inprocess.finish_parse_ahead()
    dbt_vars = WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb")).dbt_vars(str(tmp_path / "lake"))
    assert Path(state_target_path(dbt_vars, reputation_dbt_assets.op.name), "partial_parse.msgpack").exists()
    driver.parse_dbt_ahead()
    assert len(logs) == 1
