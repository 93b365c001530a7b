"""``reputation-pipeline stack up|down|status|env``.

Apache Kafka runs from its Maven Central artifacts (resolved once by Maven
into a cache folder) as a single KRaft node on loopback; the S3 endpoint is
moto server. State (pids, ports, broker data, logs) lives in
``REPUTATION_STACK_DIR`` (default ``./.stack``), so ``up`` on an empty folder is
a fresh stack and ``up`` twice is a no-op.
"""
from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from reputation_pipeline import settings

HERE = Path(__file__).resolve().parent
KAFKA_VERSION = "4.1.1"
DEFAULT_BUCKET = settings.S3_BUCKET.default
# Static credentials for the local moto endpoint only; real deployments use
# their own AWS credentials from the environment.
LOCAL_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class StackError(RuntimeError):
    """A clear, actionable problem with the local stack."""


@dataclass(frozen=True)
class StackConfig:
    root: Path
    kafka_port: int
    controller_port: int
    s3_port: int
    bucket: str

    @classmethod
    def from_env(cls) -> "StackConfig":
        kafka_port = settings.KAFKA_PORT.get()
        return cls(
            root=Path(settings.STACK_DIR.get()).resolve(),
            kafka_port=kafka_port,
            controller_port=settings.KAFKA_CONTROLLER_PORT.get() or kafka_port + 1,
            s3_port=settings.S3_PORT.get(),
            bucket=settings.S3_BUCKET.get(),
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


def ensure_env() -> None:
    """Nothing when the environment names a Kafka (``KAFKA_BOOTSTRAP_SERVERS``); else the local
    stack, started if it is not running, with its variables set (the benchmarks' services)."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        cfg = StackConfig.from_env()
        up(cfg)
        os.environ.update(env_vars(cfg))


def env_vars(cfg: StackConfig) -> dict[str, str]:
    """Variables that point the pipeline (and any Kafka/S3 client) at this stack."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap,
        "AWS_ENDPOINT_URL": cfg.s3_url,
        **LOCAL_AWS,
        settings.S3_BUCKET.name: cfg.bucket,
    }


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    """A loopback port nothing holds now, for a server started right after (tests, benchmarks,
    a private stack): the kernel picks it from its ephemeral range."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindable(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now, probed with SO_REUSEADDR as the JVM
    and moto bind. A client connection whose local port this is blocks it while open and, if the
    client closed first, for its minute in TIME_WAIT (the client did not set SO_REUSEADDR): the
    kernel hands client connections ports of ``ip_local_port_range``, which is why the fixed
    ports stay below it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _check_free(*ports: int) -> None:
    for port in ports:
        if _port_open(port):
            raise StackError(f"port {port} is already in use by another process; stop it or choose another "
                             "port (REPUTATION_KAFKA_PORT, REPUTATION_KAFKA_CONTROLLER_PORT, REPUTATION_S3_PORT)")
        if not _bindable(port):
            raise StackError(f"port {port} cannot be bound on 127.0.0.1: a client connection holds it as its "
                             "local port, open or in TIME_WAIT for up to a minute (clients get ports of "
                             "/proc/sys/net/ipv4/ip_local_port_range); choose a port below that range")


def reachable(bootstrap: str) -> bool:
    """Whether the first broker of a bootstrap list accepts TCP connections."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _pidfile(cfg: StackConfig, name: str) -> Path:
    return cfg.root / f"{name}.pid"


