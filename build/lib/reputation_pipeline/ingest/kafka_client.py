"""Kafka client settings, shared by the ingest sensor/run, the producer and
the alert publisher. Deployment values (brokers, SASL/SSL) come from the
environment; secrets are never logged or put in run config."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import dagster as dg

TOPIC_PREFIX = "social.posts."


def topic_for(platform: str) -> str:
    return f"{TOPIC_PREFIX}{platform}"


def platform_of(topic: str) -> str:
    if not topic.startswith(TOPIC_PREFIX):
        raise ValueError(f"{topic!r} is not a posts topic ({TOPIC_PREFIX}<platform>)")
    return topic[len(TOPIC_PREFIX):]


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:29092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    @classmethod
    def from_env(cls) -> "KafkaSettings":
        env = os.environ.get
        return cls(
            bootstrap_servers=env("KAFKA_BOOTSTRAP_SERVERS") or cls.bootstrap_servers,
            security_protocol=env("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
            sasl_mechanism=env("KAFKA_SASL_MECHANISM") or None,
            sasl_username=env("KAFKA_SASL_USERNAME") or None,
            sasl_password=env("KAFKA_SASL_PASSWORD") or None,
            ssl_ca_location=env("KAFKA_SSL_CA_LOCATION") or None,
        )

    def client_config(self) -> dict[str, str]:
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf


class KafkaResource(dg.ConfigurableResource):
    """Connection to the posts cluster. Bind fields with ``dg.EnvVar`` so
    credentials stay in the environment (Confluent Cloud / MSK: SASL_SSL)."""

    bootstrap_servers: str = KafkaSettings.bootstrap_servers
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    def settings(self) -> KafkaSettings:
        return KafkaSettings(self.bootstrap_servers, self.security_protocol, self.sasl_mechanism,
                             self.sasl_username, self.sasl_password, self.ssl_ca_location)


# Resource field -> environment variable, for every client of the cluster.
KAFKA_ENV_FIELDS = {
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_ca_location": "KAFKA_SSL_CA_LOCATION",
}


def bind_env(resource_cls, fields: dict[str, str]):
    """The resource with each field bound to its variable with dg.EnvVar when the
    variable is set (an unset EnvVar would fail validation), else its default."""
    return resource_cls(**{f: dg.EnvVar(v) for f, v in fields.items() if os.environ.get(v)})


def kafka_resource_from_env() -> KafkaResource:
    return bind_env(KafkaResource, KAFKA_ENV_FIELDS)


def watermarks(consumer, topic: str, partition: int, *, timeout: float = 10.0, cached: bool = False,
               retry_for: float = 30.0, sleep=time.sleep) -> tuple[int, int]:
    """(low, high) offsets of a partition. Retriable broker errors (e.g.
    NOT_LEADER_FOR_PARTITION while a restarted broker elects leaders) are retried
    with backoff for up to ``retry_for`` seconds instead of failing the tick or run."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    transient = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                 KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}
    deadline = time.monotonic() + retry_for
    delay = 0.25
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=cached)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = isinstance(err, KafkaError) and (err.code() in transient or err.retriable())
            if not retriable or time.monotonic() + delay > deadline:
                raise
            sleep(delay)
            delay = min(delay * 2, 4.0)
