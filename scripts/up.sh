#!/usr/bin/env bash
# Set up on first use, then run the ingestion service (8081) and the tracker (8084).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/unmogrowp up "$@"
