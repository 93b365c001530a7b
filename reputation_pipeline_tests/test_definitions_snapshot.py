"""What the code location defines, as a reviewer reads it in a diff: every asset with its
group, kinds, partitioning, pool and upstream keys; every asset check; each job's asset
selection; the sensors. A change to the definitions shows up here as a snapshot change
(regenerate with ``REPUTATION_UPDATE_SNAPSHOT=1``), as in dagster-open-platform's test_defs."""
import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(defs) -> dict:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitioned": node.partitions_def is not None,
            "pools": sorted(p for p in (node.pools or []) if p),
            "automation": condition.get_label() or type(condition).__name__ if condition else None,
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
        }
    jobs = {}
    for job in sorted(repo.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue  # Dagster's implicit job of every asset
        jobs[job.name] = sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
    return {
        "assets": assets,
        "asset_checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
        "jobs": jobs,
        "sensors": {s.name: {"default_status": s.default_status.value, "minimum_interval_seconds": s.minimum_interval_seconds}
                    for s in sorted(repo.sensor_defs, key=lambda s: s.name)},
    }


def test_the_definitions_match_their_snapshot():
    from reputation_pipeline.definitions import defs

    got = describe(defs)
    if os.environ.get("REPUTATION_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "asset_checks", "jobs", "sensors"):
        assert got[part] == want[part], f"{part} changed: review it, then REPUTATION_UPDATE_SNAPSHOT=1 pytest {__file__}"
