#!/usr/bin/env bash
# Install Debian's Prometheus, Alertmanager and node-exporter packages when
# their binaries are missing, for deploy/local/run-stack.sh and the deploy
# tests. Needs apt-get (Debian or Ubuntu) and root or sudo.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
have prometheus && have promtool || missing+=(prometheus)
# Debian names the binary prometheus-alertmanager; upstream names it alertmanager.
{ have prometheus-alertmanager || have alertmanager; } && have amtool || missing+=(prometheus-alertmanager)
have prometheus-node-exporter || have node_exporter || missing+=(prometheus-node-exporter)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! have apt-get; then
    echo "install-prometheus: ${missing[*]} are missing and apt-get is not available; install Prometheus, Alertmanager and node-exporter from your distribution or their release archives" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
    sudo=(sudo)
fi

echo "install-prometheus: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
# Another apt-get may hold the lock: retry for up to 5 minutes.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if "${sudo[@]}" apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=30 "${missing[@]}"; then
        break
    fi
    if [ "$attempt" = 10 ]; then
        echo "install-prometheus: apt-get install ${missing[*]} failed 10 times; run 'apt-get update' and check the output above" >&2
        exit 1
    fi
    "${sudo[@]}" apt-get update -o DPkg::Lock::Timeout=30 || true
done

# The packages start their daemons on the default ports; the local stack and
# the tests run their own copies, so stop those.
for unit in prometheus prometheus-alertmanager prometheus-node-exporter; do
    if have systemctl; then "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
    "${sudo[@]}" service "$unit" stop >/dev/null 2>&1 || true
done
