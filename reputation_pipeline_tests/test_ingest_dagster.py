"""The Dagster sensor plans and requests runs; the job drains and reports
every touched hour partition of raw_posts."""
import json

import dagster as dg
import pytest

from reputation_pipeline.ingest.kafka_client import KafkaResource, topic_for
from reputation_pipeline.ingest.produce import produce
from reputation_pipeline.resources import LakeResource

pytestmark = pytest.mark.kafka


@pytest.fixture
def defs_env(monkeypatch, tmp_path, platform, kafka_bootstrap):
    monkeypatch.setenv("REPUTATION_PLATFORMS", platform)
    monkeypatch.setenv("REPUTATION_INGEST_MIN_RECORDS", "1")
    lake = str(tmp_path / "lake")
    return {"kafka": KafkaResource(bootstrap_servers=kafka_bootstrap), "lake": LakeResource(uri=lake)}


def test_sensor_plans_and_job_reports_partitions(kafka_settings, defs_env, platform):
    from reputation_pipeline.ingest import ingest_job, kafka_posts_sensor

    produce(kafka_settings, platform, 1500, bad=12, partitions=2, progress=False)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=defs_env) as ctx:
            result = kafka_posts_sensor(ctx)
        assert len(result.run_requests) == 1
        req = result.run_requests[0]
        assert req.run_key.startswith(topic_for(platform) + ":")
        cfg = req.run_config["ops"]["drain_kafka_batch"]["config"]
        assert cfg["topic"] == topic_for(platform) and len(cfg["plans"]) == 2
        assert "value" not in json.dumps(req.run_config)  # plan references only, no payloads

        # the same tick again plans nothing new: the plans are durable, runs pending
        with dg.build_sensor_context(instance=instance, resources=defs_env, cursor=result.cursor) as ctx:
            again = kafka_posts_sensor(ctx)
        assert not again.run_requests

        from reputation_pipeline.ingest import ingest_assets

        job = dg.Definitions(assets=ingest_assets, jobs=[ingest_job], resources=defs_env).get_job_def("ingest_job")
        run = job.execute_in_process(run_config=req.run_config, instance=instance, tags=req.tags)
        assert run.success
        mats = [e.event_specific_data.materialization for e in run.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        raw = [m for m in mats if m.asset_key == dg.AssetKey("raw_posts")]
        assert raw and all(m.partition for m in raw)
        assert sum(m.metadata["rows"].value for m in raw) == 1500
        q = [m for m in mats if m.asset_key == dg.AssetKey("quarantined_posts")]
        assert q[0].metadata["quarantined_rows"].value == 12
        touched = instance.get_materialized_partitions(dg.AssetKey("raw_posts"))
        assert touched == {m.partition for m in raw}

        # the contiguity check passes on the resulting log
        from reputation_pipeline.ingest.checks import offset_ranges_contiguous
        check = offset_ranges_contiguous(lake=defs_env["lake"])
        assert check.passed, check.metadata


def test_a_batch_that_commits_some_plans_reports_them_and_fails(kafka_settings, defs_env, platform):
    """One partition's retention gap fails the run, after the other partition's commit is
    reported: its hours are scored and aggregated, the gap is not silently skipped."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from reputation_pipeline.ingest import ingest_assets, ingest_job, kafka_posts_sensor
    from reputation_pipeline.ingest.drain import RetentionGapError

    produce(kafka_settings, platform, 400, partitions=2, progress=False)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=defs_env) as ctx:
            req = kafka_posts_sensor(ctx).run_requests[0]
        plans = req.run_config["ops"]["drain_kafka_batch"]["config"]["plans"]
        assert sorted(p for p, _ in plans) == [0, 1]
        admin = AdminClient(kafka_settings.client_config())
        for fut in admin.delete_records([TopicPartition(topic_for(platform), 1, 1)]).values():
            fut.result(30)  # partition 1's first offset expires before the run reads it
        job = dg.Definitions(assets=ingest_assets, jobs=[ingest_job], resources=defs_env).get_job_def("ingest_job")
        run = job.execute_in_process(run_config=req.run_config, instance=instance, raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert RetentionGapError.__name__ in failure.step_failure_data.error.to_string()
    mats = [e.event_specific_data.materialization for e in run.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    reported = sum(m.metadata["rows"].value for m in mats if m.asset_key == dg.AssetKey("raw_posts"))
    committed = json.loads(defs_env["lake"].open().get(f"_ingest/commits/{topic_for(platform)}/p=0/{0:020d}.json"))
    assert reported == committed["rows"] > 0
