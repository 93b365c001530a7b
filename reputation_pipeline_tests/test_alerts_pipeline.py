"""End to end on the real broker: sample lake (posts + scores) -> dbt build (one
run over a 12-hour partition range) -> brand_alerts -> Kafka reputation.alerts
-> published Parquet; a re-run publishes nothing new."""
import json
import uuid
from datetime import datetime, timezone

import dagster as dg
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.aggregation import dbt_resource
from reputation_pipeline.aggregation.assets import reputation_dbt_assets
from reputation_pipeline.aggregation.publish import published_marts
from reputation_pipeline.aggregation.sample_lake import SampleLakeSpec, write_sample_lake
from reputation_pipeline.aggregation.warehouse import WarehouseResource
from reputation_pipeline.alerts.assets import alert_outbox_drained, brand_alerts
from reputation_pipeline.alerts.publisher import ALERTS_TOPIC, AlertPublisherResource
from reputation_pipeline.ingest.kafka_client import KafkaSettings
from reputation_pipeline.lake.store import open_lake
from dagster_aws.s3 import S3Resource

from reputation_pipeline.resources import LakeResource

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
HOURS = 12
RANGE_TAGS = {"dagster/asset_partition_range_start": "2026-11-20-00:00",
              "dagster/asset_partition_range_end": f"2026-11-20-{HOURS - 1:02d}:00",
              # the sample lake is history (fixed dates): this test asks for it to be published
              "reputation/publish_history": "true"}


def _end_offsets(bootstrap: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        md = c.list_topics(ALERTS_TOPIC, timeout=10).topics.get(ALERTS_TOPIC)
        if md is None or md.error:
            return {}
        return {p: c.get_watermark_offsets(TopicPartition(ALERTS_TOPIC, p), timeout=10)[1] for p in md.partitions}
    finally:
        c.close()


def _read_since(bootstrap: str, since: dict[int, int]) -> list[dict]:
    from confluent_kafka import Consumer, TopicPartition

    ends = _end_offsets(bootstrap)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False})
    out = []
    try:
        todo = {p: e for p, e in ends.items() if e > since.get(p, 0)}
        if not todo:
            return []
        c.assign([TopicPartition(ALERTS_TOPIC, p, since.get(p, 0)) for p in todo])
        while todo:
            msg = c.poll(5)
            assert msg is not None, f"topic stalled before its end offsets {todo}"
            if msg.error():
                continue
            out.append({"key": msg.key().decode(), **json.loads(msg.value())})
            if msg.offset() + 1 >= todo.get(msg.partition(), 0):
                todo.pop(msg.partition(), None)
    finally:
        c.close()
    return out


def test_crisis_brand_alerts_on_real_broker(kafka_bootstrap, tmp_path, monkeypatch):
    suffix = uuid.uuid4().hex[:6]
    crisis, calm = f"acme{suffix}", [f"globex{suffix}", f"initech{suffix}"]
    brands_csv = tmp_path / "brands.csv"
    # the crisis brand written as an operator would: shown so, identified by its key (lower case)
    brands_csv.write_text("brand,keywords,handles,hashtags,exclusions\n" + "".join(
        f"{b.capitalize() if b == crisis else b},{b}|{b} corp,@{b},#{b}fail,{b} acres\n" for b in [crisis, *calm]))
    monkeypatch.setenv("REPUTATION_BRANDS_CSV", str(brands_csv))  # replaces the brands seed

    lake_dir = tmp_path / "lake"
    write_sample_lake(open_lake(str(lake_dir)), SampleLakeSpec(start=T0, hours=HOURS, brands=(crisis, *calm),
                                                               crisis_brand=crisis, crisis_hours=2))
    resources = {
        "dbt": dbt_resource(),
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "warehouse.duckdb")),
        "lake": LakeResource(uri=str(lake_dir), s3=S3Resource()),
        "alert_publisher": AlertPublisherResource(bootstrap_servers=kafka_bootstrap),
    }
    AlertPublisherResource(bootstrap_servers=kafka_bootstrap).ensure_topic()
    before = _end_offsets(kafka_bootstrap)
    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize([reputation_dbt_assets, brand_alerts, alert_outbox_drained, published_marts],
                            resources=resources, tags=RANGE_TAGS, instance=instance)
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), {k: v for k, v in checks.items() if not v}
    assert "not_null_stg_posts_post_id" in checks and checks["alert_outbox_drained"]

    ours = [m for m in _read_since(kafka_bootstrap, before) if m["brand"] in {crisis, *calm}]
    firing = [m for m in ours if m["brand"] == crisis and m["status"] == "firing"]
    assert firing, ours
    assert not [m for m in ours if m["brand"] in calm]
    assert {m["rule"] for m in firing} >= {"risk_threshold", "toxic_post"}
    for m in ours:
        assert m["key"] == m["brand"] == m["labels"]["brand"] and m["brand_name"] == crisis.capitalize()
        assert m["summary"].startswith(f"{crisis.capitalize()}: ")
        for k in ("alert_id", "brand", "rule", "status", "window_start", "window_end", "severity", "explanation"):
            assert k in m
        assert m["explanation"]["top_posts"] and m["explanation"]["top_posts"][0]["url"].startswith("https://")
        assert m["explanation"]["platforms"] and m["explanation"]["sources"]
    assert len({m["alert_id"] for m in ours}) == len(ours)  # no duplicate publication

    # results exported to <lake>/published/
    published = sorted((lake_dir / "published").rglob("*.parquet"))
    assert any("brand_risk_window" in str(p) for p in published) and any("/alerts/" in str(p) for p in published)
    risk = pq.read_table(next(p for p in published if "brand_risk_window" in str(p))).to_pylist()
    assert {(r["brand"], r["brand_name"]) for r in risk} == {(crisis, crisis.capitalize()), *((b, b) for b in calm)}

    # re-running the alert asset for the same windows publishes nothing new
    after_first = _end_offsets(kafka_bootstrap)
    rerun = dg.materialize([brand_alerts], resources=resources, tags=RANGE_TAGS, instance=instance,
                           selection=[brand_alerts])
    assert rerun.success
    again = [m for m in _read_since(kafka_bootstrap, after_first) if m["brand"] in {crisis, *calm}]
    assert again == []
    mats = rerun.asset_materializations_for_node("brand_alerts")
    assert mats[0].metadata["published"].value == 0 and mats[0].metadata["recorded"].value == 0


def test_alerts_tail_prints_json_lines(kafka_bootstrap):
    import io

    from confluent_kafka import Producer

    from reputation_pipeline.alerts.cli import tail

    pub = AlertPublisherResource(bootstrap_servers=kafka_bootstrap, topic=f"test.alerts.{uuid.uuid4().hex[:8]}")
    pub.ensure_topic()
    aid = uuid.uuid4().hex
    msg = json.dumps({"alert_id": aid, "brand": "acme", "status": "firing", "summary": "x"})
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(2):  # an at-least-once re-publication: shown once
        p.produce(pub.topic, key=b"acme", value=msg.encode(), headers=[("alert_id", aid.encode())])
    p.flush(10)
    out = io.StringIO()
    shown = tail(KafkaSettings(bootstrap_servers=kafka_bootstrap), pub.topic, from_beginning=True,
                 to_end=True, as_json=True, out=out)
    lines = out.getvalue().splitlines()
    assert shown == 1 and json.loads(lines[0])["alert_id"] == aid
