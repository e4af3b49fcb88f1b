"""Customers, phases, surveys and tickets through the tracker's HTTP API."""

import datetime as dt

import pytest

from .conftest import START


def test_customer_create_get_list_update_delete(tracker):
    created = tracker.add_customer(
        "acme", company_name="Acme Games", app_ids=["acme.ios", "acme.android"], pilot=True,
        kickoff_date="2026-03-01", currency="EUR", previous_monthly_cost="1200.50", monthly_cost=700,
    )
    assert created["phase"] == "discovery"
    assert created["app_ids"] == ["acme.android", "acme.ios"]
    assert created["previous_monthly_cost"] == "1200.50"
    assert created["monthly_cost"] == "700.00"
    assert created["currency"] == "EUR"
    assert created["created_at"] == START.isoformat()

    fetched = tracker.get("/v1/customers/acme")
    assert fetched.status_code == 200
    assert fetched.json() == created

    tracker.add_customer("beta", pilot=False)
    tracker.add_customer("gamma")
    listed = tracker.get("/v1/customers", params={"limit": 2})
    assert [item["customer_id"] for item in listed.json()["items"]] == ["acme", "beta"]
    assert listed.json()["next_cursor"] == "beta"
    rest = tracker.get("/v1/customers", params={"limit": 2, "cursor": "beta"}).json()
    assert [item["customer_id"] for item in rest["items"]] == ["gamma"]
    assert rest["next_cursor"] is None
    pilots = tracker.get("/v1/customers", params={"pilot": "true"}).json()["items"]
    assert [item["customer_id"] for item in pilots] == ["acme", "gamma"]

    updated = tracker.patch("/v1/customers/acme", json={"company_name": "Acme Studios", "app_ids": ["acme.ios"],
                                                        "monthly_cost": "650.25"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["company_name"] == "Acme Studios"
    assert updated.json()["app_ids"] == ["acme.ios"]
    assert updated.json()["monthly_cost"] == "650.25"
    assert updated.json()["previous_monthly_cost"] == "1200.50"

    deleted = tracker.delete("/v1/customers/acme")
    assert deleted.status_code == 204
    assert tracker.get("/v1/customers/acme").status_code == 404


def test_money_kept_exactly(tracker):
    tracker.add_customer("exact", previous_monthly_cost="12345678901.2345", monthly_cost="0.0001")
    customer = tracker.get("/v1/customers/exact").json()
    assert customer["previous_monthly_cost"] == "12345678901.2345"
    assert customer["monthly_cost"] == "0.0001"


def test_writes_need_admin_token(tracker):
    body = {"customer_id": "acme", "company_name": "Acme"}
    missing = tracker.client.post("/v1/customers", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing admin token" in missing.json()["message"]
    wrong = tracker.client.post("/v1/customers", json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert "unknown admin token" in wrong.json()["message"]
    assert tracker.get("/v1/customers").json()["items"] == []


def _database_state(tracker) -> dict:
    customers = tracker.get("/v1/customers").json()["items"]
    state = {"customers": customers}
    for customer in customers:
        path = f"/v1/customers/{customer['customer_id']}"
        state[customer["customer_id"]] = {
            "phase": tracker.get(path + "/phase").json(),
            "surveys": tracker.get(path + "/surveys").json(),
            "tickets": tracker.get(path + "/tickets").json(),
        }
    return state


BAD_REQUESTS = [
    # (method, path, body, status, words the message must contain)
    ("post", "/v1/customers", {"customer_id": 'ac"me', "company_name": "x"}, 422, "customer_id"),
    ("post", "/v1/customers", {"customer_id": "ac\nme", "company_name": "x"}, 422, "customer_id"),
    ("post", "/v1/customers", {"customer_id": "a" * 65, "company_name": "x"}, 422, "customer_id"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "two\nlines"}, 422, "company_name"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "x", "monthly_cost": "-1"}, 422, "monthly_cost"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "x", "monthly_cost": "1.00001"}, 422,
     "decimal places"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "x", "currency": "usd"}, 422, "currency"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "x", "colour": "red"}, 422, "colour"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "x", "app_ids": ["a", "a"]}, 422, "unique"),
    ("post", "/v1/customers", {"customer_id": "acme", "company_name": "again"}, 409, "already exists"),
    ("post", "/v1/customers", {"customer_id": "new", "company_name": "x", "app_ids": ["acme.ios"]}, 409,
     "already belongs to customer 'acme'"),
    ("patch", "/v1/customers/acme", {"pilot": None}, 422, "pilot cannot be null"),
    ("patch", "/v1/customers/nobody", {"company_name": "x"}, 404, "customer 'nobody' not found"),
    ("put", "/v1/customers/acme/phase", {"phase": "beta"}, 422, "phase"),
    ("put", "/v1/customers/nobody/phase", {"phase": "setup"}, 404, "not found"),
    ("put", "/v1/customers/%22acme%22/phase", {"phase": "setup"}, 422, "invalid customer_id"),
    ("post", "/v1/customers/acme/surveys", {"score": 101}, 422, "score"),
    ("post", "/v1/customers/acme/surveys", {"score": -1}, 422, "score"),
    ("post", "/v1/customers/acme/surveys", {"csat": 6}, 422, "csat"),
    ("post", "/v1/customers/acme/surveys", {"csat": 4.5}, 422, "csat"),
    ("post", "/v1/customers/acme/surveys", {"score": 90, "csat": 5}, 422, "exactly one"),
    ("post", "/v1/customers/acme/surveys", {}, 422, "exactly one"),
    ("post", "/v1/customers/nobody/surveys", {"score": 90}, 404, "not found"),
    ("post", "/v1/customers/acme/tickets", {"title": "x", "severity": "urgent"}, 422, "severity"),
    ("post", "/v1/customers/acme/tickets", {"title": ""}, 422, "title"),
    ("patch", "/v1/customers/acme/tickets/999999", {"status": "closed"}, 404, "ticket 999999"),
    ("patch", "/v1/customers/acme/tickets/1", {"status": "pending"}, 422, "status"),
    ("delete", "/v1/customers/nobody", None, 404, "not found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD_REQUESTS)
def test_bad_request_changes_nothing(tracker, method, path, body, status, words):
    tracker.add_customer("acme", app_ids=["acme.ios"])
    before = _database_state(tracker)
    kwargs = {} if body is None else {"json": body}

    response = getattr(tracker, method)(path, **kwargs)

    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert _database_state(tracker) == before


def test_malformed_json_rejected(tracker):
    response = tracker.post("/v1/customers", content=b'{"customer_id": "x",', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "body"
    assert "body: not valid JSON at character" in response.json()["message"]
    assert response.json()["message"].endswith("; send a JSON object")
    assert tracker.get("/v1/customers").json()["items"] == []


def test_json_sent_as_text_names_content_type(tracker):
    response = tracker.post("/v1/customers", content=b'{"customer_id": "x", "company_name": "X"}',
                            headers={"Content-Type": "text/plain"})

    assert response.status_code == 422
    assert "send a JSON object with Content-Type: application/json" in response.json()["message"]
    assert tracker.get("/v1/customers").json()["items"] == []


def test_customer_id_with_quote_in_path(tracker):
    response = tracker.get("/v1/customers/a%27b/status")
    assert response.status_code == 422
    assert "invalid customer_id" in response.json()["message"]


def test_phase_changes_kept_with_time(tracker):
    tracker.add_customer("acme", kickoff_date="2026-03-02")
    for days, phase in ((1, "setup"), (2, "launch"), (3, "live")):
        tracker.clock.advance(days=days)
        response = tracker.put("/v1/customers/acme/phase", json={"phase": phase})
        assert response.status_code == 200, response.text

    again = tracker.put("/v1/customers/acme/phase", json={"phase": "live"})
    history = again.json()["history"]
    assert again.json()["phase"] == "live"
    assert [(change["from_phase"], change["to_phase"]) for change in history] == [
        (None, "discovery"), ("discovery", "setup"), ("setup", "launch"), ("launch", "live"),
    ]
    assert [change["changed_at"] for change in history] == [
        START.isoformat(),
        (START + dt.timedelta(days=1)).isoformat(),
        (START + dt.timedelta(days=3)).isoformat(),
        (START + dt.timedelta(days=6)).isoformat(),
    ]


@pytest.mark.parametrize(
    ("launch_after_days", "colour"), [(10, "green"), (13.9, "green"), (14, "yellow"), (20.5, "yellow"), (21, "red")]
)
def test_days_to_launch_measured(tracker, launch_after_days, colour):
    # The kickoff is midnight UTC of START's day, and START is 09:00.
    tracker.add_customer("acme", kickoff_date=START.date().isoformat())
    tracker.clock.advance(days=launch_after_days, hours=-9)
    tracker.put("/v1/customers/acme/phase", json={"phase": "launch"})
    tracker.clock.advance(days=30)

    status = tracker.get("/v1/customers/acme/status").json()

    assert status["time_to_launch"]["days"] == pytest.approx(launch_after_days, abs=0.01)
    assert status["time_to_launch"]["colour"] == colour
    assert status["time_to_launch"]["launched"] is True
    seconds = tracker.sample("customer_time_to_launch_seconds", customer_id="acme")
    assert seconds == pytest.approx(launch_after_days * 86400, abs=1)


def test_days_to_launch_runs_before_launch(tracker):
    tracker.add_customer("late", kickoff_date="2026-02-01")
    status = tracker.get("/v1/customers/late/status").json()
    # 2026-02-01 00:00 to 2026-03-02 09:00 is 29 days and 9 hours.
    assert status["time_to_launch"]["days"] == pytest.approx(29.375, abs=0.01)
    assert status["time_to_launch"]["colour"] == "red"
    assert status["time_to_launch"]["launched"] is False


def test_satisfaction_mean_of_latest_five(tracker):
    tracker.add_customer("acme", company_name='Acme "Games"')
    for answer in ({"score": 10}, {"score": 100}, {"csat": 4}, {"score": 90.5}, {"csat": 5}, {"score": 95}):
        tracker.clock.advance(minutes=1)
        response = tracker.post("/v1/customers/acme/surveys", json=answer)
        assert response.status_code == 201, response.text

    surveys = tracker.get("/v1/customers/acme/surveys").json()["items"]
    assert [survey["score_percent"] for survey in surveys] == [95, 100, 90.5, 80, 100, 10]
    assert surveys[3]["scale"] == "csat"
    assert surveys[3]["answer"] == 4
    status = tracker.get("/v1/customers/acme/status").json()
    expected = (95 + 100 + 90.5 + 80 + 100) / 5
    assert status["satisfaction"]["score_percent"] == pytest.approx(expected)
    assert status["satisfaction"]["surveys_counted"] == 5
    assert status["satisfaction"]["surveys_total"] == 6
    value = tracker.sample("customer_satisfaction_score", customer_id="acme", company_name='Acme "Games"')
    assert value == pytest.approx(expected)


def test_tickets_open_and_close(tracker):
    tracker.add_customer("acme")
    tracker.add_customer("other")
    ids = []
    for title in ("SDK crash", "Late postbacks", "Dashboard typo"):
        response = tracker.post("/v1/customers/acme/tickets", json={"title": title, "severity": "high"})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "open"
        ids.append(response.json()["ticket_id"])
    assert tracker.sample("customer_open_support_tickets", customer_id="acme") == 3

    closed = tracker.patch(f"/v1/customers/acme/tickets/{ids[0]}", json={"status": "closed"})
    assert closed.status_code == 200
    assert closed.json()["closed_at"] == START.isoformat()
    assert tracker.sample("customer_open_support_tickets", customer_id="acme") == 2
    assert tracker.get("/v1/customers/acme/status").json()["open_tickets"] == 2
    open_titles = [t["title"] for t in tracker.get("/v1/customers/acme/tickets", params={"status": "open"}).json()["items"]]
    assert open_titles == ["Late postbacks", "Dashboard typo"]

    foreign = tracker.patch(f"/v1/customers/other/tickets/{ids[1]}", json={"status": "closed"})
    assert foreign.status_code == 404
    assert tracker.sample("customer_open_support_tickets", customer_id="other") == 0


def test_health_and_openapi_pages(tracker):
    assert tracker.get("/health").json() == {"status": "ok", "service": "customer-tracker"}
    assert tracker.get("/healthz").status_code == 200
    docs = tracker.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    paths = tracker.get("/openapi.json").json()["paths"]
    for path in ("/v1/customers", "/v1/customers/{customer_id}/phase", "/v1/customers/{customer_id}/surveys",
                 "/v1/customers/{customer_id}/tickets/{ticket_id}", "/v1/customers/{customer_id}/reconciliations",
                 "/v1/customers/{customer_id}/status"):
        assert path in paths
    reconciliation = paths["/v1/customers/{customer_id}/reconciliations"]["post"]["requestBody"]["content"]
    assert set(reconciliation) == {"text/csv", "application/json"}


def test_deleted_customer_leaves_no_history(tracker, ingestion):
    ingestion.add_record("acme.ios", "i-1", "AdNet")
    tracker.add_customer("acme", app_ids=["acme.ios"])
    tracker.put("/v1/customers/acme/phase", json={"phase": "setup"})
    tracker.post("/v1/customers/acme/surveys", json={"score": 50})
    tracker.post("/v1/customers/acme/tickets", json={"title": "old ticket"})
    tracker.post("/v1/customers/acme/reconciliations", content=b"i-1,AdNet\n", headers={"Content-Type": "text/csv"})
    assert tracker.delete("/v1/customers/acme").status_code == 204

    tracker.add_customer("acme", app_ids=["acme.ios"])

    assert [c["to_phase"] for c in tracker.get("/v1/customers/acme/phase").json()["history"]] == ["discovery"]
    assert tracker.get("/v1/customers/acme/surveys").json()["items"] == []
    assert tracker.get("/v1/customers/acme/tickets").json()["items"] == []
    assert tracker.get("/v1/customers/acme/reconciliations").json()["items"] == []


def test_concurrent_creates_one_wins(tracker):
    import concurrent.futures

    def create(number):
        return tracker.post("/v1/customers", json={"customer_id": "race", "company_name": f"Racer {number}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(8)))

    assert sorted(statuses) == [201] + [409] * 7
    assert len(tracker.get("/v1/customers").json()["items"]) == 1


def test_unknown_route_in_error_shape(tracker):
    missing = tracker.get("/v1/nothing-here")
    wrong_method = tracker.put("/v1/customers")

    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "message": "GET /v1/nothing-here is not a route of the tracker; see /docs for the API",
    }
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert wrong_method.json()["message"].startswith("PUT /v1/customers is not allowed; use ")
    assert wrong_method.headers["allow"] in wrong_method.json()["message"]
