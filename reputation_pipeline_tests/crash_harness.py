"""Runs ``reputation-pipeline ingest --until-drained`` and SIGKILLs it at a chosen
point of the exactly-once protocol, so a crash test's kills land where it says,
on any machine at any speed.

    python -m reputation_pipeline_tests.crash_harness PHASE N -- <cli args>

The lake changes only through ``LakeStore.put``; every crash state is therefore
"just before" or "just after" one of its puts. PHASE names one of them and N its
occurrence in this process (1-based):

- ``plan``: the n-th plan object is durable (no run has read its range yet);
- ``data``: the n-th raw data file is durable, its commit is not written
  (between two data files of a plan, or after its last one);
- ``rename``: the n-th raw data file's temp file is written and fsynced, not yet
  renamed into place (local lakes only: an S3 PUT has no such state);
- ``commit-before``: every file of a plan is durable, its commit manifest is not;
- ``commit``: the n-th commit manifest is durable, the group offset is not
  committed and the next plan has not started.

Before it dies the process prints one JSON line ``{"phase", "key"}`` on stdout
(flushed), so the test knows where the kill landed."""
from __future__ import annotations

import json
import os
import signal
import sys

from reputation_pipeline.lake import store as lake_store

PHASES = ("plan", "data", "rename", "commit-before", "commit")


def kind_of(key: str) -> str | None:
    if key.startswith("_ingest/plans/"):
        return "plan"
    if key.startswith("_ingest/commits/"):
        return "commit"
    if key.startswith("raw/posts/") and key.endswith(".parquet"):
        return "data"
    return None


def install(phase: str, nth: int) -> None:
    if phase not in PHASES or nth < 1:
        raise SystemExit(f"crash_harness: unknown point {phase} {nth}")
    seen = {p: 0 for p in PHASES}

    def die(point: str, key: str) -> None:
        sys.stdout.write(json.dumps({"phase": point, "key": key}) + "\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def reached(point: str, key: str) -> None:
        seen[point] += 1
        if point == phase and seen[point] == nth:
            die(point, key)

    def wrap(cls) -> None:
        original = cls.put

        def put(self, key, data, *, if_absent=False):
            kind = kind_of(key)
            if kind == "commit":
                reached("commit-before", key)
            if kind == "data" and isinstance(self, lake_store.LocalStore):
                # the rename into place is the data file's commit point on a local lake
                real_replace = os.replace

                def replace(src, dst, *a, **kw):
                    reached("rename", key)
                    return real_replace(src, dst, *a, **kw)

                os.replace = replace
                try:
                    ok = original(self, key, data, if_absent=if_absent)
                finally:
                    os.replace = real_replace
            else:
                ok = original(self, key, data, if_absent=if_absent)
            if kind is not None and ok:
                reached(kind, key)
            return ok

        cls.put = put

    wrap(lake_store.LocalStore)
    wrap(lake_store.S3Store)


def main(argv: list[str]) -> int:
    phase, nth, sep, *cli_args = argv
    if sep != "--":
        raise SystemExit("usage: crash_harness PHASE N -- <cli args>")
    install(phase, int(nth))
    from reputation_pipeline.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
