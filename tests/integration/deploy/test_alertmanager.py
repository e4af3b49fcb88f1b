"""Alertmanager configuration: amtool checks, routing, secrets, and inhibition on a real Alertmanager."""

from __future__ import annotations

import datetime
import subprocess

import httpx
import pytest

from tests.integration.deploy.deploy_files import ALERTMANAGER_CONFIG, binary, load_yaml
from tests.integration.deploy.local_stack import local_stack
from tests.integration.deploy.webhook_capture import WebhookCapture


def amtool(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("amtool"), *arguments], capture_output=True, text=True, check=False, timeout=60)


def test_amtool_check_config():
    result = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=ServiceDown", "job=ingestion"], "slack-and-email"),
        (["severity=critical", "alertname=AvailabilityErrorBudgetBurn", "job=ingestion"], "slack-and-email"),
        (["severity=warning", "alertname=HighMemoryUsage", "job=ingestion"], "slack"),
        (["alertname=Unlabelled"], "slack"),
    ],
)
def test_routing_by_severity(labels, receiver):
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", f"--verify.receivers={receiver}",
                    *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_no_secret_is_committed():
    config = load_yaml(ALERTMANAGER_CONFIG)
    assert "smtp_auth_password" not in config["global"]
    assert config["global"]["smtp_auth_password_file"].startswith("/run/secrets/")
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack, receiver["name"]
            assert slack["api_url_file"].startswith("/run/secrets/"), receiver["name"]
        for email in receiver.get("email_configs", []):
            assert "auth_password" not in email, receiver["name"]


def test_grouping_by_alert_and_job():
    route = load_yaml(ALERTMANAGER_CONFIG)["route"]
    assert route["group_by"] == ["alertname", "job"]


def test_service_down_inhibits_its_job():
    rules = load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
    service_down = [rule for rule in rules if rule["source_matchers"] == ['alertname="ServiceDown"']]
    assert len(service_down) == 1
    assert service_down[0]["equal"] == ["job"]


def _alert(name: str, job: str, severity: str = "critical") -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "labels": {"alertname": name, "job": job, "severity": severity, "instance": f"{job}:1"},
        "annotations": {"summary": f"{name} on {job}", "description": "test alert",
                        "runbook_url": f"docs/runbooks.md#{name.lower()}"},
        "startsAt": now.isoformat(),
        "endsAt": (now + datetime.timedelta(minutes=10)).isoformat(),
    }


def test_inhibition_and_slack_delivery_on_real_alertmanager(tmp_path):
    # The local stack runs the committed Alertmanager configuration; its Slack
    # secret points at a loopback server, so the notification stays on this host.
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "smtp_password").write_text("", encoding="utf-8")
    with WebhookCapture() as slack:
        (secrets_dir / "slack_webhook_url").write_text(slack.url, encoding="utf-8")
        with local_stack(tmp_path, jobs=("prometheus", "alertmanager"), secrets_dir=secrets_dir) as stack:
            alerts = [
                _alert("ServiceDown", "customer-success-tracker"),
                _alert("CustomerSatisfactionBelowTarget", "customer-success-tracker"),
                _alert("HighErrorRate", "ingestion"),
            ]
            response = httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=alerts, timeout=10)
            assert response.status_code == 200, response.text

            state = {item["labels"]["alertname"]: item["status"]
                     for item in httpx.get(f"{stack.alertmanager_url}/api/v2/alerts", timeout=10).json()}
            assert state["ServiceDown"]["state"] == "active"
            assert state["HighErrorRate"]["state"] == "active"
            assert state["CustomerSatisfactionBelowTarget"]["state"] == "suppressed"
            assert state["CustomerSatisfactionBelowTarget"]["inhibitedBy"] != []

            # Critical groups wait 10 s before their first notification.
            bodies = slack.wait_for(lambda received: len(received) >= 2, timeout=60)

    texts = "\n".join(attachment.get("title", "") + attachment.get("text", "")
                      for body in bodies for attachment in body.get("attachments", []))
    assert "ServiceDown (customer-success-tracker)" in texts
    assert "HighErrorRate (ingestion)" in texts
    assert "Runbook: docs/runbooks.md#servicedown" in texts
    assert "CustomerSatisfactionBelowTarget" not in texts