def _read_pid(cfg: StackConfig, name: str) -> int | None:
    try:
        return int(_pidfile(cfg, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _spawn(cfg: StackConfig, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cfg.root, env=env or os.environ.copy(),
        )
    _pidfile(cfg, name).write_text(str(proc.pid))
    return proc.pid


def _stop(cfg: StackConfig, name: str, timeout: float = 30.0) -> bool:
    pid = _read_pid(cfg, name)
    if not _alive(pid):
        _pidfile(cfg, name).unlink(missing_ok=True)
        return False
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
    try:  # reap if it was our child
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    _pidfile(cfg, name).unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------- Kafka

def kafka_libs() -> Path:
    """The broker's jars, resolved from Maven Central once and cached."""
    cache = Path(settings.KAFKA_LIBS.get() or Path.home() / ".cache" / "reputation_pipeline" / f"kafka-{KAFKA_VERSION}")
    done = cache / ".complete"
    if done.exists():
        return cache
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("Maven (mvn) is needed once to fetch Apache Kafka's jars from Maven Central; install it or set REPUTATION_KAFKA_LIBS to a folder of Kafka jars.")
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {cache} ...", file=sys.stderr)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(HERE / "kafka-pom.xml"), f"-Dkafka.version={KAFKA_VERSION}",
         "dependency:copy-dependencies", f"-DoutputDirectory={cache}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise StackError(f"Maven could not fetch Kafka:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    done.write_text(KAFKA_VERSION)
    return cache


def new_cluster_id() -> str:
    """A KRaft cluster id (base64url of a random UUID). Like Kafka's own Uuid.randomUuid,
    never one starting with '-': the storage tool would read it as an option (1 start in 64
    failed with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError("Java 17+ is required to run the local Kafka broker (apt-get install openjdk-17-jre-headless), or point KAFKA_BOOTSTRAP_SERVERS at your own Kafka.")
    return java


def _kafka_properties(cfg: StackConfig) -> str:
    data = cfg.root / "kafka" / "data"
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{cfg.controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data}",
        "num.partitions=4",
        "auto.create.topics.enable=true",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "",
    ])


def start_kafka(cfg: StackConfig, wait: float = 90.0) -> None:
    if _alive(_read_pid(cfg, "kafka")):
        return
    _check_free(cfg.kafka_port, cfg.controller_port)
    java, libs = _java(), kafka_libs()
    kdir = cfg.root / "kafka"
    kdir.mkdir(parents=True, exist_ok=True)
    props = kdir / "server.properties"
    props.write_text(_kafka_properties(cfg))
    if not (kdir / "data" / "meta.properties").exists():
        cluster_id = new_cluster_id()
        fmt = subprocess.run(
            [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
    heap = settings.KAFKA_HEAP.get()
    _spawn(cfg, "kafka", [
        java, "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={kdir}", f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
        "-cp", f"{libs}/*", "kafka.Kafka", str(props),
    ], kdir / "stdout.log")
    _wait_kafka(cfg, wait)


def _wait_kafka(cfg: StackConfig, wait: float) -> None:
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + wait
    admin = AdminClient({"bootstrap.servers": cfg.bootstrap, "log_level": 0})
    while time.monotonic() < deadline:
        if not _alive(_read_pid(cfg, "kafka")):
            log = (cfg.root / "kafka" / "server.log")
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise StackError(f"Kafka exited during start; see {log}\n{tail}")
        try:
            md = admin.list_topics(timeout=2)
            if md.brokers:
                return
        except Exception:  # noqa: BLE001 - broker not up yet
            pass
        time.sleep(0.5)
    raise StackError(f"Kafka did not answer on {cfg.bootstrap} within {wait:.0f}s; see {cfg.root / 'kafka' / 'server.log'}")


def stop_kafka(cfg: StackConfig, wait: float = 30.0) -> bool:
    """Stop the broker; returns once its ports are closed, so a start right after can bind them."""
    stopped = _stop(cfg, "kafka")
    deadline = time.monotonic() + wait
    while (_port_open(cfg.kafka_port) or _port_open(cfg.controller_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return stopped


# ---------------------------------------------------------------- S3 (moto)

def start_s3(cfg: StackConfig, wait: float = 30.0) -> None:
    if _alive(_read_pid(cfg, "s3")):
        return
    _check_free(cfg.s3_port)
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise StackError("moto[server] is needed for the local S3 endpoint: pip install 'moto[server]'") from exc
    _spawn(cfg, "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(cfg.s3_port)],
           cfg.root / "s3" / "server.log")
    deadline = time.monotonic() + wait
    while not _port_open(cfg.s3_port):
        if time.monotonic() > deadline or not _alive(_read_pid(cfg, "s3")):
            raise StackError(f"moto server did not start; see {cfg.root / 's3' / 'server.log'}")
        time.sleep(0.2)
    import boto3

    s3 = boto3.client("s3", endpoint_url=cfg.s3_url, aws_access_key_id=LOCAL_AWS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=LOCAL_AWS["AWS_SECRET_ACCESS_KEY"], region_name=LOCAL_AWS["AWS_DEFAULT_REGION"])
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if cfg.bucket not in existing:
        s3.create_bucket(Bucket=cfg.bucket)


# ---------------------------------------------------------------- stack

def up(cfg: StackConfig | None = None) -> dict:
    cfg = cfg or StackConfig.from_env()
    cfg.root.mkdir(parents=True, exist_ok=True)
    start_s3(cfg)
    start_kafka(cfg)
    (cfg.root / "stack.json").write_text(json.dumps(
        {"kafka_port": cfg.kafka_port, "controller_port": cfg.controller_port, "s3_port": cfg.s3_port, "bucket": cfg.bucket}))
    return status(cfg)


def down(cfg: StackConfig | None = None) -> dict:
    cfg = cfg or StackConfig.from_env()
    stop_kafka(cfg)
    _stop(cfg, "s3", timeout=10)
    return status(cfg)


def status(cfg: StackConfig | None = None) -> dict:
    cfg = cfg or StackConfig.from_env()
    kafka_pid, s3_pid = _read_pid(cfg, "kafka"), _read_pid(cfg, "s3")
    return {
        "stack_dir": str(cfg.root),
        "kafka": {"running": _alive(kafka_pid) and _port_open(cfg.kafka_port), "pid": kafka_pid, "bootstrap": cfg.bootstrap},
        "s3": {"running": _alive(s3_pid) and _port_open(cfg.s3_port), "pid": s3_pid, "endpoint": cfg.s3_url, "bucket": cfg.bucket},
    }


def main(action: str) -> int:
    cfg = StackConfig.from_env()
    try:
        if action == "up":
            st = up(cfg)
        elif action == "down":
            st = down(cfg)
        elif action == "status":
            st = status(cfg)
            print(json.dumps(st, indent=2))
            return 0 if st["kafka"]["running"] and st["s3"]["running"] else 3
        elif action == "env":
            for name, value in env_vars(cfg).items():
                print(f"export {name}={shlex.quote(str(value))}")  # safe for eval, whatever the path
            print(f"# lake on the S3 endpoint instead of ./lake:  export REPUTATION_LAKE=s3://{cfg.bucket}/lake")
            return 0
        else:
            raise StackError(f"unknown stack action {action!r}")
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(st, indent=2))
    return 0
