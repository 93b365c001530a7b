"""Run bookkeeping benchmark: the Dagster instance's cost per run.

The headless driver executes three small runs per micro-batch (ingest, scoring,
dbt + alerts), each writing a few dozen events. This times a small run of the
same shape (two partitioned assets logging a few lines, a materialization each,
an asset check) executed in process against:

- ``dagster-default``: Dagster's default SQLite storage (the baseline: one
  event-log database per run, a new connection for every event);
- ``project``: the instance ``reputation-pipeline`` creates (``pipeline/storage.py``:
  pooled connections, one event-log file);
- ``in-memory``: an ephemeral instance, the floor (nothing stored).

    .venv/bin/python bench/bench_instance.py [--runs 20]
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import dagster as dg

PARTITIONS = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00")


@dg.asset(partitions_def=PARTITIONS)
def upstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for i in range(4):
        context.log.info(f"file {i} scored")
    return dg.MaterializeResult(metadata={"rows": 100})


@dg.asset(partitions_def=PARTITIONS, deps=[upstream])
def downstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info("window rebuilt")
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=downstream)
def downstream_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def per_run_ms(instance: dg.DagsterInstance, runs: int) -> list[float]:
    defs = dg.Definitions(assets=[upstream, downstream], asset_checks=[downstream_ok],
                          jobs=[dg.define_asset_job("bench_job")])
    job = defs.resolve_job_def("bench_job")
    key = PARTITIONS.get_last_partition_key()
    for _ in range(2):  # warm-up: imports, schema creation
        job.execute_in_process(instance=instance, partition_key=key)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        assert job.execute_in_process(instance=instance, partition_key=key).success
        out.append((time.perf_counter() - t) * 1000)
    return out


def measure(kind: str, runs: int) -> list[float]:
    from reputation_pipeline.pipeline.instance import ensure_dagster_home, headless_instance

    if kind == "in-memory":
        with dg.DagsterInstance.ephemeral() as instance:
            return per_run_ms(instance, runs)
    with tempfile.TemporaryDirectory() as home:
        os.environ["DAGSTER_HOME"] = home
        if kind == "dagster-default":
            with open(os.path.join(home, "dagster.yaml"), "w") as f:
                f.write("telemetry:\n  enabled: false\n")
        else:
            ensure_dagster_home()
        with dg.DagsterInstance.get() as base:
            # as the driver runs them: no compute-log capture (pipeline/instance.py)
            return per_run_ms(headless_instance(base), runs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    results = {}
    for kind in ("dagster-default", "project", "in-memory"):
        ms = measure(kind, args.runs)
        results[kind] = {"median_ms_per_run": round(statistics.median(ms)), "p90_ms_per_run":
                         round(statistics.quantiles(ms, n=10, method="inclusive")[-1])}
    base = results["dagster-default"]["median_ms_per_run"]
    for r in results.values():
        r["ratio_vs_dagster_default"] = round(r["median_ms_per_run"] / base, 2)
    print(json.dumps({"runs": args.runs, **results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
