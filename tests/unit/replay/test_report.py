"""The replay report: agreement, click injection, percentiles and the table."""

from __future__ import annotations

import json

import pytest

from ingestion.replay.report import SendStats, build_report, classify, percentile_summary, render_table
from ingestion.replay.talkingdata import ExpectedInstall


def install(number: int, ctit: int = 60) -> ExpectedInstall:
    return ExpectedInstall(
        line=number + 1,
        app_id="talkingdata-1",
        install_event_id=f"td-{number}-install",
        click_event_id=f"td-{number}",
        network=f"channel-{number}",
        click_time=1_000_000,
        install_time=1_000_000 + ctit,
    )


def record(number: int, *, status="attributed", touch=None, ctit=60.0, rejected=(), match_type="fingerprint"):
    attributed = status == "attributed"
    return {
        "install_event_id": f"td-{number}-install",
        "app_id": "talkingdata-1",
        "status": status,
        "network": f"channel-{number}" if attributed else None,
        "touch_event_id": (touch or f"td-{number}") if attributed else None,
        "touch_type": "click" if attributed else None,
        "match_type": match_type if attributed else None,
        "ctit_seconds": ctit if attributed else None,
        "rejected_touches": [{"touch_event_id": touch_id, "reason": reason} for touch_id, reason in rejected],
    }


def test_percentiles_nearest_rank():
    summary = percentile_summary(list(range(100, 0, -1)))

    assert summary == {"count": 100, "min": 1, "p50": 50, "p90": 90, "p95": 95, "p99": 99, "max": 100, "mean": 50.5}


def test_percentiles_small_sample():
    summary = percentile_summary([2, 52, 198])

    assert summary["p50"] == 52
    assert summary["p90"] == 198
    assert summary["p99"] == 198
    assert summary["min"] == 2


def test_percentiles_single_value():
    summary = percentile_summary([7])

    assert [summary[name] for name in ("min", "p50", "p99", "max")] == [7, 7, 7, 7]


def test_percentiles_empty():
    summary = percentile_summary([])

    assert summary["count"] == 0
    assert summary["p50"] is None
    assert summary["mean"] is None


@pytest.mark.parametrize(
    ("found", "outcome"),
    [
        (record(1), "agree"),
        (record(1, touch="td-9"), "other_touch"),
        (record(1, status="organic", rejected=[("td-1", "ctit_below_minimum")]), "click_injection"),
        (record(1, touch="td-0", rejected=[("td-1", "click_after_install_begin")]), "click_injection"),
        (record(1, status="organic", rejected=[("td-7", "ctit_below_minimum")]), "organic"),
        (record(1, status="organic"), "organic"),
        (record(1, status="reinstall"), "reinstall"),
        (None, "no_record"),
    ],
    ids=[
        "own click", "other click", "injection then organic", "injection then older click",
        "another click rejected", "organic", "reinstall", "missing",
    ],
)
def test_classify(found, outcome):
    assert classify(install(1), found) == outcome


def test_unknown_rejection_reason_is_not_injection():
    found = record(1, status="organic", rejected=[("td-1", "outside_window")])

    assert classify(install(1), found) == "organic"


def sample_report():
    installs = [install(1, 30), install(2, 3), install(3, 5), install(4, 600), install(5, 90)]
    records = {
        "td-1-install": record(1, ctit=30.0),
        "td-2-install": record(2, status="organic", rejected=[("td-2", "ctit_below_minimum")]),
        "td-3-install": record(3, touch="td-0", ctit=4000.0, rejected=[("td-3", "ctit_below_minimum")]),
        "td-4-install": record(4, touch="td-44", ctit=100.0),
        "td-unrelated-install": record(99),
    }
    sent = SendStats(clicks=100, installs=6, accepted=104, duplicates=2, rejected=0, requests=3, seconds=0.5)
    return build_report(
        source="clicks.csv",
        url="http://127.0.0.1:8081",
        rows=100,
        attributed_rows=6,
        apps=["talkingdata-1", "talkingdata-2"],
        apps_created=1,
        installs=installs,
        records=records,
        sent=sent,
    )


def test_report_counts():
    report = sample_report()

    assert report["events"]["sent"] == 106
    assert report["events"]["accepted"] == 104
    assert report["events"]["duplicates"] == 2
    assert report["apps"] == {"met": 2, "registered": 1, "already_registered": 1}
    assert report["attribution"]["installs"] == 5
    assert report["attribution"]["records"] == 4
    assert report["attribution"]["attributed"] == 3
    assert report["attribution"]["organic"] == 1
    assert report["attribution"]["reinstall"] == 0
    assert report["attribution"]["match_types"] == {"fingerprint": 3}
    assert report["throughput"]["events_per_second"] == 212.0


def test_report_agreement():
    agreement = sample_report()["agreement"]

    assert agreement["compared"] == 5
    assert agreement["agreed"] == 1
    assert agreement["percent"] == 20.0
    assert agreement["agreed_without_click_injection_percent"] == pytest.approx(33.33)
    assert agreement["disagreements_by_reason"] == {"click_injection": 2, "no_record": 1, "other_touch": 1}
    assert [(entry["line"], entry["reason"]) for entry in agreement["disagreements"]] == [
        (3, "click_injection"),
        (4, "click_injection"),
        (5, "other_touch"),
        (6, "no_record"),
    ]
    other = agreement["disagreements"][2]
    assert other["expected_touch_event_id"] == "td-4"
    assert other["touch_event_id"] == "td-44"
    assert other["file_ctit_seconds"] == 600


def test_report_click_injections():
    attribution = sample_report()["attribution"]

    assert attribution["rejected_as_click_injection"] == 2
    first, second = attribution["click_injections"]
    assert first["install_event_id"] == "td-2-install"
    assert first["status"] == "organic"
    assert first["rejected_touches"] == [
        {"touch_event_id": "td-2", "reason": "ctit_below_minimum", "is_file_click": True}
    ]
    assert second["status"] == "attributed"
    assert second["touch_event_id"] == "td-0"


def test_report_ctit_from_records_and_file():
    report = sample_report()

    assert report["attribution"]["ctit_seconds"]["count"] == 3
    assert report["attribution"]["ctit_seconds"]["min"] == 30.0
    assert report["attribution"]["ctit_seconds"]["max"] == 4000.0
    assert report["file"]["ctit_seconds"]["count"] == 5
    assert report["file"]["ctit_seconds"]["p50"] == 30


def test_report_is_json_ready():
    report = sample_report()

    assert json.loads(json.dumps(report)) == report


def test_table_shows_key_figures():
    table = render_table(sample_report())

    assert "events sent" in table
    assert "106" in table
    assert "1/5" in table
    assert "20.0 %" in table
    assert "rejected as click injection" in table
    assert "click injection" in table
    assert "from the records" in table
    assert "events per second" in table
    assert "212" in table


def test_report_with_no_installs():
    report = build_report(
        source="clicks.csv",
        url="http://127.0.0.1:8081",
        rows=3,
        attributed_rows=0,
        apps=["talkingdata-1"],
        apps_created=1,
        installs=[],
        records={},
        sent=SendStats(clicks=3, accepted=3),
    )

    assert report["agreement"]["percent"] is None
    assert report["throughput"]["events_per_second"] is None
    assert "0/0" in render_table(report)
