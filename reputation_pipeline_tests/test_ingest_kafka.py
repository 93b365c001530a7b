"""Ingest against the real broker and both lake backends (local folder, S3 endpoint)."""
import json
import threading
from collections import Counter

import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer

from reputation_pipeline.ingest.drain import RetentionGapError
from reputation_pipeline.ingest.headless import drain_until_idle
from reputation_pipeline.ingest.kafka_client import topic_for
from reputation_pipeline.ingest.planner import PlanningPolicy
from reputation_pipeline.ingest.plans import PlanLog
from reputation_pipeline.ingest.produce import ensure_topic, produce
from reputation_pipeline.ingest.synthetic import BAD_CLASSES, BAD_REASONS
from reputation_pipeline.lake.read import read_parquet_prefix
from reputation_pipeline.lake.store import open_lake

pytestmark = pytest.mark.kafka


def _raw(store):
    return read_parquet_prefix(store, "raw/posts/", columns=["post_id", "kafka_partition", "kafka_offset"])


def test_drain_20k_good_500_bad_over_4_partitions(kafka_settings, lake_uri, platform):
    produce(kafka_settings, platform, 20_000, bad=500, partitions=4, progress=False)
    store = open_lake(lake_uri)
    summary = drain_until_idle(kafka_settings, store, frozenset({platform}), policy=PlanningPolicy(max_records=3000))
    assert summary.rows == 20_000 and summary.quarantined == 500
    assert all(n == 0 for n in summary.lag[topic_for(platform)].values())

    raw = _raw(store)
    assert raw.num_rows == 20_000
    assert len(pc.unique(raw["post_id"])) == 20_000
    assert set(raw["kafka_partition"].to_pylist()) == {0, 1, 2, 3}

    q = read_parquet_prefix(store, "quarantine/")
    assert q.num_rows == 500
    assert set(q.column_names) >= {"reason", "detail", "topic", "partition", "offset", "raw"}
    reasons = Counter(q["reason"].to_pylist())
    assert set(reasons) == {BAD_REASONS[k] for k in BAD_CLASSES}
    assert all(d for d in q["detail"].to_pylist()) and all(r for r in q["raw"].to_pylist())
    # every offset of the topic is accounted for exactly once: good rows + quarantine
    offsets = Counter(zip(raw["kafka_partition"].to_pylist(), raw["kafka_offset"].to_pylist()))
    offsets.update(zip(q["partition"].to_pylist(), q["offset"].to_pylist()))
    assert len(offsets) == 20_500 and max(offsets.values()) == 1

    # draining again is a no-op
    again = drain_until_idle(kafka_settings, store, frozenset({platform}))
    assert again.rows == 0 and again.batches == 0
    assert _raw(store).num_rows == 20_000


def test_files_are_partitioned_by_event_hour_with_deterministic_names(kafka_settings, tmp_path, platform):
    produce(kafka_settings, platform, 2000, partitions=2, progress=False)
    store = open_lake(str(tmp_path / "lake"))
    drain_until_idle(kafka_settings, store, frozenset({platform}))
    keys = [k for k in store.list("raw/posts/") if k.endswith(".parquet")]
    assert keys
    for key in keys:
        parts = key.split("/")
        assert parts[2] == f"platform={platform}" and parts[3].startswith("dt=") and parts[4].startswith("hour=")
        assert parts[5].startswith(f"{topic_for(platform)}-p")
    # late posts land in their own (past) hours, reported as touched partitions
    commits = [c for p in (0, 1) for c in PlanLog(store).commits(topic_for(platform), p)]
    assert len({k for c in commits for k in c.partition_keys}) > 1


def test_duplicate_post_ids_are_kept_in_raw_with_their_offsets(kafka_settings, tmp_path, platform):
    """raw/posts is a faithful log of the topic (one row per offset); dedup by
    post_id happens downstream (scoring scores unique ids, dbt stg_posts keeps
    the latest offset). Here: the duplicate is visible, never silently lost."""
    topic = topic_for(platform)
    ensure_topic(kafka_settings, topic, 1)
    post = {"post_id": "dup-1", "platform": platform, "author_id": "a1", "text": "same post twice",
            "created_at": "2026-11-26T10:00:00+00:00"}
    p = Producer(kafka_settings.client_config())
    for _ in range(2):
        p.produce(topic, key=b"dup-1", value=json.dumps(post).encode())
    p.flush(10)
    store = open_lake(str(tmp_path / "lake"))
    drain_until_idle(kafka_settings, store, frozenset({platform}))
    raw = _raw(store)
    assert raw["post_id"].to_pylist() == ["dup-1", "dup-1"]
    assert sorted(raw["kafka_offset"].to_pylist()) == [0, 1]


