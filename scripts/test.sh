#!/usr/bin/env bash
# Set up on first use, install Prometheus and Alertmanager when missing, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/install-monitoring-tools.sh
exec .venv/bin/pytest "$@"
