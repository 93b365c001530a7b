"""The dbt project (dbt_project/): where it is, the dbt executable that runs it, its
manifest (``prepare_manifest``: the only place it is parsed for Dagster), the target
folder each warehouse keeps, and what the manifest says about the window models
(``window_models``). Nothing here runs at import, and nothing here imports the rest
of the package (``dagster-dbt project prepare-and-package --file`` loads this file)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# the name of the dbt assets' op (aggregation/assets.py): it names their target folders
DBT_ASSETS_NAME = "reputation_dbt"
# the dbt tag of the models whose SQL or rows depend on the partition window (dbt_project.yml)
WINDOW_TAG = "window"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")


@functools.cache
def dbt_executable() -> str:
    """dbt from PATH, else the one installed beside this interpreter (a venv used
    without activation, e.g. `.venv/bin/python -m pytest`)."""
    found = shutil.which("dbt")
    if found:
        return found
    sibling = Path(sys.executable).parent / "dbt"
    return str(sibling) if sibling.exists() else "dbt"


@contextlib.contextmanager
def _dbt_on_path() -> Iterator[None]:
    """dagster-dbt's project preparer runs `dbt` from PATH: while it runs, the folder of
    ``dbt_executable()`` leads PATH when dbt is not on it already."""
    saved = os.environ.get("PATH")
    if shutil.which("dbt") or not os.path.isabs(dbt_executable()):
        yield
        return
    os.environ["PATH"] = os.pathsep.join(p for p in (os.path.dirname(dbt_executable()), saved) if p)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def _manifest_stale() -> bool:
    """Missing, or older than any file of the dbt project (an edited model or test
    would otherwise run against asset definitions from an old manifest)."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(f.stat().st_mtime > built for sub in ("models", "seeds", "macros", "tests")
               for f in (DBT_PROJECT_DIR / sub).rglob("*") if f.is_file()) or \
        (DBT_PROJECT_DIR / "dbt_project.yml").stat().st_mtime > built


@functools.cache
def prepare_manifest() -> Path:
    """A manifest.json that matches the project, once per process; its path. `dagster dev`
    re-parses on every load; elsewhere (a fresh clone, tests, a deployed code server without
    `dagster-dbt project prepare-and-package`) dbt parses when the manifest is missing or
    older than the project, so the asset definitions always match it. ``@dbt_assets``
    reads it when the assets are defined (aggregation/assets.py calls this first)."""
    with _dbt_on_path():
        dbt_project.prepare_if_dev()
        if _manifest_stale():
            dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


def state_target_path(dbt_vars: Mapping[str, Any], name: str) -> Path:
    """One dbt target folder per warehouse (lake, DuckDB file, extension folder): its
    partial_parse.msgpack carries over to the next invocation. dagster-dbt's default is a
    fresh folder per invocation, seeded from the project's parse (made without these
    vars), so every run would re-parse everything. Invocations on one warehouse never
    overlap: they all run in the ``duckdb`` pool (limit 1)."""
    key = hashlib.sha256(json.dumps(dict(dbt_vars), sort_keys=True).encode()).hexdigest()[:12]
    return dbt_project.project_dir / "target" / f"{name}-state-{key}"


@dataclass(frozen=True)
class WindowModel:
    """A dbt model tagged ``window``, as the manifest names it."""

    name: str
    schema: str
    alias: str
    node: Mapping[str, Any] = field(compare=False, repr=False)  # its manifest node (for the translator)

    @property
    def relation(self) -> tuple[str, str]:
        """(schema, table) in the warehouse."""
        return self.schema, self.alias


@dataclass(frozen=True)
class WindowModels:
    """The window models by role, each tuple sorted by name."""

    models: tuple[WindowModel, ...]  # every model tagged `window`
    tables: tuple[WindowModel, ...]  # those dbt persists (not views): the tables a micro-batch merges into
    base_tables: tuple[WindowModel, ...]  # those tables that read dbt sources only: the lake rows kept in the warehouse
    base_readers: tuple[WindowModel, ...]  # the other window models that read a base table directly or through views


@functools.cache
def window_models() -> WindowModels:
    """The models tagged ``window`` in the manifest, with their roles derived from its graph:
    tagging a model ``window`` in dbt is all it takes for the merge bookkeeping
    (aggregation/merge.py) and the window checks of the dbt assets to include it."""
    manifest = json.loads(prepare_manifest().read_text())
    nodes, sources = manifest["nodes"], manifest["sources"]

    def deps(uid: str) -> list[str]:
        return nodes[uid]["depends_on"]["nodes"]

    def persisted(uid: str) -> bool:  # a source, a seed or a table holds its own rows; a view reads its upstream's
        return uid not in nodes or nodes[uid]["config"]["materialized"] not in ("view", "ephemeral")

    window = sorted((uid for uid, n in nodes.items() if n["resource_type"] == "model" and WINDOW_TAG in n["tags"]),
                    key=lambda uid: nodes[uid]["name"])
    tables = [uid for uid in window if persisted(uid)]
    base = {uid for uid in tables if all(d in sources for d in deps(uid))}

    def reads_base(uid: str) -> bool:
        todo, seen = list(deps(uid)), set()
        while todo:
            d = todo.pop()
            if d in base:
                return True
            if d not in seen and not persisted(d):
                seen.add(d)
                todo += deps(d)
        return False

    def models(uids) -> tuple[WindowModel, ...]:
        return tuple(WindowModel(nodes[u]["name"], nodes[u]["schema"], nodes[u]["alias"], nodes[u]) for u in uids)

    return WindowModels(models=models(window), tables=models(tables),
                        base_tables=models(u for u in tables if u in base),
                        base_readers=models(u for u in window if u not in base and reads_base(u)))
