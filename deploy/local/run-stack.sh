#!/usr/bin/env bash
# Run Prometheus and Alertmanager with the UnMoGrowP rules and routing on this
# host, without Docker, scraping the services on 127.0.0.1. Options:
#   deploy/local/run-stack.sh --help
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$here/../../.venv/bin/python"
if [ ! -x "$python" ]; then
    python="$(command -v python3 || true)"
fi
if [ -z "$python" ] || ! "$python" -c 'import yaml' 2>/dev/null; then
    echo "run-stack: needs Python 3 with PyYAML; run scripts/setup.sh (creates .venv) or apt-get install python3-yaml" >&2
    exit 1
fi
exec "$python" "$here/run_stack.py" "$@"
