"""Kafka side of the alert stage: publish to ``reputation.alerts`` (key = brand,
value = JSON, header ``alert_id``) with an idempotent producer, and read the topic
back to find alerts that a crashed run had already published."""
from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from reputation_pipeline.ingest.kafka_client import KAFKA_ENV_FIELDS, KafkaResource, bind_env
from reputation_pipeline import settings

ALERTS_TOPIC = settings.ALERTS_TOPIC.default


@dataclass(frozen=True)
class Delivered:
    alert_id: str
    topic: str
    partition: int
    offset: int


class AlertPublishError(RuntimeError):
    pass


class AlertPublisherResource(KafkaResource):
    """The alerts topic, on a cluster configured like :class:`KafkaResource` (the
    connection fields and ``settings()`` are inherited). Bind fields with
    ``dg.EnvVar`` (see ``alert_publisher_from_env``) so credentials stay in the
    environment."""

    topic: str = ALERTS_TOPIC
    topic_partitions: int = 3
    replication_factor: int = 1
    flush_timeout_s: float = 30.0

    def ensure_topic(self) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.settings().client_config())
        md = admin.list_topics(timeout=15)
        if self.topic in md.topics and not md.topics[self.topic].error:
            return
        futures = admin.create_topics([NewTopic(self.topic, self.topic_partitions, self.replication_factor)])
        try:
            futures[self.topic].result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise

    def publish(self, messages: Sequence[tuple[str, str, str]]) -> list[Delivered]:
        """Produce (alert_id, brand, payload) messages; returns those the broker
        acknowledged (acks=all, idempotent producer). Raises if any failed."""
        if not messages:
            return []
        from confluent_kafka import Producer

        producer = Producer({**self.settings().client_config(), "enable.idempotence": True, "acks": "all",
                             "linger.ms": 5, "client.id": "reputation-alerts"})
        delivered: list[Delivered] = []
        errors: list[str] = []

        def on_delivery(aid, err, msg):
            # headers are not carried on delivery reports: the id is bound per message
            if err is not None:
                errors.append(f"{aid}: {err}")
            else:
                delivered.append(Delivered(aid, msg.topic(), msg.partition(), msg.offset()))

        for aid, brand, payload in messages:
            producer.produce(self.topic, key=brand.encode(), value=payload.encode(),
                             headers=[("alert_id", aid.encode()), ("content-type", b"application/json")],
                             on_delivery=functools.partial(on_delivery, aid))
            producer.poll(0)
        remaining = producer.flush(self.flush_timeout_s)
        if remaining or errors:
            raise AlertPublishError(f"{remaining} alert(s) undelivered, errors: {errors[:5]}")
        return delivered

    def find_published(self, alert_ids: Iterable[str], since: datetime) -> dict[str, Delivered]:
        """Read the topic from ``since`` to its current end and return the given
        alert ids found there (reconciliation after a crash)."""
        from confluent_kafka import Consumer, TopicPartition

        wanted = set(alert_ids)
        if not wanted:
            return {}
        consumer = Consumer({**self.settings().client_config(), "group.id": f"reputation-alerts-reconcile-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "auto.offset.reset": "earliest"})
        found: dict[str, Delivered] = {}
        try:
            md = consumer.list_topics(self.topic, timeout=15)
            if self.topic not in md.topics or md.topics[self.topic].error:
                return {}
            parts = sorted(md.topics[self.topic].partitions)
            since_ms = int(since.timestamp() * 1000)
            starts = consumer.offsets_for_times([TopicPartition(self.topic, p, since_ms) for p in parts], timeout=15)
            ends = {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=15)[1] for p in parts}
            assign = []
            for tp in starts:
                start = tp.offset if tp.offset >= 0 else ends[tp.partition]
                if start < ends[tp.partition]:
                    assign.append(TopicPartition(self.topic, tp.partition, start))
            if not assign:
                return {}
            consumer.assign(assign)
            open_parts = {tp.partition for tp in assign}
            deadline = time.monotonic() + 60
            while open_parts and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None or msg.error():
                    continue
                aid = dict(msg.headers() or []).get("alert_id", b"").decode()
                if aid in wanted:
                    found[aid] = Delivered(aid, msg.topic(), msg.partition(), msg.offset())
                if msg.offset() + 1 >= ends[msg.partition()]:
                    open_parts.discard(msg.partition())
            if open_parts:
                raise AlertPublishError(f"reconciliation did not reach the end of partitions {sorted(open_parts)}")
        finally:
            consumer.close()
        return found


def alert_publisher_from_env() -> AlertPublisherResource:
    return bind_env(AlertPublisherResource, {**KAFKA_ENV_FIELDS, "topic": settings.ALERTS_TOPIC.name})


def decode_alert(value: bytes | None) -> dict | None:
    if not value:
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
