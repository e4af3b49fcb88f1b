#!/usr/bin/env bash
# Install Debian's prometheus and prometheus-alertmanager packages when promtool or amtool is missing,
# and shellcheck, which the tests run on the deploy scripts.
set -euo pipefail
missing=0
# Debian names the Alertmanager binary prometheus-alertmanager. The deploy end-to-end test also runs node-exporter.
for tool in prometheus promtool prometheus-alertmanager amtool prometheus-node-exporter shellcheck; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
done
[ "$missing" = 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-monitoring-tools: prometheus, promtool, alertmanager, amtool, node-exporter and shellcheck are needed and apt-get is not available; install them from your distribution and rerun" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
echo "install-monitoring-tools: installing prometheus, prometheus-alertmanager, prometheus-node-exporter and shellcheck with apt-get"
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3 4 5; do
    if $sudo apt-get install -y --no-install-recommends prometheus prometheus-alertmanager prometheus-node-exporter shellcheck >/dev/null; then
        break
    fi
    if [ "$attempt" = 5 ]; then
        echo "install-monitoring-tools: apt-get install failed; run 'apt-get update' and try again" >&2
        exit 1
    fi
    $sudo apt-get update >/dev/null || true
    sleep 5
done
# Debian starts the packaged daemons on their default ports; the tests run their own copies.
for unit in prometheus prometheus-alertmanager prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
    $sudo service "$unit" stop >/dev/null 2>&1 || true
done
