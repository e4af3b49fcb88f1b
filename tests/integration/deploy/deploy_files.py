"""Paths and loaders of the monitoring stack's files, shared by the deploy tests."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[3]
DEPLOY = REPOSITORY / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS_DIR = DEPLOY / "prometheus" / "tests"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
RUNBOOKS = REPOSITORY / "docs" / "runbooks.md"

# The alerts every operator expects, with their severity.
REQUIRED_ALERTS = {
    "EventThroughputBelowTarget": "critical",
    "P95LatencyAboveTarget": "critical",
    "ServiceDown": "critical",
    "HighErrorRate": "critical",
    "CustomerSatisfactionBelowTarget": "critical",
    "LatencyDegrading": "warning",
    "PilotCustomerCountLow": "warning",
    "LoadTestThroughputFailure": "warning",
    "HighMemoryUsage": "warning",
}

# Debian names the Alertmanager binary prometheus-alertmanager; upstream names it alertmanager.
BINARY_NAMES = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
}


def binary(name: str) -> str:
    """Return the path of a Prometheus tool, or fail the test saying how to install it."""
    for candidate in BINARY_NAMES[name]:
        path = shutil.which(candidate)
        if path:
            return path
    pytest.fail(f"{name} is not installed; run deploy/local/install-prometheus.sh "
                "(apt-get install prometheus prometheus-alertmanager)")


def load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def alerting_rules() -> list[dict]:
    """Return every alerting rule of deploy/prometheus/rules/, in file order."""
    return [rule for path in rule_files() for group in load_yaml(path)["groups"] for rule in group["rules"]
            if "alert" in rule]


def recording_rule_names() -> set[str]:
    return {rule["record"] for path in rule_files() for group in load_yaml(path)["groups"]
            for rule in group["rules"] if "record" in rule}


def markdown_anchors(path: Path) -> set[str]:
    """Return the anchors GitHub generates for the headings of a Markdown file."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def load_module(path: Path, name: str) -> ModuleType:
    """Import a script of deploy/ that is not part of an installed package."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
