"""A held warehouse (aggregation/warehouse.py ``hold``): one DuckDB instance that every
connection of the process shares, closed (and checkpointed) only when the last hold ends;
another process opens the file only once it is released."""
import contextlib
import os
import subprocess
import sys

from reputation_pipeline.aggregation.warehouse import WarehouseResource, held_config, released


def other_process_opens(path: str) -> bool:
    code = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    return subprocess.run([sys.executable, "-c", code, path], capture_output=True).returncode == 0


def test_a_held_warehouse_is_shared_and_checkpointed_once(tmp_path):
    lake = str(tmp_path / "lake")
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "wh.duckdb"))
    path = warehouse.path_for(lake)
    wal = path + ".wal"

    with warehouse.held(lake):
        assert held_config(path) == warehouse.duckdb_config()
        with contextlib.closing(warehouse.connect(lake)) as conn:
            conn.execute("create table t as select 1 as x")
        # the writer closed, the file stays open: its changes wait in the WAL, not checkpointed
        assert os.path.exists(wal)
        # read_only would be another configuration for an open file: the hold is shared instead
        with contextlib.closing(warehouse.connect(lake, read_only=True)) as conn:
            assert conn.execute("select x from t").fetchall() == [(1,)]
            assert conn.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)
        with warehouse.held(lake):  # nested: the same instance
            with contextlib.closing(warehouse.connect(lake)) as conn:
                conn.execute("insert into t values (2)")
        assert held_config(path) is not None
        assert not other_process_opens(path)
        with released(path):  # e.g. for a dbt subprocess
            assert held_config(path) is None and other_process_opens(path)
        assert held_config(path) is not None and not other_process_opens(path)
        with contextlib.closing(warehouse.connect(lake)) as conn:
            assert conn.execute("select sum(x) from t").fetchone() == (3,)

    # the last hold closed the file: checkpointed, free for other processes
    assert held_config(path) is None and not os.path.exists(wal)
    assert other_process_opens(path)


def test_unheld_connections_open_and_close_the_file(tmp_path):
    lake = str(tmp_path / "lake")
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "wh.duckdb"))
    with contextlib.closing(warehouse.connect(lake)) as conn:
        conn.execute("create table t as select 1 as x")
    assert other_process_opens(warehouse.path_for(lake))
    with released(warehouse.path_for(lake)):  # nothing held: nothing to do
        pass
    with contextlib.closing(warehouse.connect(lake, read_only=True)) as conn:
        assert conn.execute("select x from t").fetchall() == [(1,)]
