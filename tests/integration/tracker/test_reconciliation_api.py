"""Reconciliation of reference attributions against the ingestion service's records."""

import json

import pytest


def _records(ingestion):
    ingestion.add_record("acme.ios", "i-1", "AdNet", "spring")
    ingestion.add_record("acme.ios", "i-2", "AdNet", "summer")
    ingestion.add_record("acme.ios", "i-3", None)
    ingestion.add_record("acme.ios", "i-4", "OtherNet", "spring")
    ingestion.add_record("acme.android", "i-5", "AdNet", "spring", status="reinstall")


def _upload(tracker, body, content_type, customer_id="acme"):
    return tracker.post(f"/v1/customers/{customer_id}/reconciliations", content=body,
                        headers={"Content-Type": content_type})


def test_csv_reconciliation_reports_mismatches(tracker, ingestion):
    _records(ingestion)
    tracker.add_customer("acme", app_ids=["acme.ios", "acme.android"])
    reference = (
        "install_event_id,network,campaign\n"
        "i-1, adnet ,spring\n"     # matches: case and spaces do not count
        "i-2,AdNet,winter\n"      # campaign differs
        "i-3,,\n"                 # organic on both sides
        "i-4,AdNet,\n"            # network differs
        "i-5,AdNet,\n"            # a reinstall keeps its network; no campaign given, so not compared
        "i-9,AdNet,spring\n"      # unknown to the ingestion service
    )

    response = _upload(tracker, reference.encode(), "text/csv")

    assert response.status_code == 201, response.text
    run = response.json()
    assert run["format"] == "csv"
    assert run["compared"] == 6
    assert run["matched"] == 3
    assert run["accuracy_percent"] == 50.0
    assert run["mismatch_count"] == 3
    reasons = {m["install_event_id"]: m["reason"] for m in run["mismatches"]}
    assert reasons == {"i-2": "campaign_differs", "i-4": "network_differs", "i-9": "not_found"}
    network_mismatch = next(m for m in run["mismatches"] if m["install_event_id"] == "i-4")
    assert network_mismatch["expected_network"] == "AdNet"
    assert network_mismatch["actual_network"] == "OtherNet"
    assert network_mismatch["app_id"] == "acme.ios"
    assert tracker.sample("attribution_accuracy_percent", customer_id="acme") == 50.0
    status = tracker.get("/v1/customers/acme/status").json()
    assert status["attribution_accuracy"]["percent"] == 50.0
    assert status["attribution_accuracy"]["run_id"] == run["run_id"]


def test_headerless_csv_and_json_forms(tracker, ingestion):
    _records(ingestion)
    tracker.add_customer("acme", app_ids=["acme.ios", "acme.android"])

    headerless = _upload(tracker, b"i-1,AdNet\ni-2,AdNet,summer\n\ni-3,\n", "text/csv; charset=utf-8")
    assert headerless.status_code == 201, headerless.text
    assert headerless.json()["matched"] == 3

    items = [{"install_event_id": "i-1", "network": "AdNet"}, {"install_event_id": "i-3", "network": None},
             {"install_event_id": "i-4", "network": "AdNet", "app_id": "acme.ios"}]
    as_array = _upload(tracker, json.dumps(items).encode(), "application/json")
    assert as_array.status_code == 201, as_array.text
    assert as_array.json()["format"] == "json"
    assert as_array.json()["matched"] == 2
    assert as_array.json()["accuracy_percent"] == pytest.approx(66.6667)

    as_object = _upload(tracker, json.dumps({"items": items[:2]}).encode(), "application/json")
    assert as_object.status_code == 201
    assert as_object.json()["accuracy_percent"] == 100.0
    assert tracker.sample("attribution_accuracy_percent", customer_id="acme") == 100.0


def test_runs_kept_as_history(tracker, ingestion):
    _records(ingestion)
    tracker.add_customer("acme", app_ids=["acme.ios"])
    first = _upload(tracker, b"i-1,AdNet\ni-4,AdNet\n", "text/csv").json()
    tracker.clock.advance(hours=1)
    second = _upload(tracker, b"i-1,AdNet\ni-4,OtherNet\n", "text/csv").json()

    runs = tracker.get("/v1/customers/acme/reconciliations").json()["items"]
    assert [run["run_id"] for run in runs] == [second["run_id"], first["run_id"]]
    assert [run["accuracy_percent"] for run in runs] == [100.0, 50.0]
    detail = tracker.get(f"/v1/customers/acme/reconciliations/{first['run_id']}").json()
    assert [m["install_event_id"] for m in detail["mismatches"]] == ["i-4"]
    assert tracker.sample("attribution_accuracy_percent", customer_id="acme") == 100.0


def test_mismatches_paged(tracker, ingestion):
    tracker.add_customer("acme", app_ids=["acme.ios"])
    ingestion.records["acme.ios"] = []
    reference = "".join(f"missing-{n},AdNet\n" for n in range(5)).encode()
    run = _upload(tracker, reference, "text/csv").json()
    path = f"/v1/customers/acme/reconciliations/{run['run_id']}"

    first = tracker.get(path, params={"limit": 3}).json()
    second = tracker.get(path, params={"limit": 3, "cursor": first["next_cursor"]}).json()

    assert [m["install_event_id"] for m in first["mismatches"]] == ["missing-0", "missing-1", "missing-2"]
    assert [m["install_event_id"] for m in second["mismatches"]] == ["missing-3", "missing-4"]
    assert second["next_cursor"] is None