def test_concurrent_drains_do_not_duplicate(kafka_settings, lake_uri, platform):
    produce(kafka_settings, platform, 6000, partitions=3, progress=False)
    store = open_lake(lake_uri)
    errors = []

    def worker():
        try:
            drain_until_idle(kafka_settings, open_lake(lake_uri), frozenset({platform}),
                             policy=PlanningPolicy(max_records=500))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    raw = _raw(store)
    assert raw.num_rows == 6000 and len(pc.unique(raw["post_id"])) == 6000


def test_retention_gap_fails_loudly_and_is_recorded(kafka_settings, tmp_path, platform):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = topic_for(platform)
    produce(kafka_settings, platform, 300, partitions=1, progress=False)
    store = open_lake(str(tmp_path / "lake"))
    drain_until_idle(kafka_settings, store, frozenset({platform}), policy=PlanningPolicy(max_records=100), max_ticks=1)
    produce(kafka_settings, platform, 300, partitions=1, progress=False)
    # retention expires offsets that were never drained (delete-records = what retention does)
    admin = AdminClient(kafka_settings.client_config())
    fut = admin.delete_records([TopicPartition(topic, 0, 450)])
    list(fut.values())[0].result(timeout=30)
    with pytest.raises(RetentionGapError, match="expired"):
        drain_until_idle(kafka_settings, store, frozenset({platform}), policy=PlanningPolicy(max_records=100))
    gaps = list(store.list(f"_ingest/gaps/{topic}/"))
    assert gaps
    gap = json.loads(store.get(gaps[0]))
    assert gap["log_start_offset"] == 450 and gap["lost_offsets"] > 0


def test_every_valid_posts_topic_is_drained_by_default_and_a_skipped_one_is_named_every_tick(kafka_settings, tmp_path,
                                                                                               platform, monkeypatch):
    """Unset REPUTATION_PLATFORMS drains every social.posts.<name> with a valid name (X's
    `social.posts.x` included); setting it narrows. A posts topic not drained is named,
    with its reason, on every tick: an operator finds it in the sensor's status."""
    import time

    from reputation_pipeline.ingest import kafka_posts_sensor
    from reputation_pipeline.ingest.drain import make_consumer
    from reputation_pipeline.ingest.kafka_client import KafkaResource
    from reputation_pipeline.ingest.tick import plan_tick, posts_topics
    from reputation_pipeline.resources import LakeResource

    # named to sort first among the shared broker's topics: the sensor's status lists the first ten
    valid, invalid = topic_for("a" + platform), topic_for("A" + platform + "-v2")
    for topic in (valid, invalid):
        ensure_topic(kafka_settings, topic, 1)
    plan_log = PlanLog(open_lake(str(tmp_path / "lake")))
    consumer = make_consumer(kafka_settings.client_config())
    try:
        drained, skipped = posts_topics(consumer, None)
        assert valid in drained and invalid not in drained
        assert "not a valid platform name" in skipped[invalid]
        narrowed = frozenset({platform})
        ticks = [plan_tick(consumer, plan_log, narrowed, PlanningPolicy(), {}, time.time())]
        ticks.append(plan_tick(consumer, plan_log, narrowed, PlanningPolicy(), ticks[0].cursor, time.time()))
    finally:
        consumer.close()
    for tick in ticks:
        assert "not in REPUTATION_PLATFORMS" in tick.skipped[valid]
        assert any(valid in w and invalid in w for w in tick.warnings)
        assert valid not in tick.cursor  # never planned

    import dagster as dg

    monkeypatch.setenv("REPUTATION_PLATFORMS", platform)
    resources = {"kafka": KafkaResource(bootstrap_servers=kafka_settings.bootstrap_servers),
                 "lake": LakeResource(uri=str(tmp_path / "lake"))}
    with dg.instance_for_test() as instance:
        for _ in range(2):
            with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                result = kafka_posts_sensor(ctx)
            assert valid in result.skip_reason.skip_message and invalid in result.skip_reason.skip_message


def test_sensor_keeps_its_metadata_consumer_and_sees_new_topics(kafka_settings, platform):
    """kafka_posts_sensor reuses one consumer per process for metadata and watermarks
    (a new one costs a connection per tick); it still sees topics created after it."""
    from reputation_pipeline.ingest.drain import metadata_consumer
    from reputation_pipeline.ingest.tick import posts_topics

    conf = kafka_settings.client_config()
    kept = metadata_consumer(conf)
    assert metadata_consumer(dict(conf)) is kept
    assert metadata_consumer({**conf, "client.id": "another-client"}) is not kept
    assert topic_for(platform) not in posts_topics(kept, frozenset({platform}))[0]
    ensure_topic(kafka_settings, topic_for(platform), 1)
    assert posts_topics(kept, frozenset({platform}))[0] == [topic_for(platform)]


