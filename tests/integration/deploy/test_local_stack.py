"""deploy/local/: the configuration it generates from the Compose files, and a real start."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from tests.integration.deploy.deploy_files import DEPLOY, load_module, load_yaml, rule_files
from tests.integration.deploy.local_stack import local_stack

stackconfig = load_module(DEPLOY / "local" / "stackconfig.py", "stackconfig")


def settings(tmp_path, **overrides):
    return stackconfig.StackSettings(data_dir=tmp_path / "data", secrets_dir=tmp_path / "secrets", **overrides)


def test_targets_move_to_loopback_on_compose_ports(tmp_path):
    targets = stackconfig.local_targets(settings(tmp_path, prometheus_port=19090, alertmanager_port=19093))
    assert targets == {
        "ingestion": "127.0.0.1:8081",
        "customer-success-tracker": "127.0.0.1:8084",
        "loadtest-exporter": "127.0.0.1:9646",
        "prometheus": "127.0.0.1:19090",
        "alertmanager": "127.0.0.1:19093",
    }


def test_target_override_and_job_selection(tmp_path):
    chosen = settings(tmp_path, jobs=("ingestion", "prometheus"), targets={"ingestion": "127.0.0.1:18081"})
    assert stackconfig.local_targets(chosen) == {"ingestion": "127.0.0.1:18081", "prometheus": "127.0.0.1:9090"}


@pytest.mark.parametrize(("jobs", "message"), [
    (("ingestoin",), "unknown job 'ingestoin'"),
    (("grafana",), "runs in Docker Compose only"),
])
def test_invalid_jobs_are_rejected(tmp_path, jobs, message):
    with pytest.raises(stackconfig.StackConfigError, match=message):
        stackconfig.local_targets(settings(tmp_path, jobs=jobs))


def test_generated_files_keep_the_compose_rules_and_routing(tmp_path):
    chosen = settings(tmp_path)
    stackconfig.write_configs(chosen)

    for source in rule_files():
        assert (chosen.rules_dir / source.name).read_bytes() == source.read_bytes(), source.name
    prometheus = load_yaml(chosen.prometheus_config)
    compose_prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert prometheus["global"] == compose_prometheus["global"]
    assert prometheus["rule_files"] == [str(chosen.rules_dir / "*.yml")]

    alertmanager = load_yaml(chosen.alertmanager_config)
    compose_alertmanager = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    assert alertmanager["route"] == compose_alertmanager["route"]
    assert alertmanager["inhibit_rules"] == compose_alertmanager["inhibit_rules"]
    assert alertmanager["global"]["smtp_auth_password_file"] == str(chosen.secrets_dir / "smtp_password")
    assert alertmanager["receivers"][0]["slack_configs"][0]["api_url_file"] == str(
        chosen.secrets_dir / "slack_webhook_url")


def test_for_override_changes_only_the_named_alert(tmp_path):
    chosen = settings(tmp_path, for_overrides={"ServiceDown": "5s"})
    stackconfig.write_configs(chosen)
    durations = {rule["alert"]: rule["for"] for group in load_yaml(chosen.rules_dir / "alerts.yml")["groups"]
                 for rule in group["rules"] if "alert" in rule}
    assert durations["ServiceDown"] == "5s"
    assert durations["HighErrorRate"] == "3m"


def test_for_override_of_unknown_alert_is_rejected(tmp_path):
    with pytest.raises(stackconfig.StackConfigError, match="ServiceDwon"):
        stackconfig.write_configs(settings(tmp_path, for_overrides={"ServiceDwon": "5s"}))


def test_check_mode_runs_promtool_and_amtool(tmp_path):
    result = subprocess.run(
        [str(DEPLOY / "local" / "run-stack.sh"), "--check", "--data-dir", str(tmp_path / "data"),
         "--secrets-dir", str(tmp_path / "secrets"), "--alert-for", "ServiceDown=5s"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked with promtool and amtool" in result.stdout


def test_bad_option_value_is_reported(tmp_path):
    result = subprocess.run(
        [str(DEPLOY / "local" / "run-stack.sh"), "--check", "--data-dir", str(tmp_path / "data"),
         "--target", "ingestion"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 1
    assert "--target 'ingestion' is invalid; write it as JOB=HOST:PORT" in result.stderr


def test_stack_starts_scrapes_itself_and_stops(tmp_path):
    with local_stack(tmp_path, jobs=("prometheus", "alertmanager")) as stack:
        deadline = time.monotonic() + 30
        health = {}
        while time.monotonic() < deadline:
            targets = httpx.get(f"{stack.prometheus_url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
            health = {target["labels"]["job"]: target["health"] for target in targets}
            if health == {"prometheus": "up", "alertmanager": "up"}:
                break
            time.sleep(1)
        assert health == {"prometheus": "up", "alertmanager": "up"}

        groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        loaded = sum(len(group["rules"]) for group in groups)
        expected = sum(len(group["rules"]) for path in rule_files() for group in load_yaml(path)["groups"])
        assert loaded == expected

        managers = httpx.get(f"{stack.prometheus_url}/api/v1/alertmanagers", timeout=10).json()
        assert [manager["url"] for manager in managers["data"]["activeAlertmanagers"]] == [
            f"{stack.alertmanager_url}/api/v2/alerts"]
        pids = stack.child_pids()
        assert len(pids) == 2

    # The children stopped with the script: their pids are gone, or belong
    # to some other process by now.
    for pid in pids:
        assert not _runs_for(pid, stack.data_dir), pid


def _runs_for(pid: int, data_dir) -> bool:
    try:
        command_line = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        return False
    return str(data_dir) in command_line
