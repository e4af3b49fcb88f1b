"""Prometheus configuration, rules and rule unit tests, checked with Debian's promtool."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.deploy.deploy_files import (
    PROMETHEUS_CONFIG,
    REQUIRED_ALERTS,
    RULE_TESTS_DIR,
    RUNBOOKS,
    alerting_rules,
    binary,
    load_yaml,
    markdown_anchors,
    rule_files,
)

REQUIRED_JOBS = {
    "ingestion": "ingestion:8081",
    "customer-success-tracker": "tracker:8084",
    "loadtest-exporter": "locust-master:9646",
    "prometheus": "localhost:9090",
    "alertmanager": "alertmanager:9093",
    "grafana": "grafana:3000",
    "loki": "loki:3100",
    "jaeger": "jaeger:8888",
    "node-exporter": "node-exporter:9100",
    "cadvisor": "cadvisor:8080",
}


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def test_promtool_check_config():
    result = run([binary("promtool"), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 rule files found" in result.stdout


def test_promtool_check_rules():
    result = run([binary("promtool"), "check", "rules", *map(str, rule_files())])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(RULE_TESTS_DIR.glob("*.test.yml")), ids=lambda path: path.name)
def test_promtool_test_rules(test_file):
    result = run([binary("promtool"), "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_detects_a_broken_rule(tmp_path):
    # The unit tests must fail when a threshold changes: raise ServiceDown's
    # "for" from 1m to 10m and expect the firing case to fail.
    rules = (rule_files()[0].parent / "alerts.yml").read_text(encoding="utf-8")
    broken = rules.replace("expr: up{job!=\"loadtest-exporter\"} == 0\n        for: 1m",
                           "expr: up{job!=\"loadtest-exporter\"} == 0\n        for: 10m")
    assert broken != rules
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    (tmp_path / "recording.yml").write_text((rule_files()[0].parent / "recording.yml").read_text(), encoding="utf-8")
    tests = (RULE_TESTS_DIR / "alerts.test.yml").read_text(encoding="utf-8").replace("../rules/", "")
    (tmp_path / "alerts.test.yml").write_text(tests, encoding="utf-8")

    result = run([binary("promtool"), "test", "rules", str(tmp_path / "alerts.test.yml")])

    assert result.returncode != 0
    assert "tracker stops answering scrapes" in result.stdout + result.stderr


def test_scrape_jobs_cover_every_component():
    config = load_yaml(PROMETHEUS_CONFIG)
    targets = {scrape["job_name"]: scrape["static_configs"][0]["targets"][0] for scrape in config["scrape_configs"]}
    for job, target in REQUIRED_JOBS.items():
        assert targets.get(job) == target, f"job {job}"


def test_required_alerts_exist_with_severity():
    severities = {}
    for rule in alerting_rules():
        severities.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    for name, severity in REQUIRED_ALERTS.items():
        assert severities.get(name) == {severity}, name


def test_every_alert_has_labels_and_annotations():
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        for annotation in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(annotation, "").strip(), f"{name} lacks {annotation}"
        assert "for" in rule, f"{name} has no for duration"


def test_burn_rate_alerts_cover_three_windows():
    for name, objective in (("AvailabilityErrorBudgetBurn", "availability"), ("LatencyErrorBudgetBurn", "latency")):
        tiers = {(rule["labels"]["long_window"], rule["labels"]["short_window"], rule["labels"]["burn_rate"])
                 for rule in alerting_rules() if rule["alert"] == name}
        assert tiers == {("1h", "5m", "14.4"), ("6h", "30m", "6"), ("3d", "6h", "1")}, name
        for rule in alerting_rules():
            if rule["alert"] == name:
                assert rule["labels"]["slo"] == objective


def test_runbook_urls_point_to_existing_sections():
    anchors = markdown_anchors(RUNBOOKS)
    for rule in alerting_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbooks.md", f"{rule['alert']}: {url}"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"


def test_every_alert_has_firing_and_quiet_tests():
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in RULE_TESTS_DIR.glob("*.test.yml"):
        for case in load_yaml(test_file)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    firing.add(check["alertname"])
                    for alert in check["exp_alerts"]:
                        assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}, case["name"]
                        assert "severity" in alert["exp_labels"], case["name"]
                else:
                    quiet.add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a quiet test"
