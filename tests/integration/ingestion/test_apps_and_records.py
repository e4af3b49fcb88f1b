"""App registration, per-app windows and the attribution record queries of a running service."""

from __future__ import annotations

import time

import pytest

from tests.integration.ingestion.helpers import click, install, session, unique


def test_register_returns_key_once(api):
    app_id = unique("app")

    response = api.client.post("/v1/apps", json={"app_id": app_id, "platform": "ios"}, headers=api.admin)
    listed = api.client.get("/v1/apps", headers=api.admin).json()
    app_document = api.client.get(f"/v1/apps/{app_id}", headers=api.admin).json()

    assert response.status_code == 201
    assert response.json()["ingest_key"].startswith("umk_")
    assert response.json()["app"]["click_window_s"] == 604800
    assert app_id in [app["app_id"] for app in listed["items"]]
    assert "ingest_key" not in app_document
    assert "key_hash" not in app_document
    assert app_document["reinstall_window_s"] == 7776000


def test_register_twice_conflicts(api):
    app_id, _ = api.register()

    response = api.client.post("/v1/apps", json={"app_id": app_id, "platform": "ios"}, headers=api.admin)

    assert response.status_code == 409
    assert "already registered" in response.json()["detail"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"platform": "ios"}, "app_id: missing required field; send 1 to 128 characters"),
        ({"app_id": "x", "platform": "symbian"}, "platform: Invalid enum value 'symbian'; use one of ios, android, web"),
        ({"app_id": "x", "platform": "ios", "click_window_s": -1},
         "click_window_s: Expected `int` >= 0; send whole seconds from 0 to 315360000"),
        ({"app_id": "x", "platform": "ios", "colour": "red"},
         "Object contains unknown field `colour`; the settings are app_id (at registration only) and platform"),
    ],
    ids=["missing app_id", "unknown platform", "negative window", "unknown field"],
)
def test_register_invalid_rejected(api, document, message):
    response = api.client.post("/v1/apps", json=document, headers=api.admin)

    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize("limit", ["0", "5000", "many"])
