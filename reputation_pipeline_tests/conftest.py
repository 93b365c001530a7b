"""Shared fixtures. Integration tests talk to a real Apache Kafka broker and a
real S3 endpoint (moto server over HTTP): the ones ``.ci/run`` started
(``KAFKA_BOOTSTRAP_SERVERS`` / ``AWS_ENDPOINT_URL`` set), or a private stack
this session starts in a temp folder and stops at the end."""
from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from pathlib import Path

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ARTIFACTS = Path(__file__).parent / "artifacts"


def _reachable(hostport: str) -> bool:
    host, _, port = hostport.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack_cfg(tmp_path_factory):
    """The running stack's config; starts a private stack if none is configured."""
    from reputation_pipeline.stack import local

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap and _reachable(bootstrap) and os.environ.get("AWS_ENDPOINT_URL"):
        yield local.StackConfig.from_env()
        return
    root = tmp_path_factory.mktemp("stack")
    kport = local.free_port()
    cfg = local.StackConfig(root=root, kafka_port=kport, controller_port=local.free_port(), s3_port=local.free_port(),
                            bucket=local.DEFAULT_BUCKET)
    local.up(cfg)
    saved = {k: os.environ.get(k) for k in [*local.env_vars(cfg), "REPUTATION_STACK_DIR"]}
    os.environ.update(local.env_vars(cfg))
    os.environ["REPUTATION_STACK_DIR"] = str(root)
    try:
        yield cfg
    finally:
        from reputation_pipeline.ingest.drain import close_metadata_consumers

        close_metadata_consumers()
        local.down(cfg)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_cfg) -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack_cfg.bootstrap


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap):
    from reputation_pipeline.ingest.kafka_client import KafkaSettings

    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


@pytest.fixture(scope="session")
def s3_endpoint(stack_cfg) -> str:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return os.environ.get("AWS_ENDPOINT_URL") or stack_cfg.s3_url


@pytest.fixture
def s3_client(s3_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_lake_uri(s3_client) -> str:
    """A fresh bucket per test on the S3 endpoint."""
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture(params=["local", "s3"])
def lake_uri(request, tmp_path) -> str:
    """Run a test against a local-folder lake and an S3-endpoint lake."""
    if request.param == "local":
        return str(tmp_path / "lake")
    return request.getfixturevalue("s3_lake_uri")


@pytest.fixture
def platform() -> str:
    """A platform name unique to the test, so its topic is isolated on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


HAVE_TORCH = importlib.util.find_spec("torch") is not None


def pytest_collection_modifyitems(config, items):
    """``torch`` tests (training, the torch engine) need the torch extra; the default CPU
    install has none, so they are skipped there and run in CI's torch pass (.ci/run)."""
    if HAVE_TORCH:
        return
    skip = pytest.mark.skip(reason="needs the torch extra (scripts/setup.sh --torch)")
    for item in items:
        if "torch" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Print what tests recorded with ``record_property("report", ...)`` (e.g. where the
    crash test's kills landed), so CI's log shows it without -s."""
    lines = [f"{r.nodeid}: {v}" for r in terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
             if r.when == "call" for k, v in r.user_properties if k == "report"]
    if lines:
        terminalreporter.section("reports")
        for line in lines:
            terminalreporter.write_line(line)
