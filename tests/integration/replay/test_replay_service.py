"""``unmogrowp replay talkingdata`` against a real ingestion service on loopback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import RunningService, start_ingestion, unmogrowp_command
from tests.support.talkingdata_sample import TalkingDataSample, write_sample


@pytest.fixture
def ingestion(tmp_path: Path) -> Iterator[RunningService]:
    with start_ingestion(tmp_path) as service:
        yield service


@pytest.fixture
def sample(tmp_path: Path) -> TalkingDataSample:
    return write_sample(tmp_path / "talkingdata.csv")


def replay(
    service: RunningService, csv: Path, *options: str, token: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("UNMOGROWP_ADMIN_TOKEN", None)
    env.pop("UNMOGROWP_DATA_DIR", None)
    if token is not None:
        env["UNMOGROWP_ADMIN_TOKEN"] = token
    command = unmogrowp_command() + ["replay", "talkingdata", str(csv), "--url", service.url, *options]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def replay_json(service: RunningService, csv: Path, *options: str) -> dict:
    finished = replay(service, csv, "--json", *options, token=service.admin_token)
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


def fetch_records(service: RunningService, app_ids: list[str], page_size: int = 7) -> dict[str, dict]:
    """Read every record of the apps through GET /v1/attributions, a few per page."""
    records: dict[str, dict] = {}
    with httpx.Client(base_url=service.url, headers=service.headers) as client:
        for app_id in app_ids:
            params = {"app_id": app_id, "limit": page_size}
            while True:
                response = client.get("/v1/attributions", params=params)
                assert response.status_code == 200, response.text
                page = response.json()
                for record in page["items"]:
                    records[record["install_event_id"]] = record
                if not page["next_cursor"]:
                    break
                params["cursor"] = page["next_cursor"]
    return records


def processed_events(service: RunningService) -> dict[str, float]:
    """Sum attribution_events_processed_total on /metrics by its status label."""
    text = httpx.get(service.url + "/metrics").text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "attribution_events_processed":
            continue
        for sample in family.samples:
            if sample.name == "attribution_events_processed_total":
                status = sample.labels["status"]
                totals[status] = totals.get(status, 0.0) + sample.value
    return totals


def test_replay_attributes_sample(ingestion, sample):
    report = replay_json(ingestion, sample.path)
    records = fetch_records(ingestion, sample.apps)

    for install_id, expected in sample.expected.items():
        record = records[install_id]
        context = f"{expected.scenario} install on line {expected.line}"
        assert record["status"] == expected.status, context
        assert record["touch_event_id"] == expected.touch_event_id, context
        assert record["network"] == expected.network, context
        assert record["match_type"] == expected.match_type, context
        assert record["touch_type"] == ("click" if expected.status == "attributed" else None), context
        if expected.ctit_seconds is not None:
            assert record["ctit_seconds"] == pytest.approx(expected.ctit_seconds), context
        rejected = {(touch["touch_event_id"], touch["reason"]) for touch in record["rejected_touches"]}
        assert rejected == set(expected.rejected_touches), context

    assert report["attribution"]["installs"] == len(sample.expected)
    assert report["attribution"]["attributed"] == sample.count("attributed")
    assert report["attribution"]["organic"] == sample.count("organic")
    assert report["attribution"]["reinstall"] == 0


def test_click_after_ten_seconds_wins(ingestion, sample):
    replay_json(ingestion, sample.path)
    records = fetch_records(ingestion, sample.apps)

    checked = 0
    for expected in sample.expected.values():
        if expected.file_ctit_seconds < 10 or expected.scenario == "later_click":
            continue
        record = records[expected.install_event_id]
        assert record["status"] == "attributed", expected.line
        assert record["touch_event_id"] == expected.file_click_event_id, expected.line
        assert record["match_type"] == "fingerprint", expected.line
        assert record["network"] == expected.file_network, expected.line
        assert record["network"].startswith("channel-"), expected.line
        checked += 1
    assert checked == 15


def test_click_under_ten_seconds_rejected(ingestion, sample):
    report = replay_json(ingestion, sample.path)
    records = fetch_records(ingestion, sample.apps)

    short = [expected for expected in sample.expected.values() if expected.file_ctit_seconds < 10]
    assert len(short) == 4
    for expected in short:
        rejected = records[expected.install_event_id]["rejected_touches"]
        assert {"touch_event_id": expected.file_click_event_id, "reason": "ctit_below_minimum"} in rejected

    listed = {entry["install_event_id"] for entry in report["attribution"]["click_injections"]}
    assert listed == {expected.install_event_id for expected in short}
    assert report["attribution"]["rejected_as_click_injection"] == 4


def test_summary_agrees_with_attributions_api(ingestion, sample):
    report = replay_json(ingestion, sample.path)
    records = fetch_records(ingestion, sample.apps)
    ours = [records[install_id] for install_id in sample.expected]

    assert report["attribution"]["records"] == len(ours)
    assert report["attribution"]["attributed"] == sum(record["status"] == "attributed" for record in ours)
    assert report["attribution"]["organic"] == sum(record["status"] == "organic" for record in ours)
    assert report["attribution"]["match_types"] == {
        "fingerprint": sum(record["match_type"] == "fingerprint" for record in ours)
    }
    assert report["agreement"]["agreed"] == sample.agreed
    assert report["agreement"]["compared"] == len(sample.expected)
    assert report["agreement"]["disagreements_by_reason"] == {"click_injection": 4, "other_touch": 1}
    for entry in report["agreement"]["disagreements"]:
        record = records[entry["install_event_id"]]
        assert entry["status"] == record["status"]
        assert entry["touch_event_id"] == record["touch_event_id"]
        assert entry["line"] == sample.expected[entry["install_event_id"]].line

    ctits = sorted(record["ctit_seconds"] for record in ours if record["status"] == "attributed")
    assert report["attribution"]["ctit_seconds"]["count"] == len(ctits)
    assert report["attribution"]["ctit_seconds"]["min"] == ctits[0]
    assert report["attribution"]["ctit_seconds"]["max"] == ctits[-1]


def test_event_counts_match_metrics(ingestion, sample):
    report = replay_json(ingestion, sample.path)
    processed = processed_events(ingestion)

    assert report["events"]["sent"] == sample.events_sent
    assert report["events"]["clicks"] == sample.clicks
    assert report["events"]["installs"] == sample.installs_sent
    assert report["events"]["duplicates"] == sample.duplicate_events
    assert report["events"]["accepted"] == sample.events_sent - sample.duplicate_events
    assert report["events"]["rejected"] == 0
    assert sum(processed.values()) == report["events"]["sent"]
    assert processed.get("accepted") == report["events"]["accepted"]
    assert processed.get("duplicate") == report["events"]["duplicates"]
    assert report["apps"] == {"met": 3, "registered": 3, "already_registered": 0}


def test_second_replay_only_duplicates(ingestion, sample):
    first = replay_json(ingestion, sample.path)
    second = replay_json(ingestion, sample.path, "--batch-size", "7")

    assert second["events"]["sent"] == first["events"]["sent"]
    assert second["events"]["accepted"] == 0
    assert second["events"]["duplicates"] == first["events"]["sent"]
    assert second["apps"]["already_registered"] == 3
    assert second["agreement"] == first["agreement"]
    assert second["attribution"] == first["attribution"]
    assert second["throughput"]["requests"] == -(-sample.events_sent // 7)
    assert sum(processed_events(ingestion).values()) == 2 * sample.events_sent


def test_small_batches_same_outcome(ingestion, sample):
    report = replay_json(ingestion, sample.path, "--batch-size", "5")

    assert report["agreement"]["agreed"] == sample.agreed
    assert report["attribution"]["rejected_as_click_injection"] == 4


def test_table_output(ingestion, sample):
    finished = replay(ingestion, sample.path, token=ingestion.admin_token)

    assert finished.returncode == 0, finished.stderr
    assert "agreement with the file" in finished.stdout
    assert f"{sample.agreed}/{len(sample.expected)}" in finished.stdout
    assert "rejected as click injection" in finished.stdout
    assert "without click injections" in finished.stdout
    assert ingestion.admin_token not in finished.stdout + finished.stderr


def test_token_from_file_option(ingestion, sample, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(ingestion.admin_token + "\n")

    finished = replay(ingestion, sample.path, "--json", "--admin-token-file", str(token_file))

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["agreement"]["agreed"] == sample.agreed


def test_wrong_token_fails(ingestion, sample):
    finished = replay(ingestion, sample.path, token="not-the-admin-token-000000")

    assert finished.returncode == 1
    assert "401" in finished.stderr
    assert "UNMOGROWP_ADMIN_TOKEN" in finished.stderr
    assert "ingest key" not in finished.stderr
    assert finished.stdout == ""


def test_bad_file_sends_nothing(ingestion, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "ip,app,device,os,channel,click_time,attributed_time,is_attributed\n"
        "1,2,3,4,5,2017-11-07 09:30:38,,0\n"
        "1,2,3,4,5,2017-11-07 09:30:38,2017-11-07 09:31,1\n"
    )

    finished = replay(ingestion, path, token=ingestion.admin_token)

    assert finished.returncode == 2
    assert "line 3, column attributed_time" in finished.stderr
    assert sum(processed_events(ingestion).values()) == 0