def test_invalid_limit_named_in_plain_message(api, limit):
    app_id, key = api.register()

    response = api.client.get("/v1/attributions", params={"app_id": app_id, "limit": limit},
                              headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("limit: ")
    assert response.json()["detail"].endswith("send limit from 1 to 1000")


def test_patch_of_app_id_rejected(api):
    app_id, _ = api.register()

    response = api.client.patch(f"/v1/apps/{app_id}", json={"app_id": "renamed"}, headers=api.admin)

    assert response.status_code == 422
    assert "unknown field `app_id`; the settings are app_id (at registration only)" in response.json()["detail"]


def test_patch_changes_click_window(api):
    app_id, key = api.register()
    now = time.time()
    api.send(key, [click(app_id, "click-1", now - 400, gaid="g-1"), click(app_id, "click-2", now - 400, gaid="g-2")])
    api.send(key, [install(app_id, "before-patch", now, gaid="g-1")])

    patched = api.client.patch(f"/v1/apps/{app_id}", json={"click_window_s": 300}, headers=api.admin)
    api.send(key, [install(app_id, "after-patch", now, gaid="g-2")])

    assert patched.status_code == 200
    assert patched.json()["click_window_s"] == 300
    assert patched.json()["fingerprint_window_s"] == 86400
    assert api.record(app_id, "before-patch")["status"] == "attributed"
    assert api.record(app_id, "after-patch")["status"] == "organic"


def test_patch_changes_ctit_minimum(api):
    app_id, key = api.register()
    now = time.time()
    api.client.patch(f"/v1/apps/{app_id}", json={"ctit_min_s": 120}, headers=api.admin)

    api.send(key, [click(app_id, "click", now - 60, gaid="g-1"), install(app_id, "install", now, gaid="g-1")])
    record = api.record(app_id, "install")

    assert record["status"] == "organic"
    assert record["rejected_touches"] == [{"touch_event_id": "click", "reason": "ctit_below_minimum"}]


def test_patch_invalid_rejected(api):
    app_id, _ = api.register()

    unknown = api.client.patch(f"/v1/apps/{app_id}", json={"app_id": "renamed"}, headers=api.admin)
    missing = api.client.patch(f"/v1/apps/{unique('absent')}", json={"ctit_min_s": 1}, headers=api.admin)

    assert unknown.status_code == 422
    assert "app_id" in unknown.json()["detail"]
    assert missing.status_code == 404


def test_delete_revokes_key(api):
    app_id, key = api.register()
    assert api.send(key, [session(app_id, "before")])["accepted"] == 1

    deleted = api.client.delete(f"/v1/apps/{app_id}", headers=api.admin)
    after = api.post_events(key, [session(app_id, "after")])
    admin_send = api.send(api.service.admin_token, [session(app_id, "by-admin")])

    assert deleted.status_code == 204
    assert after.status_code == 401
    assert admin_send["rejected"] == 1
    assert api.client.get(f"/v1/apps/{app_id}", headers=api.admin).status_code == 404


def test_records_paginated_and_filtered(api):
    app_id, key = api.register()
    now = time.time()
    events = []
    for index in range(25):
        network = "alpha" if index % 2 else "beta"
        events.append(click(app_id, f"click-{index}", now - 3000 + index, gaid=f"g-{index}", network=network))
        events.append(install(app_id, f"install-{index}", now - 1000 + index, gaid=f"g-{index}"))
    events.append(install(app_id, "organic", now, gaid="nobody"))
    api.send(key, events)

    everything = api.records(app_id, limit=4)
    alpha = api.records(app_id, network="alpha", limit=5)
    organic = api.records(app_id, status="organic")
    recent = api.records(app_id, since=now - 990, until=now - 980)
    own_key = api.client.get("/v1/attributions", params={"limit": 1000}, headers={"Authorization": f"Bearer {key}"})

    assert [record["install_event_id"] for record in everything] == [f"install-{index}" for index in range(25)] + ["organic"]
    assert len(alpha) == 12
    assert all(record["network"] == "alpha" for record in alpha)
    assert [record["install_event_id"] for record in organic] == ["organic"]
    assert [record["install_event_id"] for record in recent] == [f"install-{index}" for index in range(10, 20)]
    assert len(own_key.json()["items"]) == 26


def test_record_document(api):
    app_id, key = api.register()
    api.send(key, [
        click(app_id, "click", "2024-05-01T12:00:00Z", gaid="g", network="adnet", campaign="c", adgroup="a", creative="k"),
        install(app_id, "install", "2024-05-01T12:01:30.250+00:00", gaid="g"),
    ])

    assert api.record(app_id, "install") == {
        "install_event_id": "install",
        "app_id": app_id,
        "status": "attributed",
        "network": "adnet",
        "campaign": "c",
        "adgroup": "a",
        "creative": "k",
        "touch_event_id": "click",
        "touch_type": "click",
        "match_type": "device_id",
        "install_time": "2024-05-01T12:01:30.250Z",
        "touch_time": "2024-05-01T12:00:00.000Z",
        "ctit_seconds": 90.25,
        "rejected_touches": [],
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "lost"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-05-01T00:00:00"}, "until"),
        ({"cursor": "!!!"}, "cursor"),
    ],
    ids=["unknown status", "since text", "until without offset", "bad cursor"],
)
def test_record_query_invalid(api, params, message):
    app_id, _ = api.register()

    response = api.client.get("/v1/attributions", params={"app_id": app_id, **params}, headers=api.admin)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


def test_cursor_of_other_app_rejected(api):
    first_id, first_key = api.register()
    second_id, _ = api.register()
    api.send(first_key, [install(first_id, f"install-{index}", time.time()) for index in range(3)])
    cursor = api.client.get("/v1/attributions", params={"app_id": first_id, "limit": 1}, headers=api.admin).json()["next_cursor"]

    response = api.client.get("/v1/attributions", params={"app_id": second_id, "cursor": cursor}, headers=api.admin)

    assert response.status_code == 400
    assert "another app_id" in response.json()["detail"]
