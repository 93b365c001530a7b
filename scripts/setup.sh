#!/usr/bin/env bash
# Sets up .venv with everything the project needs on a fresh machine.
# The heavy environment (PyTorch, Dagster, dbt) is built once per version of
# pyproject.toml in a cache folder and reused; this checkout is then installed
# into it in editable mode (seconds). Kafka's jars are fetched by `stack up`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is required"'

key=$(sha256sum pyproject.toml | cut -c1-16)
cache_root=${REPUTATION_VENV_CACHE:-$HOME/.cache/reputation_pipeline/venvs}
venv="$cache_root/$key"
if [ ! -f "$venv/.complete" ]; then
  echo "setup: building the Python environment in $venv (first time for this pyproject.toml; a few minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$cache_root"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip wheel setuptools
  "$venv/bin/pip" install -q '.[dev]'
  touch "$venv/.complete"
fi
# a link left by an earlier pyproject.toml follows this one (a real folder there is the user's own)
if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
fi
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
# Guard against pip silently resolving an ancient dagster-dbt or dbt 1.12.
.venv/bin/python - <<'PY'
from importlib.metadata import version
want = {"dagster": "1.13.27", "dagster-dbt": "0.29.27", "dagster-aws": "0.29.27"}
bad = {k: version(k) for k, v in want.items() if version(k) != v}
assert not bad, f"unexpected versions: {bad}"
assert version("dbt-core").startswith("1.11."), version("dbt-core")
PY
echo "setup: ready (.venv -> $(readlink -f .venv))" >&2
