"""What scoring knows about an hour's score files, kept per process.

Every micro-batch asks two questions about the hour it scores: which post_ids are
scored already (``score_partition``), and are the hour's scores valid
(``scores_in_range``). Answering from the files means reading every score file of
the hour, a few more each micro-batch: about 1,400 files by the end of an hour at
100 posts/s, read twice per micro-batch. Score files are written once (if-absent)
and never changed, so each file is read once per process and its facts kept: its
post_ids and its validity counts. A file that disappears (an operator cleaned the
folder) resets that hour.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class _Hour:
    files: dict[str, dict[str, int] | None] = field(default_factory=dict)  # key -> validity counts (None: not read yet)
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0  # post_ids seen in more than one row of the hour
    rows: int = 0


class ScoreFileIndex:
    def __init__(self, max_hours: int = 8):
        self._hours: OrderedDict[str, _Hour] = OrderedDict()
        self._max_hours = max_hours
        self._lock = threading.Lock()

    def _hour(self, url: str, keys: set[str]) -> _Hour:
        hour = self._hours.get(url)
        if hour is None or not set(hour.files) <= keys:
            hour = self._hours[url] = _Hour()
        self._hours.move_to_end(url)
        while len(self._hours) > self._max_hours:
            self._hours.popitem(last=False)
        return hour

    @staticmethod
    def _add(hour: _Hour, key: str, ids: list, counts: dict[str, int] | None) -> None:
        present = [x for x in ids if x is not None]
        before = len(hour.ids)
        hour.ids.update(present)
        hour.duplicates += len(present) - (len(hour.ids) - before)
        hour.rows += len(ids)
        hour.files[key] = counts

    def post_ids(self, url: str, keys: Iterable[str], read_ids: Callable[[str], list]) -> set[str]:
        """The post_ids of the files ``keys`` of the hour at ``url`` (a live set: copy it
        before changing it); ``read_ids(key)`` reads a file not seen yet."""
        keys = set(keys)
        with self._lock:
            hour = self._hour(url, keys)
            for key in sorted(keys - set(hour.files)):
                self._add(hour, key, read_ids(key), None)
            return hour.ids

    def wrote(self, url: str, keys: Iterable[str], key: str, table: pa.Table,
              validate: Callable[[pa.Table], dict[str, int]]) -> None:
        """Record a file this process has just written (``keys``: the hour's files, with or
        without it), from the table in memory instead of reading it back."""
        with self._lock:
            hour = self._hour(url, set(keys) | {key})
            if key not in hour.files:
                self._add(hour, key, table.column("post_id").to_pylist(), validate(table))

    def validity(self, url: str, keys: Iterable[str], read: Callable[[str], pa.Table],
                 validate: Callable[[pa.Table], dict[str, int]]) -> tuple[int, dict[str, int]]:
        """(rows, summed validity counts) of the hour's files, with ``duplicate_post_ids``
        across the whole hour; each file is read and validated once."""
        keys = set(keys)
        with self._lock:
            hour = self._hour(url, keys)
            for key in sorted(keys):
                if hour.files.get(key) is None:
                    table = read(key)
                    if key in hour.files:  # ids known already: only the counts were missing
                        hour.files[key] = validate(table)
                    else:
                        self._add(hour, key, table.column("post_id").to_pylist(), validate(table))
            totals: dict[str, int] = {}
            for counts in hour.files.values():
                for name, n in (counts or {}).items():
                    totals[name] = totals.get(name, 0) + n
            totals["duplicate_post_ids"] = hour.duplicates
            return hour.rows, totals


SCORE_FILES = ScoreFileIndex()