def test_install_in_two_apps_ambiguous(tracker, ingestion):
    ingestion.add_record("acme.ios", "same-id", "AdNet")
    ingestion.add_record("acme.android", "same-id", "AdNet")
    tracker.add_customer("acme", app_ids=["acme.ios", "acme.android"])

    without_app = _upload(tracker, b"same-id,AdNet\n", "text/csv").json()
    with_app = _upload(tracker, b"install_event_id,app_id,network\nsame-id,acme.ios,AdNet\n", "text/csv").json()

    assert without_app["mismatches"][0]["reason"] == "ambiguous"
    assert with_app["matched"] == 1


BAD_REFERENCES = [
    (b"", "text/csv", 422, "no rows"),
    (b"i-1\n", "text/csv", 422, "line 1"),
    (b"i-1,AdNet,spring,extra,more\n", "text/csv", 422, "line 1"),
    (b"i-1,AdNet\n,AdNet\n", "text/csv", 422, "line 2: install_event_id is missing"),
    (b'i-1,"AdNet\n', "text/csv", 422, "malformed CSV"),
    (b"i-1,AdNet\ni-1,Other\n", "text/csv", 422, "appears again"),
    (b"install_event_id,channel\ni-1,AdNet\n", "text/csv", 422, "unknown column 'channel'"),
    (b"\xff\xfei-1,AdNet\n", "text/csv", 422, "not UTF-8"),
    (b"install_event_id,app_id,network\ni-1,someone.else,AdNet\n", "text/csv", 422, "not an app of customer"),
    (b'{"install_event_id": "i-1"', "application/json", 422, "not valid JSON"),
    (b'{"rows": []}', "application/json", 422, "array"),
    (b'[{"install_event_id": 7, "network": "AdNet"}]', "application/json", 422, "item 0: install_event_id must be"),
    (b'["i-1"]', "application/json", 422, "item 0"),
    (b'[{"install_event_id": "i-1", "netwrok": "AdNet"}]', "application/json", 422,
     "item 0: unknown field 'netwrok': use install_event_id, network, campaign, app_id"),
    (b'[{"install_event_id": "i-1"}]', "application/json", 422, "item 0: network is missing"),
    (b"i-1,AdNet\n", "text/plain", 415, "text/csv or application/json"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "words"), BAD_REFERENCES)
def test_bad_reference_rejected_without_run(tracker, ingestion, body, content_type, status, words):
    _records(ingestion)
    tracker.add_customer("acme", app_ids=["acme.ios"])

    response = _upload(tracker, body, content_type)

    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert tracker.get("/v1/customers/acme/reconciliations").json()["items"] == []
    assert tracker.sample("attribution_accuracy_percent", customer_id="acme") is None
    assert tracker.sample("tracker_reconciliations_total", result="rejected") == 1


def test_reference_over_size_limit(tracker, ingestion, monkeypatch):
    from customer_tracker import api

    monkeypatch.setattr(api, "MAX_REFERENCE_BYTES", 64)
    tracker.add_customer("acme", app_ids=["acme.ios"])
    response = _upload(tracker, b"i-1,AdNet\n" * 10, "text/csv")
    assert response.status_code == 413
    assert "over the limit of 64 bytes" in response.json()["message"]


def test_customer_without_apps_rejected(tracker):
    tracker.add_customer("acme")
    response = _upload(tracker, b"i-1,AdNet\n", "text/csv")
    assert response.status_code == 409
    assert "has no apps" in response.json()["message"]


def test_unknown_customer_rejected(tracker):
    response = _upload(tracker, b"i-1,AdNet\n", "text/csv", customer_id="nobody")
    assert response.status_code == 404


def test_ingestion_down_records_nothing(tracker, ingestion):
    _records(ingestion)
    tracker.add_customer("acme", app_ids=["acme.ios"])
    ingestion.stop()

    response = _upload(tracker, b"i-1,AdNet\n", "text/csv")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"
    assert "unreachable" in response.json()["message"]
    assert tracker.get("/v1/customers/acme/reconciliations").json()["items"] == []
    assert tracker.sample("tracker_reconciliations_total", result="failed") == 1


def test_ingestion_error_is_bad_gateway(tracker, ingestion):
    _records(ingestion)
    tracker.add_customer("acme", app_ids=["acme.ios"])
    ingestion.fail_with = 500

    response = _upload(tracker, b"i-1,AdNet\n", "text/csv")

    assert response.status_code == 502
    assert "HTTP 500" in response.json()["message"]
    assert tracker.get("/v1/customers/acme/reconciliations").json()["items"] == []


def test_app_unknown_to_ingestion_has_no_records(tracker, ingestion):
    tracker.add_customer("acme", app_ids=["never.registered"])
    response = _upload(tracker, b"i-1,AdNet\n", "text/csv")
    assert response.status_code == 201
    assert response.json()["mismatches"][0]["reason"] == "not_found"
