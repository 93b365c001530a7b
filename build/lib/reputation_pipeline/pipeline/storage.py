"""SQLite run and event-log storage for the local Dagster instance, with one
connection pool per storage object.

Dagster's SQLite storages create a SQLAlchemy engine (and a new SQLite connection)
for every read and every event they write, and the default event log keeps one
database file per run, created with its schema and migration stamp when the run
starts. The headless driver runs three small runs every few seconds, each writing
dozens of events: that bookkeeping cost 0.4 s per run on the 2-core reference
machine (``bench/bench_instance.py``), paid on the alert path of every micro-batch.

These subclasses keep Dagster's schema, migrations, WAL journal and busy timeout;
they only keep one engine per storage object and process (a pool of connections,
released after each transaction), and the event log is the consolidated one: one
``event_log.db`` for every run. The webserver, the daemon and the runs share the
files as with Dagster's own SQLite storage. Production instances use Postgres
(``dagster-postgres``), which pools its connections anyway.
"""
from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    SQLITE_EVENT_LOG_FILENAME,
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer


class _Engines:
    """One engine per process for a connection string: a forked child never reuses its
    parent's connections (it makes its own engine on first use)."""

    def __init__(self, conn_string: str):
        self.conn_string = conn_string
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self._pid = -1
        _ALL_ENGINES.add(self)

    def get(self) -> sa.Engine:
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)  # the parent's connections stay the parent's
                # check_same_thread off: a pooled connection serves one thread at a time, but not
                # always the thread that opened it
                self._engine = sa.create_engine(self.conn_string, connect_args={
                    "timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
                self._pid = os.getpid()
            return self._engine

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.get().connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None


_ALL_ENGINES: "weakref.WeakSet[_Engines]" = weakref.WeakSet()


def _fresh_locks_in_child() -> None:
    # a fork taken while another thread held a lock would leave it held forever in the child
    for engines in list(_ALL_ENGINES):
        engines._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


class PooledSqliteRunStorage(SqliteRunStorage):
    """``SqliteRunStorage`` (``<base_dir>/runs.db``) with pooled connections."""

    def __init__(self, conn_string: str, inst_data=None):
        super().__init__(conn_string, inst_data)
        self._engines = _Engines(conn_string)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self._engines.transaction() as conn:
            yield conn

    def dispose(self) -> None:
        self._engines.dispose()
        super().dispose()


class PooledSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log (``<base_dir>/event_log.db``, every run in
    one file, no database to create per run) with pooled connections."""

    def __init__(self, base_dir, inst_data=None):
        # before Dagster's __init__, which creates the database through _connect
        self._engines = _Engines(create_db_conn_string(base_dir, SQLITE_EVENT_LOG_FILENAME))
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        with self._engines.transaction() as conn:
            yield conn

    def watch(self, run_id, cursor, callback) -> None:
        # Dagster's watchdog looks at event_log.db only, which a WAL database changes when it
        # is checkpointed: each time the last connection closes, without a pool. Pooled
        # connections stay open, so a run's events land in event_log.db-wal: watch both.
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
            self._obs.schedule(_EventLogWatchdog(self), self._base_dir, recursive=True)
        self._watchers[run_id][callback] = cursor

    def dispose(self) -> None:
        self._engines.dispose()
        super().dispose()


class _EventLogWatchdog(PatternMatchingEventHandler):
    """Tells the storage's watchers (the UI's live run logs) that events were written."""

    def __init__(self, storage: PooledSqliteEventLogStorage):
        self._storage = storage
        db = storage.get_db_path()
        super().__init__(patterns=[db, db + "-wal"])

    def on_modified(self, event) -> None:
        self._storage.on_modified()

    on_created = on_modified
