"""dbt in this process: dbt-core's Python API (``dbtRunner``) with the parsed
manifest kept in memory between invocations.

A ``dbt`` subprocess pays, on every micro-batch, for its interpreter start-up and
imports, reading ``partial_parse.msgpack`` back into a manifest, and a second DuckDB
instance: 9 s on a quiet 2-core machine for four models that take 2 s
(docs/operations.md, "Alert latency"). Here the project is parsed once per process
(and again only when its files, the vars or the environment it read change), and
each build reuses that manifest. dbt results become the same Dagster events as
``DbtCliInvocation.stream()`` yields (dagster-dbt's own ``DbtCoreCliEventMessage``
translation), so materializations and asset checks are unchanged.

dbt keeps global state (flags, the event manager, the adapter), so invocations in
one process are serialized by a lock; and the DuckDB file is closed after each one,
as the subprocess did by exiting: the alert step opens it next, and DuckDB refuses a
second handle on one file with a different configuration."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from reputation_pipeline.aggregation.reference import reference_fingerprint

_LOCK = threading.Lock()  # one dbt invocation at a time in this process
# (project fingerprint, args) -> (dbt Manifest, the environment variables its parse read)
_MANIFESTS: dict[tuple, tuple[Any, dict[str, str]]] = {}
# common args -> a `dbt parse` subprocess writing their target folder's partial_parse.msgpack
_AHEAD: dict[tuple, subprocess.Popen] = {}
AHEAD_TIMEOUT_S = 120.0


def parse_ahead(executable: str, shared: Sequence[str], target_path: Path) -> bool:
    """Start ``dbt parse`` with these flags in a subprocess, unless the target folder has a
    partial parse already: the first in-process parse then reads it (about 2 s on a 2-core
    machine) instead of parsing the whole project (about 6.6 s). A fresh warehouse has a
    fresh target folder (project.py ``state_target_path``), so its first build would parse in full on
    the alert path; started with the headless driver, the subprocess parses on the other
    core while the scoring models load, at the lowest CPU priority. ``parsed_manifest`` waits
    for it."""
    key = tuple(shared)
    if key in _AHEAD or (Path(target_path) / "partial_parse.msgpack").exists():
        return False
    proc = subprocess.Popen([executable, "parse", *shared, "--quiet", "--no-send-anonymous-usage-stats"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the lowest CPU priority: it takes the cores the pipeline leaves idle (the model load, the
    # single-threaded dbt and ingest steps) and never slows scoring down; the first build waiting
    # for it leaves both cores to it
    with contextlib.suppress(AttributeError, OSError):  # no setpriority (Windows): normal priority
        os.setpriority(os.PRIO_PROCESS, proc.pid, 19)
    _AHEAD[key] = proc
    return True


def finish_parse_ahead(shared: Sequence[str] | None = None, timeout_s: float = AHEAD_TIMEOUT_S) -> None:
    """Wait for the parse started ahead with these flags (every one without), killing one that
    runs past ``timeout_s``: dbt then parses in process as it would have (a partial parse file it
    cannot read makes dbt parse in full)."""
    keys = [tuple(shared)] if shared is not None else list(_AHEAD)
    deadline = time.monotonic() + timeout_s
    for key in keys:
        proc = _AHEAD.pop(key, None)
        if proc is None:
            continue
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _env_changed(parse_env: Mapping[str, str]) -> bool:
    """Whether an environment variable read while parsing (dbt records each one, or a
    placeholder when it was unset and the default applied) differs now."""
    from dbt.constants import DEFAULT_ENV_PLACEHOLDER

    for name, value in parse_env.items():
        now = os.environ.get(name)
        if (now is not None) if value == DEFAULT_ENV_PLACEHOLDER else (now != value):
            return True
    return False


def parsed_manifest(common_args: Sequence[str], project_dir: Path) -> Any:
    """The project's manifest for these flags (vars, target, folders): parsed on first
    use (partially, from the target folder's partial_parse.msgpack when there is one),
    then kept while the project's files and the environment it read stay the same.
    Call with ``_LOCK`` held."""
    from dbt.cli.main import dbtRunner

    key = (reference_fingerprint(project_dir), tuple(common_args))
    kept = _MANIFESTS.get(key)
    if kept is not None and not _env_changed(kept[1]):
        return kept[0]
    finish_parse_ahead(common_args)  # its partial parse, not a second writer of the target folder
    res = dbtRunner().invoke(["parse", *common_args, "--quiet"])
    if not res.success:
        raise dg.Failure(description=f"dbt parse failed: {res.exception or 'see the dbt log'}")
    _MANIFESTS.clear()  # one project per process: an edited one replaces the old manifest
    # A copy: builds record in manifest.env_vars the variables read at execution too (the
    # window, the files to merge), which change every micro-batch but say nothing about
    # the parse; compared with those, every micro-batch would parse again (0.3 s).
    _MANIFESTS[key] = (res.result, dict(getattr(res.result, "env_vars", None) or {}))
    return res.result


def close_warehouse_handles() -> None:
    """Close dbt-duckdb's DuckDB instance (it stays open in the process otherwise)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with contextlib.suppress(Exception):  # none was opened (e.g. the invocation failed early)
        DuckDBConnectionManager.env().close()
    DuckDBConnectionManager.close_all_connections()


def common_args(*, project_dir: Path, profiles_dir: str, target: str | None, target_path: Path,
                dbt_vars: Mapping[str, Any]) -> list[str]:
    """Flags shared by the parse and every build: what a subprocess got from DBT_* variables."""
    return ["--project-dir", os.fspath(project_dir), "--profiles-dir", profiles_dir,
            *(["--target", target] if target else []),
            "--target-path", os.fspath(target_path), "--log-path", os.fspath(target_path),
            "--vars", json.dumps(dict(dbt_vars), sort_keys=True)]


def stream_build(context: dg.AssetExecutionContext, *, args: Sequence[str], shared: Sequence[str],
                 manifest_json: Mapping[str, Any], translator, project, target_path: Path) -> Iterator[Any]:
    """``dbt <args>`` in this process; yields the Dagster events of its node results as
    they finish (Outputs, AssetCheckResults), then raises if dbt failed."""
    from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    results: queue.Queue = queue.Queue()
    errors: list[str] = []
    done = object()

    def on_event(msg) -> None:  # called on dbt's threads; dbt itself prints its log lines
        if msg.info.level == "error":
            errors.append(msg.info.msg)
        if msg.info.name in ("LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult"):
            results.put(msg_to_dict(msg))

    outcome: dict[str, Any] = {}

    def invoke() -> None:
        try:
            with _LOCK:
                try:
                    manifest = parsed_manifest(shared, project.project_dir)
                    outcome["result"] = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(
                        [*args, *shared])
                finally:
                    close_warehouse_handles()
        except BaseException as exc:  # noqa: BLE001 -- raised on the step's thread below
            outcome["exception"] = exc
        finally:
            results.put(done)

    # dbt runs on a worker thread so that each node's result reaches Dagster when it finishes
    worker = threading.Thread(target=invoke, name="dbt-in-process", daemon=True)
    worker.start()
    while (raw := results.get()) is not done:
        event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
        yield from event.to_default_asset_events(manifest=manifest_json, dagster_dbt_translator=translator,
                                                 context=context, target_path=target_path, project=project)
    worker.join()
    if "exception" in outcome:
        raise outcome["exception"]
    res = outcome["result"]
    if not res.success:
        detail = "\n".join(errors[-10:]) or repr(res.exception)
        raise dg.Failure(description=f"dbt {' '.join(args[:1])} failed in process (log: {target_path / 'dbt.log'}):\n{detail}")
