"""``reputation-pipeline produce``: synthetic posts or a JSONL file onto
``social.posts.<platform>`` with an idempotent producer (key = post id)."""
from __future__ import annotations

import json
import sys
import time
import uuid

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from reputation_pipeline.ingest.kafka_client import KafkaSettings, topic_for
from reputation_pipeline.ingest.synthetic import BAD_CLASSES, PostGenerator, SyntheticConfig, bad_message


def ensure_topic(settings: KafkaSettings, topic: str, partitions: int = 4) -> None:
    admin = AdminClient(settings.client_config())
    if topic in admin.list_topics(timeout=15).topics:
        return
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])
    try:
        futures[topic].result(timeout=30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def make_producer(settings: KafkaSettings) -> Producer:
    return Producer({
        **settings.client_config(),
        "enable.idempotence": True,  # broker-side dedup of retried sends
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",  # same key -> partition mapping as Java clients
    })


def produce(
    settings: KafkaSettings,
    platform: str,
    count: int,
    *,
    bad: int = 0,
    rate: float | None = None,
    file: str | None = None,
    partitions: int = 4,
    crisis_brand: str | None = None,
    crisis_share: float = 0.0,
    seed: int = 7,
    progress: bool = True,
    late_share: float = SyntheticConfig.late_share,
) -> dict:
    topic = topic_for(platform)
    ensure_topic(settings, topic, partitions)
    producer = make_producer(settings)
    errors: list[str] = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    def send(key: bytes | None, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)

    from tqdm import tqdm

    gen = PostGenerator(SyntheticConfig(platform, seed=seed, run_id=uuid.uuid4().hex[:10],
                                        crisis_brand=crisis_brand, crisis_share=crisis_share, late_share=late_share))
    lines = open(file, "rb") if file else None
    total = count + bad
    bar = tqdm(total=total, unit="msg", disable=not progress or total < 5000, file=sys.stderr)
    started = time.monotonic()
    sent = good_sent = 0
    try:
        while good_sent < count:
            if lines is not None:
                line = lines.readline()
                if not line:
                    break
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                try:
                    key = str(json.loads(line).get("post_id", "")).encode() or None
                except (ValueError, AttributeError):
                    key = None  # produced as-is: ingest quarantines it with the reason
                send(key, line)
            else:
                post = gen.post()
                send(post["post_id"].encode(), json.dumps(post, ensure_ascii=False).encode())
            good_sent += 1
            sent += 1
            bar.update(1)
            if rate:
                wait = started + sent / rate - time.monotonic()
                if wait > 0:
                    producer.poll(0)
                    time.sleep(wait)
            if sent % 1000 == 0:
                producer.poll(0)
        for i in range(bad):
            kind = BAD_CLASSES[i % len(BAD_CLASSES)]
            send(f"bad-{i}".encode(), bad_message(kind, gen.post()))
            sent += 1
            bar.update(1)
    finally:
        if lines is not None:
            lines.close()
        remaining = producer.flush(60)
        bar.close()
    if remaining or errors:
        raise RuntimeError(f"{remaining} messages undelivered, {len(errors)} delivery errors: {errors[:3]}")
    return {"topic": topic, "good": good_sent, "bad": bad, "seconds": round(time.monotonic() - started, 2)}
