"""The local Dagster instance's storage (pipeline/storage.py): Dagster's SQLite schema with
pooled connections and one event-log file, shared by every instance object, thread and
process on the same DAGSTER_HOME."""
import multiprocessing
import threading
import uuid

import dagster as dg
import pytest

from reputation_pipeline.pipeline.instance import ensure_dagster_home, headless_instance
from reputation_pipeline.pipeline.storage import PooledSqliteEventLogStorage, PooledSqliteRunStorage

PARTITIONS = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00")


@dg.asset(partitions_def=PARTITIONS)
def counted(context):
    context.log.info("counting")
    return dg.MaterializeResult(metadata={"rows": 7})


JOB = dg.Definitions(assets=[counted], jobs=[dg.define_asset_job("counted_job")]).resolve_job_def("counted_job")
KEY = "2026-11-01-10:00"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return ensure_dagster_home()


def test_new_home_records_runs_in_pooled_storage_that_other_instances_read(home):
    with dg.DagsterInstance.get() as writer:
        assert isinstance(writer.run_storage, PooledSqliteRunStorage)
        assert isinstance(writer.event_log_storage, PooledSqliteEventLogStorage)
        driver = headless_instance(writer)  # the driver's stage instance: its own storage objects
        results = [JOB.execute_in_process(instance=driver, partition_key=KEY) for _ in range(3)]
    assert (home / "history" / "event_log" / "event_log.db").exists()
    assert not (home / "history" / "runs").exists()  # no per-run database

    with dg.DagsterInstance.get() as reader:  # e.g. the webserver
        assert {r.run_id for r in reader.get_runs()} == {r.run_id for r in results}
        assert all(reader.get_run_by_id(r.run_id).is_success for r in results)
        mats = reader.fetch_materializations(dg.AssetKey("counted"), limit=10).records
        assert [m.asset_materialization.metadata["rows"].value for m in mats] == [7, 7, 7]
        logs = [e.user_message for e in reader.all_logs(results[0].run_id)]
        assert "counting" in logs


def test_existing_home_keeps_its_configuration(tmp_path, monkeypatch):
    home = tmp_path / "old"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    with dg.DagsterInstance.get() as instance:
        assert not isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)


def test_runs_on_two_threads_share_the_pooled_storage(home):
    with dg.DagsterInstance.get() as base:
        stages = [headless_instance(base), headless_instance(base)]
        errors: list[BaseException] = []

        def work(instance):
            try:
                for _ in range(3):
                    assert JOB.execute_in_process(instance=instance, partition_key=KEY).success
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in stages]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        assert len(base.get_runs()) == 6


def test_a_watcher_sees_events_another_instance_writes(home):
    """The UI's live run logs: pooled connections keep the WAL open, so the watcher must
    react to writes in event_log.db-wal (Dagster's own watches event_log.db only)."""
    run_id = str(uuid.uuid4())
    seen = threading.Event()
    with dg.DagsterInstance.get() as ui, dg.DagsterInstance.get() as worker:
        JOB.execute_in_process(instance=worker, partition_key=KEY)  # WAL exists and stays open
        ui.event_log_storage.watch(run_id, None, lambda event, cursor: seen.set())
        JOB.execute_in_process(instance=worker, partition_key=KEY, run_id=run_id)
        assert seen.wait(15), "the watcher was not told about the run's events"
        ui.event_log_storage.end_watch(run_id, None)


def _child_run(home: str, queue) -> None:
    import os

    os.environ["DAGSTER_HOME"] = home
    inherited = [s._engines._engine for s in (_INHERITED.run_storage, _INHERITED.event_log_storage)]
    try:
        run_id = JOB.execute_in_process(instance=_INHERITED, partition_key=KEY).run_id
        own = [s._engines._engine for s in (_INHERITED.run_storage, _INHERITED.event_log_storage)]
        queue.put((run_id, all(a is not b for a, b in zip(inherited, own))))
    except BaseException as exc:  # noqa: BLE001
        queue.put((repr(exc), False))


_INHERITED: dg.DagsterInstance | None = None


def test_a_forked_child_opens_its_own_connections(home):
    """A child forked after the parent used the storage (its pool holds open connections)
    writes through connections of its own; the parent's stay usable."""
    global _INHERITED
    with dg.DagsterInstance.get() as parent:
        JOB.execute_in_process(instance=parent, partition_key=KEY)
        _INHERITED = parent
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_run, args=(str(home), queue), daemon=True)
        child.start()
        child_run, own_engines = queue.get(timeout=120)
        child.join(60)
        assert child.exitcode == 0 and parent.get_run_by_id(child_run).is_success, child_run
        assert own_engines, "the child wrote through the connections it inherited"
        assert JOB.execute_in_process(instance=parent, partition_key=KEY).success
        assert len(parent.get_runs()) == 3
