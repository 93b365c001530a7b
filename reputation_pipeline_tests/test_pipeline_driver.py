"""Pure parts of the headless driver."""
from reputation_pipeline.pipeline.driver import contiguous_ranges


def test_touched_hours_group_into_contiguous_ranges():
    hours = {"2026-11-26-03:00", "2026-11-26-04:00", "2026-11-26-06:00", "2026-11-20-01:00"}
    assert contiguous_ranges(hours) == [("2026-11-20-01:00", "2026-11-20-01:00"),
                                        ("2026-11-26-03:00", "2026-11-26-06:00")]
    assert contiguous_ranges(hours, max_gap_hours=1) == [("2026-11-20-01:00", "2026-11-20-01:00"),
                                                         ("2026-11-26-03:00", "2026-11-26-04:00"),
                                                         ("2026-11-26-06:00", "2026-11-26-06:00")]
    assert contiguous_ranges({"2026-12-31-23:00", "2027-01-01-00:00"}) == [("2026-12-31-23:00", "2027-01-01-00:00")]


def test_only_hours_that_can_still_page_are_on_the_alert_path():
    from datetime import datetime, timezone

    from reputation_pipeline.pipeline.driver import split_by_horizon

    horizon = datetime(2026, 11, 26, 6, 30, tzinfo=timezone.utc)
    touched = {"2026-11-26-07:00", "2026-11-26-06:00", "2026-11-26-05:00", "2026-11-20-01:00"}
    live, late = split_by_horizon(touched, horizon)
    # the 06:00 window ends at 07:00, after the horizon: its alerts may still be published
    assert live == {"2026-11-26-07:00", "2026-11-26-06:00"}
    assert late == {"2026-11-26-05:00", "2026-11-20-01:00"}
    assert split_by_horizon(touched, None) == (touched, set())  # publishing history: everything


def test_micro_batch_job_is_the_alert_path_without_dbt_tests():
    """micro_batch_job: scores, every dbt model and seed brand_alerts depends on and the
    alerts, with the scores' and outbox checks but no dbt test; aggregation_job keeps every
    dbt test as an asset check (the UI shows them on the regular runs)."""
    from reputation_pipeline.definitions import defs

    micro = defs.resolve_job_def("micro_batch_job").asset_layer.asset_graph
    full = defs.resolve_job_def("aggregation_job").asset_layer.asset_graph
    micro_assets = {k.to_user_string() for k in micro.executable_asset_keys}
    assert {"post_scores", "stg_posts", "fct_brand_mentions", "fct_brand_risk_window", "mart_alert_candidates",
            "brands", "brand_alerts"} <= micro_assets
    assert "published_marts" not in micro_assets and "raw_posts" not in micro_assets
    micro_checks = {k.name for k in micro.asset_check_keys}
    assert micro_checks == {"scores_in_range", "scores_null_rate", "label_drift", "alert_outbox_drained"}
    full_checks = {k.name for k in full.asset_check_keys}
    assert "not_null_stg_posts_post_id" in full_checks and len(full_checks) > 50


def test_dbt_resource_hooks_exist():
    """ReputationDbtCliResource overrides two private members of dagster-dbt's resource
    (dbt version asked once per process, no in-process adapter): fail loudly if an
    upgrade renames them."""
    from dagster_dbt import DbtCliResource

    from reputation_pipeline.aggregation.dbt import ReputationDbtCliResource, dbt_resource

    assert hasattr(DbtCliResource, "_cli_version") and hasattr(DbtCliResource, "_initialize_dbt_core_adapter")
    res = dbt_resource()
    assert isinstance(res, ReputationDbtCliResource)
    assert res._cli_version.major == 1 and res._initialize_dbt_core_adapter(["build"]) is None


def test_dbt_window_reaches_dbt_through_the_environment_only_for_the_invocation():
    import os
    from datetime import datetime, timezone

    from reputation_pipeline.aggregation.dbt import WINDOW_ENV, state_target_path, window_env

    start, end = datetime(2026, 11, 26, 6, tzinfo=timezone.utc), datetime(2026, 11, 26, 8, tzinfo=timezone.utc)
    before = {k: os.environ.get(k) for k in WINDOW_ENV.values()}
    with window_env(start, end):
        assert os.environ[WINDOW_ENV["min_date"]] == "2026-11-26T06:00:00+00:00"
        assert os.environ[WINDOW_ENV["max_date"]] == "2026-11-26T08:00:00+00:00"
    assert {k: os.environ.get(k) for k in WINDOW_ENV.values()} == before
    # one target folder per warehouse, so dbt's partial parsing carries over between runs
    a = state_target_path({"lake_root": "/a", "duckdb_path": "/a/w.duckdb"}, "reputation_dbt")
    assert a == state_target_path({"duckdb_path": "/a/w.duckdb", "lake_root": "/a"}, "reputation_dbt")
    assert a != state_target_path({"lake_root": "/b", "duckdb_path": "/b/w.duckdb"}, "reputation_dbt")
