"""The event generator: fresh ids per send, realistic funnels, and a consistent expected attribution.

An integration test compares the expected records with the real service's records. These
tests check the batch itself, because every expectation must follow from the events in it.
"""

from __future__ import annotations

import collections
import datetime

import msgspec
import pytest

from loadtest.generator import (
    CLICK_WINDOW_S,
    CTIT_MIN_S,
    FINGERPRINT_WINDOW_S,
    IMPRESSION_WINDOW_S,
    SEQUENCE_PLACEHOLDER,
    ZERO_DEVICE_ID,
    TemplatePool,
    build_template,
    encode_batch,
)

NOW = 1_800_000_000.0
DEVICE_FIELDS = ("gaid", "idfa", "idfv", "android_id")


def _template(platform: str = "android", **options):
    return build_template(f"app.{platform}", platform, 1000, seed=7, now=NOW, **options)


def _index(events: list[dict]) -> dict[str, tuple[int, dict]]:
    return {event["event_id"]: (position, event) for position, event in enumerate(events)}


def _seconds(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.datetime.fromisoformat(value).timestamp()


def _device_ids(event: dict) -> set[str]:
    return {event[name] for name in DEVICE_FIELDS if event.get(name) and event[name] != ZERO_DEVICE_ID}


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_batch_has_requested_size(platform):
    template = _template(platform)
    events, _ = template.materialize(1)

    assert template.event_count == 1000
    assert len(events) == 1000
    assert {event["app_id"] for event in events} == {f"app.{platform}"}
    assert {event["platform"] for event in events} == {platform}


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_funnel_event_types_all_present(platform):
    events, expected = _template(platform).materialize(1)
    counts = collections.Counter(event["event_type"] for event in events)

    for event_type in ("impression", "click", "install", "session", "in_app"):
        assert counts[event_type] > 0, event_type
    assert counts["install"] == len(expected)
    assert counts["impression"] + counts["click"] > counts["install"]


def test_event_ids_unique_within_batch():
    events, _ = _template().materialize(3)
    ids = [event["event_id"] for event in events]

    assert len(set(ids)) == len(ids)


def test_render_replaces_every_placeholder():
    template = _template()
    body = template.render(0xABCDEF)

    assert SEQUENCE_PLACEHOLDER in template.body
    assert SEQUENCE_PLACEHOLDER not in body
    assert b"00abcdef" in body


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_sends_have_fresh_ids_and_devices(platform):
    template = _template(platform)
    first, _ = template.materialize(1)
    second, _ = template.materialize(2)

    assert not {event["event_id"] for event in first} & {event["event_id"] for event in second}
    first_clicks = {event["click_id"] for event in first if "click_id" in event}
    second_clicks = {event["click_id"] for event in second if "click_id" in event}
    assert first_clicks
    assert not first_clicks & second_clicks
    first_devices = set().union(*(_device_ids(event) for event in first))
    second_devices = set().union(*(_device_ids(event) for event in second))
    assert first_devices
    assert not first_devices & second_devices
    assert not {event["user_agent"] for event in first if "user_agent" in event} & {
        event["user_agent"] for event in second if "user_agent" in event
    }


def test_templates_differ_by_token():
    first = build_template("app", "android", 200)
    second = build_template("app", "android", 200)
    first_events, _ = first.materialize(1)
    second_events, _ = second.materialize(1)

    assert first.token != second.token
    assert not {event["event_id"] for event in first_events} & {event["event_id"] for event in second_events}


def test_seed_makes_template_reproducible():
    assert _template().body == _template().body
    assert _template().body != build_template("app.android", "android", 1000, seed=8, now=NOW).body


def test_no_event_ahead_of_now():
    events, _ = _template().materialize(1)

    assert max(_seconds(event["event_time"]) for event in events) <= NOW


def test_follow_ups_never_ahead_of_now():
    # Seed 123 builds a funnel whose last follow-up would lie 880 s after `now` without the cap.
    events, _ = build_template("app.android", "android", 1000, seed=123, now=NOW).materialize(1)

    assert max(_seconds(event["event_time"]) for event in events) <= NOW


@pytest.mark.parametrize("batch_format", ["array", "object", "ndjson"])
def test_batch_formats_hold_same_events(batch_format):
    array_events, _ = _template().materialize(5)
    template = _template(batch_format=batch_format)
    events, _ = template.materialize(5)

    assert events == array_events
    expected_type = "application/x-ndjson" if batch_format == "ndjson" else "application/json"
    assert template.content_type == expected_type


def test_encode_batch_formats():
    events = [{"event_id": "e1"}, {"event_id": "e2"}]

    assert msgspec.json.decode(encode_batch(events, "array")) == events
    assert msgspec.json.decode(encode_batch(events, "object")) == {"events": events}
    assert encode_batch(events, "ndjson") == b'{"event_id":"e1"}\n{"event_id":"e2"}\n'
    with pytest.raises(ValueError, match="batch_format"):
        encode_batch(events, "xml")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("app", "web", 10), "platform"),
        (("app", "android", 0), "batch_size"),
    ],
)
def test_invalid_arguments_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_template(*arguments)


def test_invalid_stray_share_rejected():
    with pytest.raises(ValueError, match="stray_share"):
        build_template("app", "android", 10, stray_share=1.0)


