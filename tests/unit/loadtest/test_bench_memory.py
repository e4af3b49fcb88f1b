"""The memory benchmark's events and its estimate of a store at its maxima."""

from __future__ import annotations

import json

import pytest

from ingestion.events import decode_batch, validate_event
from loadtest.bench_memory import KINDS, RECEIPT_NOW, event, estimate


@pytest.mark.parametrize("kind", KINDS)
def test_events_pass_the_service_checks(kind):
    body = json.dumps([event(kind, number) for number in range(50)]).encode()

    decoded, errors = decode_batch(body, ndjson=False)

    assert errors == []
    assert [validate_event(item, RECEIPT_NOW, "android") for item in decoded] == [None] * 50


def test_event_ids_distinct_thirty_characters():
    events = [event(kind, number) for kind in KINDS for number in (0, 1, 999_999)]

    assert len({item["event_id"] for item in events}) == len(events)
    assert len({item["gaid"] for item in events}) == len(events)
    assert {len(item["event_id"]) for item in events} == {30}
    assert {len(item["gaid"]) for item in events} == {30}


def test_clicks_carry_a_fingerprint_and_impressions_none():
    assert {"ip", "user_agent"} <= set(event("click", 7))
    assert not {"ip", "user_agent"} & set(event("impression", 7))


def test_estimate_ids_only_for_rest():
    per_event = {"click": 700.0, "impression": 500.0, "install": 600.0, "session": 150.0}
    maxima = {"touches": 10, "installs": 4, "dedup_entries": 20}

    assert estimate(per_event, maxima) == 10 * 700 + 4 * 600 + 6 * 150


def test_estimate_small_filter():
    per_event = {"click": 700.0, "impression": 500.0, "install": 600.0, "session": 150.0}

    assert estimate(per_event, {"touches": 10, "installs": 4, "dedup_entries": 5}) == 10 * 700 + 4 * 600
