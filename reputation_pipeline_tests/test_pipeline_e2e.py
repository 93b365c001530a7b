"""The whole chain on the real broker through the headless executor of the sensors
(pipeline/driver.py): posts with a crisis for one brand go through kafka_posts_sensor,
ingest, live_pipeline_sensor, scoring, dbt and alerts; alerts arrive on Kafka for that
brand only, and re-running the alert asset publishes nothing new."""
import io
import json

import dagster as dg
import pytest

from reputation_pipeline.alerts.cli import tail
from reputation_pipeline.alerts.publisher import AlertPublisherResource
from reputation_pipeline.ingest.kafka_client import KafkaResource
from reputation_pipeline.ingest.produce import produce
from reputation_pipeline.resources import LakeResource

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RISK_RULES_IGNORED = {"no_data"}  # 'no data' is about ingest health, not brand risk


def _alerts(kafka_settings, topic) -> list[dict]:
    out = io.StringIO()
    tail(kafka_settings, topic, from_beginning=True, to_end=True, as_json=True, out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_crisis_produces_alerts_for_that_brand_only(kafka_settings, kafka_bootstrap, tmp_path, platform, monkeypatch):
    from reputation_pipeline.aggregation.warehouse import held_config
    from reputation_pipeline.definitions import build_defs
    from reputation_pipeline.pipeline.driver import Driver, aggregate, run_until_idle

    monkeypatch.setenv("REPUTATION_PLATFORMS", platform)
    topic = f"alerts.{platform}"
    defs = build_defs(
        lake=LakeResource(uri=str(tmp_path / "lake")),
        kafka=KafkaResource(bootstrap_servers=kafka_bootstrap),
        alert_publisher=AlertPublisherResource(bootstrap_servers=kafka_bootstrap, topic=topic),
    )
    # the loop keeps the warehouse open for its micro-batches (aggregation/warehouse.py hold)
    with defs.resources["warehouse"].process_config_and_initialize_cm() as warehouse:
        warehouse_path = warehouse.path_for(str(tmp_path / "lake"))
    held_during_live_runs = []
    execute = Driver.execute

    def spy(self, sensor_name, request):
        if request.job_name in ("live_job", "live_full_job"):
            held_during_live_runs.append(held_config(warehouse_path) is not None)
        return execute(self, sensor_name, request)

    monkeypatch.setattr(Driver, "execute", spy)
    produce(kafka_settings, platform, 400, partitions=2, seed=1, progress=False)
    produce(kafka_settings, platform, 400, partitions=2, seed=2, crisis_brand="acme", crisis_share=0.5, progress=False)

    with dg.instance_for_test() as instance:
        totals = run_until_idle(defs, instance)
        assert totals["rows"] == 800
        # the sensors' jobs ran: live runs over the touched hours, and the catch-up made due at idle
        assert totals["runs_by_job"].get("live_full_job") and totals["runs_by_job"].get("catchup_job"), totals
        assert held_during_live_runs and all(held_during_live_runs)
        assert held_config(warehouse_path) is None  # released when the loop ended
        alerts = _alerts(kafka_settings, topic)
        risk = [a for a in alerts if a["rule"] not in RISK_RULES_IGNORED]
        assert any(a["brand"] == "acme" and a["status"] == "firing" for a in risk), alerts
        assert {a["brand"] for a in risk} == {"acme"}, [(a["brand"], a["rule"]) for a in risk]
        for a in alerts:
            assert {"alert_id", "brand", "rule", "status", "window_start", "window_end", "severity", "explanation"} <= set(a)
        crisis = next(a for a in risk if a["brand"] == "acme")
        assert crisis["explanation"]["top_posts"], crisis

        # re-running the alert stage over the same windows publishes nothing new
        for first, last in totals["ranges"]:
            assert aggregate(defs, instance, first, last) == 0
        assert len(_alerts(kafka_settings, topic)) == len(alerts)


def test_live_runs_merge_only_new_files(kafka_settings, kafka_bootstrap, tmp_path, platform, monkeypatch):
    """The first live run builds the window with every dbt node on the alert path
    (live_full_job); the next one merges only the lake files that are new (live_job), and a
    full rebuild agrees with it."""
    import duckdb

    from reputation_pipeline.definitions import build_defs
    from reputation_pipeline.pipeline.driver import Driver, aggregate

    monkeypatch.setenv("REPUTATION_PLATFORMS", platform)
    lake = tmp_path / "lake"
    defs = build_defs(lake=LakeResource(uri=str(lake)), kafka=KafkaResource(bootstrap_servers=kafka_bootstrap),
                      alert_publisher=AlertPublisherResource(bootstrap_servers=kafka_bootstrap, topic=f"alerts.{platform}"))

    def marts() -> dict:
        with duckdb.connect(str(lake / "warehouse/reputation.duckdb"), read_only=True) as conn:
            return {t: conn.execute(f"select * exclude (window_end) from marts.{t} order by all").fetchall()
                    for t in ("fct_posts", "fct_brand_mentions")}

    with dg.instance_for_test() as instance:
        drv = Driver(defs, instance)
        steps = []
        for seed, crisis in ((1, None), (2, "acme")):
            produce(kafka_settings, platform, 150, partitions=2, seed=seed, crisis_brand=crisis, crisis_share=0.5,
                    progress=False)
            report = drv.tick()
            live = [r for r in report.runs if r.lane == "live"]
            assert len(live) == 1 and live[0].success, report.runs
            logs = [e.user_message for e in instance.all_logs(live[0].run_id)]
            steps.append((live[0].job, [m for m in logs if "lake file" in m or "in full" in m], live[0]))
        drv.release_warehouse()
        assert steps[0][0] == "live_full_job" and "in full" in steps[0][1][0], steps
        # (a late post's hour that the first batch did not touch merges all its files)
        assert steps[1][0] == "live_job" and steps[1][1] and all("merging" in m for m in steps[1][1]), steps
        merged = marts()
        assert len(merged["fct_posts"]) > 250  # 300 posts, less the few late ones (older hours: the catch-up)
        first, last = steps[1][2].first, steps[1][2].last
        aggregate(defs, instance, first, last)  # the full build, with every dbt test
        assert marts() == merged
