#!/usr/bin/env bash
# Set up (idempotent), then the whole gate: ruff (lint and format), mypy (strict on gateway/, drivers/ and dashboards/), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff";  .venv/bin/ruff check gateway drivers dashboards tests bench
.venv/bin/ruff format --check --quiet gateway drivers dashboards tests bench
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
# Two workers (pytest-xdist): most tests wait on servers and timers, so both cores halve the wall time;
# each worker starts its own broker and PostgreSQL (session fixtures), every port is a free one.
exec .venv/bin/pytest -q -n 2 "$@"
