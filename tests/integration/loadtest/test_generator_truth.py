"""The generator's expected attribution against the records of the real ingestion service."""

from __future__ import annotations

import secrets

import httpx
import pytest

from loadtest.generator import build_template


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_service_agrees_with_generator(ingestion, platform):
    app_id = f"truth-{platform}-{secrets.token_hex(4)}"
    registered = httpx.post(ingestion.url + "/v1/apps", json={"app_id": app_id, "platform": platform},
                            headers=ingestion.headers)
    assert registered.status_code == 201
    key = {"Authorization": f"Bearer {registered.json()['ingest_key']}"}
    template = build_template(app_id, platform, 1000, seed=11)

    mismatches = []
    compared = 0
    with httpx.Client(base_url=ingestion.url, headers=key, timeout=30) as client:
        # Three sends of the same template, on the service's default late-arrival allowance. The
        # later ones must not see the first one's devices, and arrive behind the watermark the
        # first one set, since every send repeats the same event times.
        for sequence in (1, 2, 3):
            response = client.post("/v1/events", content=template.render(sequence),
                                   headers={"Content-Type": template.content_type})
            assert response.json() == {"accepted": 1000, "duplicates": 0, "rejected": 0, "errors": []}
            _, expected = template.materialize(sequence)
            for record in expected:
                actual = client.get(f"/v1/attributions/{app_id}/{record.install_event_id}").json()
                compared += 1
                got = (actual["status"], actual["network"], actual["campaign"], actual["touch_event_id"],
                       actual["match_type"],
                       tuple((touch["touch_event_id"], touch["reason"]) for touch in actual["rejected_touches"]))
                want = (record.status, record.network, record.campaign, record.touch_event_id,
                        record.match_type, record.rejected_touches)
                if got != want:
                    mismatches.append((record.scenario, got, want))

    assert compared > 100
    assert mismatches == []


def test_resent_batch_is_duplicates(ingestion):
    app_id = f"truth-resend-{secrets.token_hex(4)}"
    registered = httpx.post(ingestion.url + "/v1/apps", json={"app_id": app_id, "platform": "android"},
                            headers=ingestion.headers)
    key = {"Authorization": f"Bearer {registered.json()['ingest_key']}", "Content-Type": "application/json"}
    template = build_template(app_id, "android", 300, seed=12)

    first = httpx.post(ingestion.url + "/v1/events", content=template.render(5), headers=key).json()
    again = httpx.post(ingestion.url + "/v1/events", content=template.render(5), headers=key).json()
    fresh = httpx.post(ingestion.url + "/v1/events", content=template.render(6), headers=key).json()

    assert (first["accepted"], first["duplicates"]) == (300, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 300)
    assert (fresh["accepted"], fresh["duplicates"]) == (300, 0)
