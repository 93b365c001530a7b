"""Pure parts of the live path (pipeline/live.py) and the jobs it runs."""
from reputation_pipeline.pipeline.live import contiguous_ranges


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

    from reputation_pipeline.pipeline.live import split_by_horizon

    horizon = datetime(2026, 11, 26, 6, 30, tzinfo=timezone.utc)
    touched = {"2026-11-26-07:00", "2026-11-26-06:00", "2026-11-26-05:00", "2026-11-20-01:00"}
    live, late = split_by_horizon(touched, horizon)
    # the 06:00 window ends at 07:00, after the horizon: its alerts may still be published
    assert live == {"2026-11-26-07:00", "2026-11-26-06:00"}
    assert late == {"2026-11-26-05:00", "2026-11-20-01:00"}
    assert split_by_horizon(touched, None) == (touched, set())  # publishing history: everything


def test_live_jobs_split_the_alert_path_without_dbt_tests():
    """live_job: the scores with their blocking range check, the dbt models tagged `window` and
    the alerts; live_full_job: the scores, every dbt model and seed brand_alerts depends on, and
    the alerts; neither runs a dbt test. catchup_job keeps every dbt test as an asset check, the
    scores' monitoring checks and the published marts. All run their steps in one process."""
    from reputation_pipeline.definitions import defs

    def graph(job):
        g = defs.resolve_job_def(job).asset_layer.asset_graph
        return {k.to_user_string() for k in g.executable_asset_keys}, {k.name for k in g.asset_check_keys}

    live, live_checks = graph("live_job")
    assert live == {"post_scores", "base_raw_posts", "base_post_scores", "stg_posts", "stg_post_scores", "fct_posts",
                    "fct_brand_mentions", "fct_brand_risk_window", "brand_alerts"}
    assert live_checks == {"scores_in_range", "alert_outbox_drained"}
    full, full_checks = graph("live_full_job")
    assert live | {"mart_alert_candidates", "int_posts_scored", "brands", "alert_rules"} <= full
    assert not full & {"raw_posts", "published_marts"} and full_checks == live_checks
    catchup, catchup_checks = graph("catchup_job")
    assert full | {"published_marts"} <= catchup
    assert "not_null_stg_posts_post_id" in catchup_checks and len(catchup_checks) > 50
    assert {"scores_null_rate", "label_drift", "scores_in_range"} <= catchup_checks
    for job in ("live_job", "live_full_job", "catchup_job", "ingest_job"):
        assert defs.resolve_job_def(job).executor_def.name == "in_process"


def test_reference_fingerprint_follows_seeds_and_brands_override(tmp_path, monkeypatch):
    import shutil

    from reputation_pipeline.aggregation.project import DBT_PROJECT_DIR
    from reputation_pipeline.aggregation.reference import reference_fingerprint

    project = tmp_path / "dbt"
    for part in ("models", "seeds", "macros"):
        shutil.copytree(DBT_PROJECT_DIR / part, project / part)
    shutil.copy(DBT_PROJECT_DIR / "dbt_project.yml", project)
    before = reference_fingerprint(project)
    assert reference_fingerprint(project) == before
    with open(project / "seeds" / "alert_silences.csv", "a") as f:
        f.write("acme,risk_threshold,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,test\n")
    edited = reference_fingerprint(project)
    assert edited != before
    monkeypatch.setenv("REPUTATION_BRANDS_CSV", str(tmp_path / "brands.csv"))
    assert reference_fingerprint(project) != edited


def test_headless_instance_shares_storage_without_capture_or_dictconfig():
    import dagster as dg
    from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

    from reputation_pipeline.pipeline.instance import headless_instance

    with dg.instance_for_test() as instance:
        h = headless_instance(instance)
        assert isinstance(h.compute_log_manager, NoOpComputeLogManager)
        assert h.root_directory == instance.root_directory
        assert h.get_yaml_python_handlers() == []


def test_dbt_window_reaches_dbt_through_the_environment_only_for_the_invocation():
    import os
    from datetime import datetime, timezone

    from reputation_pipeline import settings
    from reputation_pipeline.aggregation.dbt_env import window_env
    from reputation_pipeline.aggregation.project import state_target_path

    window = {"min_date": settings.DBT_MIN_DATE.name, "max_date": settings.DBT_MAX_DATE.name}

    start, end = datetime(2026, 11, 26, 6, tzinfo=timezone.utc), datetime(2026, 11, 26, 8, tzinfo=timezone.utc)
    before = {k: os.environ.get(k) for k in window.values()}
    with window_env(start, end):
        assert os.environ[window["min_date"]] == "2026-11-26T06:00:00+00:00"
        assert os.environ[window["max_date"]] == "2026-11-26T08:00:00+00:00"
    assert {k: os.environ.get(k) for k in window.values()} == before
    # one target folder per warehouse, so dbt's partial parsing carries over between runs
    a = state_target_path({"lake_root": "/a", "duckdb_path": "/a/w.duckdb"}, "reputation_dbt")
    assert a == state_target_path({"duckdb_path": "/a/w.duckdb", "lake_root": "/a"}, "reputation_dbt")
    assert a != state_target_path({"lake_root": "/b", "duckdb_path": "/b/w.duckdb"}, "reputation_dbt")


def test_the_code_location_imports_without_torch():
    """Every Dagster run process (ingest runs too), the code server and each sensor evaluation
    import the code location: torch (1.2-2 s of it) loads only where a step scores."""
    import subprocess
    import sys

    code = ("import sys, warnings; warnings.simplefilter('ignore'); import reputation_pipeline.definitions; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
