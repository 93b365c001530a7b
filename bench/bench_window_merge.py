"""Window marts benchmark: one micro-batch's dbt step as the hour fills up.

The lake of one hour is written the way the live path writes it, in micro-batches
(``--batches``: one raw file per platform and one score file each; 360 = one every
10 s). At a few points of the hour (``--at``, fractions), with the earlier batches
already in the warehouse, the next batch goes through the window's dbt models
(live_job's dbt selection, the real Dagster asset, dbt in process) twice:

- ``merge`` (the default): only the batch's new files are merged (aggregation/merge.py);
- ``rebuild`` (the baseline, the behaviour before): the window is rebuilt from every file.

Prints the wall time of each (the run, the plan and the record included) and the
ratio, per point of the hour.

    .venv/bin/python bench/bench_window_merge.py [--posts-per-hour 360000] [--batches 360] [--at 0.1 0.5 1.0]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import dagster as dg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts-per-hour", type=int, default=360_000, help="100 posts/s by default")
    ap.add_argument("--batches", type=int, default=360)
    ap.add_argument("--at", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    args = ap.parse_args()

    from reputation_pipeline.aggregation import dbt_resource
    from reputation_pipeline.aggregation.assets import reputation_dbt_assets
    from reputation_pipeline.aggregation.sample_lake import SampleLakeSpec, write_sample_lake
    from reputation_pipeline.aggregation.warehouse import WarehouseResource
    from reputation_pipeline.lake.store import open_lake
    from reputation_pipeline.pipeline.jobs import WINDOW_MODELS
    from reputation_pipeline.resources import LakeResource

    # the hour before this one: within the merge retention (REPUTATION_MERGE_RETENTION_HOURS)
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    brands = ("acme", "globex", "initech")
    spec = SampleLakeSpec(start=start, hours=1, brands=brands, crisis_brand="acme", crisis_hours=1,
                          posts_per_brand_hour=args.posts_per_hour // len(brands), batches=args.batches)
    work = tempfile.mkdtemp(prefix="bench-merge-")
    lake = os.path.join(work, "lake")
    store = open_lake(lake)
    resources = {"dbt": dbt_resource(), "warehouse": WarehouseResource(duckdb_path=os.path.join(work, "wh.duckdb")),
                 "lake": LakeResource(uri=lake)}
    tags = {"dagster/asset_partition_range_start": start.strftime("%Y-%m-%d-%H:%M"),
            "dagster/asset_partition_range_end": start.strftime("%Y-%m-%d-%H:%M")}
    instance = dg.DagsterInstance.ephemeral()

    def build(merge: bool, everything: bool = False) -> float:
        t = time.perf_counter()
        res = dg.materialize([reputation_dbt_assets], resources=resources, tags=tags, instance=instance,
                             selection=None if everything else WINDOW_MODELS.without_checks(),
                             run_config={"ops": {"reputation_dbt": {"config": {"merge_new_files": merge}}}})
        assert res.success
        return time.perf_counter() - t

    written = 0
    points = []
    for frac in sorted(args.at):
        k = max(1, min(args.batches - 1, round(frac * args.batches)))
        write_sample_lake(store, spec, only_batches=range(written, k))  # the hour so far, in the warehouse
        build(merge=False, everything=written == 0)
        write_sample_lake(store, spec, only_batches=[k])  # the micro-batch
        written = k + 1
        merge_s = build(merge=True)
        rebuild_s = build(merge=False)
        point = {"hour_filled": round(k / args.batches, 2), "batches_in_hour": k + 1,
                 "posts_in_hour": round(args.posts_per_hour * (k + 1) / args.batches),
                 "rebuild_s": round(rebuild_s, 2), "merge_s": round(merge_s, 2),
                 "merge_vs_rebuild": round(merge_s / rebuild_s, 2)}
        points.append(point)
        print(json.dumps(point), file=sys.stderr, flush=True)
    print(json.dumps({"posts_per_hour": args.posts_per_hour, "batches_per_hour": args.batches,
                      "micro_batch_dbt_step": points}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
