"""The Dagster UI serves the project's asset graph: start ``dagster-webserver`` on
the real code location, ask its GraphQL API for the asset list, render the
lineage graph and the asset catalog in headless Chromium, save a screenshot
under reputation_pipeline_tests/artifacts/ and check the asset names are on the
rendered pages (not just in the HTML shell: the names only appear once the
React app has queried the server and drawn the graph)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reputation_pipeline.stack.local import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
INSTALL = REPO / "scripts" / "install_chromium.sh"

# the spine of the pipeline: every stage must be in the graph
EXPECTED_ASSETS = {
    "raw_posts", "quarantined_posts", "post_scores", "stg_posts", "stg_post_scores", "int_posts_scored",
    "fct_brand_mentions", "fct_brand_risk_window", "mart_brand_baselines", "mart_alert_candidates",
    "brand_alerts", "published_marts", "brands", "platform_weights",
}
# short enough that the graph draws them untruncated
ON_LINEAGE_PAGE = {"raw_posts", "post_scores", "stg_post_scores", "int_posts_scored", "fct_brand_mentions",
                   "brand_alerts", "published_marts"}
ON_CATALOG_PAGE = {"raw_posts", "quarantined_posts", "post_scores", "fct_brand_mentions", "fct_brand_risk_window",
                   "mart_alert_candidates", "brand_alerts", "published_marts"}


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
            pytest.skip(f"chromium is not installed and scripts/install_chromium.sh could not install it: "
                        f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    return CHROMIUM


def _graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out
    return out["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    from reputation_pipeline.pipeline.instance import dagster_yaml

    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(dagster_yaml(home))  # the project's instance (pooled SQLite storage)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    exe = Path(sys.executable).parent / "dagster-webserver"
    cmd = [str(exe) if exe.exists() else shutil.which("dagster-webserver") or "dagster-webserver",
           "-m", "reputation_pipeline.definitions", "-p", str(port), "-h", "127.0.0.1"]
    log = (home / "webserver.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180  # loading the code location imports PyTorch and parses dbt
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {proc.returncode}: "
                            f"{(home / 'webserver.log').read_text()[-2000:]}")
            try:
                data = _graphql(base, "{ repositoriesOrError { __typename ... on RepositoryConnection "
                                      "{ nodes { name } } } }")
                if data["repositoriesOrError"].get("nodes"):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("dagster-webserver did not serve the code location within 180 s")
            time.sleep(1)
        # the UI's own "seen the community dialog" mutation, so no modal covers the graph
        _graphql(base, "mutation { setNuxSeen }")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _chromium(binary: str, profile: Path, url: str, *extra: str, budget_ms: int = 20000) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url]
    return subprocess.run(cmd, capture_output=True, timeout=180)


def test_asset_graph_in_the_ui(webserver, chromium, artifacts_dir, tmp_path):
    nodes = _graphql(webserver, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert EXPECTED_ASSETS <= keys, sorted(EXPECTED_ASSETS - keys)
    groups = {n["groupName"] for n in nodes}
    assert {"ingest", "scoring", "dbt_staging", "dbt_marts", "alerts"} <= groups, groups

    # lineage: everything downstream of raw_posts, drawn as individual asset nodes
    lineage = f"{webserver}/assets/raw_posts?view=lineage&lineageScope=downstream&lineageDepth=10"
    shot = artifacts_dir / "ui_asset_lineage.png"
    shot.unlink(missing_ok=True)
    proc = _chromium(chromium, tmp_path / "p1", lineage, f"--screenshot={shot}", "--window-size=1600,1000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 30_000, "screenshot missing or blank"

    dom = _chromium(chromium, tmp_path / "p2", lineage, "--dump-dom", "--window-size=1600,1000").stdout.decode()
    missing = {n for n in ON_LINEAGE_PAGE if f">{n}<" not in dom}
    assert not missing, f"asset nodes not drawn on the lineage page: {sorted(missing)}"

    # the catalog lists the assets by full name (a tall window: the list is virtualized)
    catalog = _chromium(chromium, tmp_path / "p3", f"{webserver}/assets", "--dump-dom",
                        "--window-size=1600,2400").stdout.decode()
    missing = {n for n in ON_CATALOG_PAGE if f">{n}<" not in catalog}
    assert not missing, f"assets missing from the catalog page: {sorted(missing)}"

    # the global lineage (asset groups) for the record
    groups_shot = artifacts_dir / "ui_global_lineage.png"
    _chromium(chromium, tmp_path / "p4", f"{webserver}/asset-groups", f"--screenshot={groups_shot}",
              "--window-size=1600,1000")
