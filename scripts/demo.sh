#!/usr/bin/env bash
# Set up (idempotent) and run the demo estate: private broker, simulators, gateway on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/estate-gateway demo "$@"