def test_a_plan_is_cut_into_parts_by_bytes_the_same_on_every_retry(kafka_settings, tmp_path, platform):
    """Plans cap records; a part caps the bytes a drain holds (1 MB messages are legal). The
    cut depends on offsets and sizes only: another consume batching writes the same files.
    A large rejected message keeps a bounded prefix in quarantine, with its size and sha256."""
    import hashlib

    from reputation_pipeline.ingest.drain import DrainSettings
    from reputation_pipeline.ingest.synthetic import PostGenerator, SyntheticConfig

    topic = topic_for(platform)
    ensure_topic(kafka_settings, topic, 1)
    producer = Producer({**kafka_settings.client_config(), "message.max.bytes": 2_000_000})
    gen = PostGenerator(SyntheticConfig(platform, seed=3, late_share=0.0))
    junk = [bytes([65 + i]) * 300_000 for i in range(12)]
    sent = 0
    for i in range(12):
        for _ in range(25):
            producer.produce(topic, json.dumps(gen.post()).encode())
        producer.produce(topic, junk[i])
        sent += 26
    assert producer.flush(30) == 0
    lakes = {}
    for consume_batch in (7, 10_000):
        store = open_lake(str(tmp_path / f"lake-{consume_batch}"))
        settings = DrainSettings(part_bytes=1_000_000, consume_batch=consume_batch)
        summary = drain_until_idle(kafka_settings, store, frozenset({platform}), settings=settings,
                                   policy=PlanningPolicy(max_records=10_000))
        assert summary.rows == 300 and summary.quarantined == 12
        lakes[consume_batch] = {k: store.get(k) for k in store.list("raw/") if k.endswith(".parquet")}
        lakes[consume_batch] |= {k: store.get(k) for k in store.list("quarantine/")}
    assert lakes[7] == lakes[10_000]  # the same parts, byte for byte
    parts = [k for k in lakes[7] if k.startswith("raw/")]
    assert len(parts) >= 3, parts  # ~3.6 MB of messages in 1 MB parts
    q = read_parquet_prefix(open_lake(str(tmp_path / "lake-7")), "quarantine/").to_pylist()
    assert sorted(r["raw_size"] for r in q) == [300_000] * 12
    assert all(len(r["raw"]) == 64 * 1024 and r["raw_sha256"] == hashlib.sha256(bytes([r["raw"][0]]) * 300_000).hexdigest()
               for r in q)


def test_the_plan_log_is_checkpointed_so_a_tick_reads_what_is_pending(kafka_settings, tmp_path, platform):
    """Committed plans move behind the partition's checkpoint (the live folder keeps the last
    one); a tick with a lost cursor reads the checkpoint, plans nothing twice, and a late
    retry of an archived plan still finds it."""
    import time

    from reputation_pipeline.ingest.batch import run_batch
    from reputation_pipeline.ingest.drain import make_consumer
    from reputation_pipeline.ingest.tick import plan_tick

    produce(kafka_settings, platform, 1000, partitions=1, progress=False)
    store = open_lake(str(tmp_path / "lake"))
    summary = drain_until_idle(kafka_settings, store, frozenset({platform}), policy=PlanningPolicy(max_records=100))
    assert summary.plans == 10
    topic, log = topic_for(platform), PlanLog(store)
    live = f"_ingest/plans/{topic}/p=0/"
    assert list(store.list(live)) == [f"{live}{900:020d}.json"]  # the checkpoint's plan only
    assert log.checkpoint(topic, 0) == 900
    assert len(list(store.list(f"_ingest/plans-archive/{topic}/"))) == 9
    consumer = make_consumer(kafka_settings.client_config())
    try:
        tick = plan_tick(consumer, log, frozenset({platform}), PlanningPolicy(), {}, time.time(), force=True)
    finally:
        consumer.close()
    assert not tick.new_batches and not tick.pending_batches and tick.lag[topic] == {0: 0}
    again = run_batch(topic, [[0, 300]], kafka=kafka_settings, store=store, platforms=frozenset({platform}))
    assert [c.start for c in again.commits] == [300] and not again.failures  # the committed plan, as it was
    assert _raw(store).num_rows == 1000
