"""``unmogrowp customers`` and ``unmogrowp tracker`` as a user runs them."""

import json
import os
import subprocess

import httpx

from tests.support.services import free_port, start_tracker, unmogrowp_command

from .conftest import ADMIN_TOKEN


def _cli(tracker, *arguments, token=ADMIN_TOKEN, cwd=None):
    env = dict(os.environ)
    env.pop("UNMOGROWP_ADMIN_TOKEN", None)
    if token is not None:
        env["UNMOGROWP_ADMIN_TOKEN"] = token
    return subprocess.run(
        unmogrowp_command() + ["customers", "--url", tracker.url, *arguments],
        capture_output=True, text=True, env=env, timeout=120, cwd=cwd,
    )


def test_cli_walks_a_pilot(tracker, ingestion, tmp_path):
    ingestion.add_record("acme.ios", "i-1", "AdNet")
    ingestion.add_record("acme.ios", "i-2", "AdNet")

    added = _cli(tracker, "add", "acme", "--company", "Acme Games", "--app", "acme.ios", "--kickoff", "2026-03-01",
                 "--previous-monthly-cost", "1000", "--monthly-cost", "650.50")
    assert added.returncode == 0, added.stderr
    assert "acme: Acme Games" in added.stdout
    assert "650.50 USD" in added.stdout

    for arguments in (("phase", "acme", "setup"), ("survey", "acme", "--csat", "5"),
                      ("ticket", "open", "acme", "--title", "SDK crash", "--severity", "high")):
        result = _cli(tracker, *arguments)
        assert result.returncode == 0, result.stderr
    ticket_id = tracker.get("/v1/customers/acme/tickets").json()["items"][0]["ticket_id"]
    closed = _cli(tracker, "ticket", "close", "acme", str(ticket_id))
    assert f"ticket {ticket_id} is closed" in closed.stdout
    assert _cli(tracker, "ticket", "list", "acme", "--status", "open").stdout == "no tickets\n"

    reference = tmp_path / "reference.csv"
    reference.write_text("install_event_id,network\ni-1,AdNet\ni-2,Other\n")
    reconciled = _cli(tracker, "reconcile", "acme", str(reference))
    assert reconciled.returncode == 0, reconciled.stderr
    assert "1 of 2 installs matched, accuracy 50 %" in reconciled.stdout
    assert "i-2: network_differs" in reconciled.stdout

    status = _cli(tracker, "status", "acme")
    assert status.returncode == 0, status.stderr
    assert "phase:            setup" in status.stdout
    assert "satisfaction:     100 %" in status.stdout
    assert "cost savings:     34.95 %" in status.stdout
    assert "accuracy:         50 %" in status.stdout
    assert "open tickets:     0" in status.stdout

    as_json = json.loads(_cli(tracker, "--json", "status", "acme").stdout)
    assert as_json["attribution_accuracy"]["percent"] == 50.0
    listed = _cli(tracker, "list", "--pilot")
    assert listed.stdout.split()[:3] == ["acme", "setup", "pilot"]
    summary = _cli(tracker, "status")
    assert "pilot customers: 1, successful: 0" in summary.stdout


def test_cli_reconcile_shows_campaigns(tracker, ingestion, tmp_path):
    ingestion.add_record("acme.ios", "i-1", "AdNet", campaign="spring")
    added = _cli(tracker, "add", "acme", "--company", "Acme Games", "--app", "acme.ios")
    assert added.returncode == 0, added.stderr
    reference = tmp_path / "reference.csv"
    reference.write_text("install_event_id,network,campaign\ni-1,AdNet,winter\n")

    reconciled = _cli(tracker, "reconcile", "acme", str(reference))

    assert reconciled.returncode == 0, reconciled.stderr
    assert "i-1: campaign_differs (network AdNet: expected campaign winter, got spring)" in reconciled.stdout


def test_cli_rejection_exit_codes(tracker):
    rejected = _cli(tracker, "survey", "nobody", "--score", "50")
    assert rejected.returncode == 1
    assert "HTTP 404: customer 'nobody' not found" in rejected.stderr

    added = _cli(tracker, "add", "acme", "--company", "Acme")
    assert added.returncode == 0
    score = _cli(tracker, "survey", "acme", "--score", "101")
    assert score.returncode == 1
    assert "score" in score.stderr
    assert "less than or equal to 100" in score.stderr

    unknown_ticket = _cli(tracker, "ticket", "close", "acme", "999")
    assert unknown_ticket.returncode == 1
    assert "HTTP 404: ticket 999" in unknown_ticket.stderr
    assert "from the command line: unmogrowp customers ticket list acme" in unknown_ticket.stderr

    quote = _cli(tracker, "add", 'ac"me', "--company", "Acme")
    assert quote.returncode == 1
    assert "invalid customer_id" in quote.stderr


def test_cli_without_token(tracker, tmp_path):
    result = _cli(tracker, "add", "acme", "--company", "Acme", token=None, cwd=tmp_path)
    assert result.returncode == 2
    assert "no admin token" in result.stderr
    reads = _cli(tracker, "list", token=None, cwd=tmp_path)
    assert reads.returncode == 0


def test_cli_unreachable_tracker():
    env = dict(os.environ, UNMOGROWP_ADMIN_TOKEN=ADMIN_TOKEN)
    result = subprocess.run(
        unmogrowp_command() + ["customers", "--url", f"http://127.0.0.1:{free_port()}", "list"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 3
    assert "cannot reach the tracker" in result.stderr


def test_tracker_command_default_database(tmp_path):
    with start_tracker(tmp_path, database=None, ingestion_url=f"http://127.0.0.1:{free_port()}") as service:
        created = httpx.post(service.url + "/v1/customers", headers=service.headers,
                             json={"customer_id": "acme", "company_name": "Acme"})
        assert created.status_code == 201
        assert httpx.get(service.url + "/readyz").json()["ingestion_stats"]["stale"] is True
    assert (tmp_path / "var" / "tracker.db").exists()


def test_tracker_default_database_in_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    env = {"UNMOGROWP_DATA_DIR": str(data_dir)}
    with start_tracker(tmp_path, database=None, env=env, ingestion_url=f"http://127.0.0.1:{free_port()}") as service:
        created = httpx.post(service.url + "/v1/customers", headers=service.headers,
                             json={"customer_id": "acme", "company_name": "Acme"})
        assert created.status_code == 201
    assert (data_dir / "tracker.db").exists()
    assert not (tmp_path / "var" / "tracker.db").exists()


def test_tracker_rejects_bad_database_url(tmp_path):
    result = subprocess.run(unmogrowp_command() + ["tracker", "--database", "mysql://u@h/d"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=dict(os.environ, UNMOGROWP_ADMIN_TOKEN=ADMIN_TOKEN))
    assert result.returncode == 2
    assert "unsupported database 'mysql'" in result.stderr


def test_help_names_units_and_defaults():
    tracker_help = subprocess.run(unmogrowp_command() + ["tracker", "--help"], capture_output=True, text=True,
                                  timeout=120).stdout
    for words in ("default: 127.0.0.1", "default: 8084", "default: sqlite:///var/tracker.db",
                  "default: http://127.0.0.1:8081", "seconds between polls", "default: 15)"):
        assert words in " ".join(tracker_help.split())
    customers_help = subprocess.run(unmogrowp_command() + ["customers", "--help"], capture_output=True, text=True,
                                    timeout=120).stdout
    for command in ("add", "list", "phase", "survey", "ticket", "reconcile", "status"):
        assert command in customers_help
