#!/usr/bin/env bash
# Runs the test suite against real services: starts a private local stack
# (Apache Kafka in KRaft mode + the moto S3 endpoint) on test ports, runs
# pytest, and always stops the stack. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export REPUTATION_STACK_DIR=${REPUTATION_TEST_STACK_DIR:-$(mktemp -d /tmp/reputation-test-stack.XXXXXX)}
export REPUTATION_KAFKA_PORT=${REPUTATION_TEST_KAFKA_PORT:-19092}
export REPUTATION_S3_PORT=${REPUTATION_TEST_S3_PORT:-19000}
# Debian's Chromium for the UI screenshot test (installed once; the test skips if it cannot be)
./scripts/install_chromium.sh || echo "test: chromium unavailable, the UI screenshot test will be skipped" >&2

cleanup() { .venv/bin/reputation-pipeline stack down >/dev/null 2>&1 || true; }
trap cleanup EXIT
.venv/bin/reputation-pipeline stack up >/dev/null
eval "$(.venv/bin/reputation-pipeline stack env)"
# lint (pyproject's [tool.ruff]; the dbt project's SQL: dbt_project/.sqlfluff), the code location loads
# (what `dg check defs` checks), then the suite
.venv/bin/ruff check --quiet .
.venv/bin/sqlfluff lint --quiet dbt_project
.venv/bin/dagster definitions validate -m reputation_pipeline.definitions 2>&1 | tail -n 2
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