def test_small_batch_is_only_strays():
    template = build_template("app", "ios", 5, seed=1, now=NOW)
    events, expected = template.materialize(1)

    assert len(events) == 5
    assert expected == []
    assert {event["event_type"] for event in events} <= {"impression", "click"}


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_expected_touches_precede_install(platform):
    events, expected = _template(platform).materialize(4)
    by_id = _index(events)

    for record in expected:
        install_position, install = by_id[record.install_event_id]
        assert install["event_type"] == "install"
        touch_ids = [record.touch_event_id] if record.touch_event_id else []
        touch_ids += [touch for touch, _ in record.rejected_touches]
        for touch_id in touch_ids:
            touch_position, touch = by_id[touch_id]
            assert touch_position < install_position, record.scenario
            assert _seconds(touch["event_time"]) <= _seconds(install["event_time"]), record.scenario


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_expected_attribution_matches_its_touch(platform):
    events, expected = _template(platform).materialize(4)
    by_id = _index(events)
    windows = {"click": CLICK_WINDOW_S, "impression": IMPRESSION_WINDOW_S}

    for record in expected:
        if record.status == "organic":
            assert record.touch_event_id is None
            continue
        _, install = by_id[record.install_event_id]
        _, touch = by_id[record.touch_event_id]
        assert touch["network"] == record.network, record.scenario
        assert touch["campaign"] == record.campaign, record.scenario
        assert touch["event_type"] == record.touch_type, record.scenario
        if record.status == "reinstall":
            continue
        age = _seconds(install["event_time"]) - _seconds(touch["event_time"])
        if record.match_type == "referrer":
            assert touch["click_id"] == install["referrer_click_id"]
        elif record.match_type == "device_id":
            assert _device_ids(touch) & _device_ids(install), record.scenario
            assert age <= windows[record.touch_type], record.scenario
        else:
            assert record.match_type == "fingerprint"
            assert (touch["ip"], touch["user_agent"]) == (install["ip"], install["user_agent"])
            assert age <= FINGERPRINT_WINDOW_S
            assert not _device_ids(touch) & _device_ids(install)
            if platform == "ios":
                assert install["att_status"] == "authorized"


def test_rejected_touches_break_injection_rules():
    found = collections.Counter()
    for platform in ("android", "ios"):
        events, expected = _template(platform).materialize(1)
        by_id = _index(events)
        for record in expected:
            _, install = by_id[record.install_event_id]
            install_time = _seconds(install["event_time"])
            for touch_id, reason in record.rejected_touches:
                _, touch = by_id[touch_id]
                found[reason] += 1
                if reason == "ctit_below_minimum":
                    assert install_time - _seconds(touch["event_time"]) < CTIT_MIN_S
                else:
                    assert reason == "click_after_install_begin"
                    assert _seconds(touch["event_time"]) > _seconds(install["install_begin_time"])

    assert found["ctit_below_minimum"] > 0
    assert found["click_after_install_begin"] > 0


def test_ios_idfa_only_with_consent():
    events, expected = _template("ios").materialize(1)

    for event in events:
        if event["event_type"] == "install" and "idfa" in event:
            assert event["att_status"] == "authorized"
    denied = [record for record in expected if record.scenario == "ios_denied_fingerprint"]
    assert denied
    assert {record.status for record in denied} == {"organic"}


def test_scenarios_cover_every_outcome():
    scenarios = collections.Counter()
    statuses = collections.Counter()
    for platform in ("android", "ios"):
        for seed in (1, 2, 3):
            template = build_template("app", platform, 1000, seed=seed, now=NOW)
            scenarios.update(record.scenario for record in template.expected)
            statuses.update(record.status for record in template.expected)

    assert set(statuses) == {"attributed", "organic", "reinstall"}
    for scenario in ("referrer", "device_click", "fingerprint", "view_through", "click_injection",
                     "click_after_install_begin", "expired_click", "organic", "reinstall",
                     "ios_denied_fingerprint", "latest_device_click_wins"):
        assert scenarios[scenario] > 0, scenario


def test_reinstall_keeps_first_attribution():
    _, expected = _template().materialize(1)
    reinstalls = [record for record in expected if record.status == "reinstall"]
    firsts = {record.touch_event_id: record for record in expected if record.scenario == "reinstall_first"}

    assert reinstalls
    assert len(reinstalls) == len(firsts)
    for record in reinstalls:
        first = firsts[record.touch_event_id]
        assert first.status == "attributed"
        assert first.network == record.network
        assert first.campaign == record.campaign


def test_template_pool_cycles_with_fresh_sequences():
    templates = [build_template("app", "android", 50, seed=seed, now=NOW) for seed in (1, 2)]
    pool = TemplatePool(templates)

    sends = [pool.next_body() for _ in range(4)]

    assert [template for template, _, _ in sends] == [templates[0], templates[1], templates[0], templates[1]]
    assert [sequence for _, sequence, _ in sends] == [0, 1, 2, 3]
    assert sends[0][2] == templates[0].render(0)
    assert sends[2][2] != sends[0][2]


def test_template_pool_needs_templates():
    with pytest.raises(ValueError, match="at least one template"):
        TemplatePool([])
