"""The attribution rules, applied through the embedded store.

Windows are checked at their edge: a touch exactly one window before the
install is a candidate, one second more is not.
"""

from __future__ import annotations

import random

import pytest

from ingestion.model import AppSettings, record_to_json
from ingestion.store.base import RecordQuery
from tests.unit.ingestion.helpers import T, event, register

DEFAULTS = AppSettings(app_id="defaults", platform="android")
CUSTOM = {
    "click_window_s": 3600,
    "impression_window_s": 600,
    "fingerprint_window_s": 1800,
    "reinstall_window_s": 7200,
    "ctit_min_s": 30,
}

# tier -> (window setting, touch fields, install fields, touch_type, match_type)
TIERS = {
    "referrer": (
        "click_window_s",
        {"event_type": "click", "click_id": "ck-1"},
        {"referrer_click_id": "ck-1"},
        "click",
        "referrer",
    ),
    "device_id click": ("click_window_s", {"event_type": "click", "gaid": "g-1"}, {"gaid": "g-1"}, "click", "device_id"),
    "fingerprint": (
        "fingerprint_window_s",
        {"event_type": "click", "ip": "203.0.113.7", "user_agent": "ua/1"},
        {"ip": "203.0.113.7", "user_agent": "ua/1"},
        "click",
        "fingerprint",
    ),
    "device_id impression": (
        "impression_window_s",
        {"event_type": "impression", "gaid": "g-1"},
        {"gaid": "g-1"},
        "impression",
        "device_id",
    ),
}


def touch_and_install(tier: str, delta: float) -> tuple[dict, dict]:
    _, touch_fields, install_fields, _, _ = TIERS[tier]
    fields = dict(touch_fields)
    touch = event(fields.pop("event_type"), "touch", T - delta, **fields)
    install = event("install", "install", T, **install_fields)
    return touch, install


@pytest.mark.parametrize("windows", [{}, CUSTOM], ids=["default windows", "custom windows"])
@pytest.mark.parametrize("tier", list(TIERS))
async def test_touch_at_window_edge_attributed(make_harness, tier, windows):
    harness = await make_harness(**windows)
    window_name, _, _, touch_type, match_type = TIERS[tier]
    window = getattr(harness.settings, window_name)

    await harness.send(*touch_and_install(tier, window))
    record = await harness.record("install")

    assert record["status"] == "attributed"
    assert record["touch_event_id"] == "touch"
    assert record["touch_type"] == touch_type
    assert record["match_type"] == match_type
    assert record["network"] == "net-touch"
    assert record["ctit_seconds"] == window


@pytest.mark.parametrize("windows", [{}, CUSTOM], ids=["default windows", "custom windows"])
@pytest.mark.parametrize("tier", list(TIERS))
async def test_touch_past_window_edge_organic(make_harness, tier, windows):
    harness = await make_harness(**windows)
    window = getattr(harness.settings, TIERS[tier][0])

    await harness.send(*touch_and_install(tier, window + 1))
    record = await harness.record("install")

    assert record["status"] == "organic"
    assert record["touch_event_id"] is None
    assert record["network"] is None
    assert record["rejected_touches"] == []


@pytest.mark.parametrize("tier", list(TIERS))
async def test_touch_after_install_not_candidate(harness, tier):
    touch, install = touch_and_install(tier, -1)

    await harness.send(touch, install)
    record = await harness.record("install")

    assert record["status"] == "organic"
    assert record["rejected_touches"] == []


async def test_default_windows_match_documented_values():
    assert DEFAULTS.click_window_s == 7 * 86400
    assert DEFAULTS.impression_window_s == 86400
    assert DEFAULTS.fingerprint_window_s == 86400
    assert DEFAULTS.reinstall_window_s == 90 * 86400
    assert DEFAULTS.ctit_min_s == 10


# Tier order ------------------------------------------------------------------

# Lower tiers get more recent touches, so a test passes only if tier beats recency.
ALL_TOUCHES = {
    "referrer": event("click", "referrer", T - 400, click_id="ck-9", gaid="other-device"),
    "device_id click": event("click", "device", T - 300, gaid="g-1", ip="198.51.100.1", user_agent="ua/other"),
    "fingerprint": event("click", "fingerprint", T - 200, ip="203.0.113.7", user_agent="ua/1"),
    "device_id impression": event("impression", "impression", T - 100, gaid="g-1"),
}
FULL_INSTALL = event("install", "install", T, referrer_click_id="ck-9", gaid="g-1", ip="203.0.113.7", user_agent="ua/1")


@pytest.mark.parametrize(
    ("present", "winner", "match_type"),
    [
        (["referrer", "device_id click", "fingerprint", "device_id impression"], "referrer", "referrer"),
        (["device_id click", "fingerprint", "device_id impression"], "device", "device_id"),
        (["fingerprint", "device_id impression"], "fingerprint", "fingerprint"),
        (["device_id impression"], "impression", "device_id"),
        ([], None, None),
    ],
    ids=["referrer first", "device click second", "fingerprint third", "impression fourth", "organic last"],
)
async def test_tier_order(harness, present, winner, match_type):
    await harness.send(*(ALL_TOUCHES[name] for name in present), FULL_INSTALL)
    record = await harness.record("install")

    assert record["touch_event_id"] == winner
    assert record["match_type"] == match_type
    assert record["status"] == ("organic" if winner is None else "attributed")


async def test_shared_device_key_of_any_kind_matches(harness):
    await harness.send(
        event("click", "by-android-id", T - 100, android_id="aid-1"),
        event("install", "install", T, gaid="g-new", android_id="aid-1"),
    )

    record = await harness.record("install")

    assert record["touch_event_id"] == "by-android-id"
    assert record["match_type"] == "device_id"


# Latest touch and ties -------------------------------------------------------


async def test_latest_touch_wins_by_event_time(harness):
    # The later click arrives first: event time decides, not arrival.
    await harness.send(
        event("click", "later", T - 200, gaid="g-1"),
        event("click", "earlier", T - 300, gaid="g-1"),
        event("install", "install", T, gaid="g-1"),
    )

    assert (await harness.record("install"))["touch_event_id"] == "later"


@pytest.mark.parametrize("order", [("first", "second"), ("second", "first")])
async def test_tie_goes_to_last_arrival(harness, order):
    await harness.send(*(event("click", name, T - 200, gaid="g-1") for name in order))
    await harness.send(event("install", "install", T, gaid="g-1"))

    assert (await harness.record("install"))["touch_event_id"] == order[-1]


async def test_tie_across_batches_goes_to_last_arrival(harness):
    await harness.send(event("click", "first", T - 200, ip="203.0.113.7", user_agent="ua/1"))
    await harness.send(event("click", "second", T - 200, ip="203.0.113.7", user_agent="ua/1"))
    await harness.send(event("install", "install", T, ip="203.0.113.7", user_agent="ua/1"))

    assert (await harness.record("install"))["touch_event_id"] == "second"


async def test_latest_impression_wins(harness):
    await harness.send(
        event("impression", "older", T - 500, gaid="g-1"),
        event("impression", "newer", T - 50, gaid="g-1"),
        event("install", "install", T, gaid="g-1"),
    )

    record = await harness.record("install")

    assert record["touch_event_id"] == "newer"
    assert record["touch_type"] == "impression"


# ATT consent -----------------------------------------------------------------

FINGERPRINT = {"ip": "2001:db8::7", "user_agent": "Mozilla/5.0 (iPhone)"}


@pytest.mark.parametrize("att_status", [None, "denied", "restricted", "not_determined"])
async def test_ios_without_consent_no_fingerprint(make_harness, att_status):
    harness = await make_harness(platform="ios")
    install_fields = dict(FINGERPRINT) if att_status is None else {**FINGERPRINT, "att_status": att_status}

    await harness.send(event("click", "click", T - 100, **FINGERPRINT), event("install", "install", T, **install_fields))
    record = await harness.record("install")

    assert record["status"] == "organic"
    assert record["touch_event_id"] is None


async def test_ios_authorized_fingerprint_match(make_harness):
    harness = await make_harness(platform="ios")

    await harness.send(
        event("click", "click", T - 100, **FINGERPRINT),
        event("install", "install", T, att_status="authorized", **FINGERPRINT),
    )
    record = await harness.record("install")

    assert record["match_type"] == "fingerprint"
    assert record["touch_event_id"] == "click"


async def test_ios_event_platform_overrides_app_platform(harness):
    # The app is android, but an install that says it is ios needs consent.
    await harness.send(
        event("click", "click", T - 100, **FINGERPRINT),
        event("install", "install", T, platform="ios", **FINGERPRINT),
    )

    assert (await harness.record("install"))["status"] == "organic"


@pytest.mark.parametrize("platform", ["android", "web"])
async def test_non_ios_fingerprint_needs_no_consent(make_harness, platform):
    harness = await make_harness(platform=platform)

    await harness.send(event("click", "click", T - 100, **FINGERPRINT), event("install", "install", T, **FINGERPRINT))

    assert (await harness.record("install"))["match_type"] == "fingerprint"


async def test_ios_device_id_match_without_consent(make_harness):
    harness = await make_harness(platform="ios")

    await harness.send(
        event("click", "click", T - 100, idfv="v-1"),
        event("install", "install", T, idfv="v-1", att_status="denied"),
    )

    assert (await harness.record("install"))["match_type"] == "device_id"


# Click injection -------------------------------------------------------------


async def test_click_below_ctit_rejected_next_wins(harness):
    await harness.send(
        event("click", "honest", T - 300, gaid="g-1"),
        event("click", "injected", T - 5, gaid="g-1"),
        event("install", "install", T, gaid="g-1"),
    )
    record = await harness.record("install")

    assert record["status"] == "attributed"
    assert record["touch_event_id"] == "honest"
    assert record["ctit_seconds"] == 300
    assert record["rejected_touches"] == [{"touch_event_id": "injected", "reason": "ctit_below_minimum"}]


@pytest.mark.parametrize(("delta", "rejected"), [(10, False), (9, True), (9.999, True)])
async def test_ctit_minimum_edge(harness, delta, rejected):
    await harness.send(event("click", "click", T - delta, gaid="g-1"), event("install", "install", T, gaid="g-1"))
    record = await harness.record("install")

    if rejected:
        assert record["status"] == "organic"
        assert record["rejected_touches"] == [{"touch_event_id": "click", "reason": "ctit_below_minimum"}]
    else:
        assert record["status"] == "attributed"
        assert record["rejected_touches"] == []


async def test_ctit_minimum_per_app(make_harness):
    harness = await make_harness(ctit_min_s=0)

    await harness.send(event("click", "click", T, gaid="g-1"), event("install", "install", T, gaid="g-1"))

    assert (await harness.record("install"))["touch_event_id"] == "click"


async def test_click_after_install_begin_rejected(harness):
    begin = T - 60
    await harness.send(
        event("click", "honest", T - 120, gaid="g-1"),
        event("click", "injected", T - 30, gaid="g-1"),
        event("install", "install", T, gaid="g-1", install_begin_time=begin),
    )
    record = await harness.record("install")

    assert record["touch_event_id"] == "honest"
    assert record["rejected_touches"] == [{"touch_event_id": "injected", "reason": "click_after_install_begin"}]


async def test_click_at_install_begin_accepted(harness):
    begin = T - 60
    await harness.send(
        event("click", "at-begin", begin, gaid="g-1"),
        event("install", "install", T, gaid="g-1", install_begin_time=begin),
    )
    record = await harness.record("install")

    assert record["touch_event_id"] == "at-begin"
    assert record["rejected_touches"] == []


async def test_install_begin_as_rfc3339(harness):
    await harness.send(
        event("click", "injected", T - 30, gaid="g-1"),
        event("install", "install", T, gaid="g-1", install_begin_time="2023-11-14T22:12:20Z"),
    )
    record = await harness.record("install")

    # 2023-11-14T22:12:20Z is T - 100, so the click came 70 s after the install began.
    assert record["rejected_touches"] == [{"touch_event_id": "injected", "reason": "click_after_install_begin"}]


async def test_rejected_referrer_falls_to_device_tier(harness):
    await harness.send(
        event("click", "referrer", T - 2, click_id="ck-1"),
        event("click", "device", T - 100, gaid="g-1"),
        event("install", "install", T, gaid="g-1", referrer_click_id="ck-1"),
    )
    record = await harness.record("install")

    assert record["touch_event_id"] == "device"
    assert record["match_type"] == "device_id"
    assert record["rejected_touches"] == [{"touch_event_id": "referrer", "reason": "ctit_below_minimum"}]


async def test_rejected_click_falls_to_impression(harness):
    await harness.send(
        event("impression", "impression", T - 50, gaid="g-1"),
        event("click", "injected", T - 3, gaid="g-1"),
        event("install", "install", T, gaid="g-1"),
    )
    record = await harness.record("install")

    assert record["touch_event_id"] == "impression"
    assert record["touch_type"] == "impression"
    assert record["rejected_touches"] == [{"touch_event_id": "injected", "reason": "ctit_below_minimum"}]


async def test_click_in_two_tiers_rejected_once(harness):
    # The same click matches by referrer, device id and fingerprint.
    await harness.send(
        event("click", "injected", T - 1, click_id="ck-1", gaid="g-1", **FINGERPRINT),
        event("install", "install", T, referrer_click_id="ck-1", gaid="g-1", **FINGERPRINT),
    )
    record = await harness.record("install")

    assert record["status"] == "organic"
    assert record["rejected_touches"] == [{"touch_event_id": "injected", "reason": "ctit_below_minimum"}]


async def test_every_click_rejected_organic(harness):
    await harness.send(
        event("click", "first", T - 4, gaid="g-1"),
        event("click", "second", T - 2, gaid="g-1"),
        event("install", "install", T, gaid="g-1"),
    )
    record = await harness.record("install")

    assert record["status"] == "organic"
    assert record["rejected_touches"] == [
        {"touch_event_id": "second", "reason": "ctit_below_minimum"},
        {"touch_event_id": "first", "reason": "ctit_below_minimum"},
    ]


# Reinstall -------------------------------------------------------------------


@pytest.mark.parametrize("windows", [{}, CUSTOM], ids=["default windows", "custom windows"])
async def test_reinstall_at_window_edge_keeps_first(make_harness, windows):
    harness = await make_harness(**windows)
    window = harness.settings.reinstall_window_s
    await harness.send(event("click", "click", T - 100, gaid="g-1", campaign="spring"))
    await harness.send(event("install", "first", T, gaid="g-1"))

    await harness.send(
        event("click", "newer", T + window - 100, gaid="g-1", network="other"),
        event("install", "again", T + window, gaid="g-1"),
    )
    first = await harness.record("first")
    again = await harness.record("again")

    assert again["status"] == "reinstall"
    assert again["network"] == "net-click"
    assert again["campaign"] == "spring"
    assert again["touch_event_id"] == "click"
    assert again["match_type"] == first["match_type"] == "device_id"
    assert again["touch_time"] == first["touch_time"]


@pytest.mark.parametrize("windows", [{}, CUSTOM], ids=["default windows", "custom windows"])
async def test_install_past_reinstall_window_is_new(make_harness, windows):
    harness = await make_harness(**windows)
    window = harness.settings.reinstall_window_s
    await harness.send(event("click", "click", T - 100, gaid="g-1"), event("install", "first", T, gaid="g-1"))

    await harness.send(
        event("click", "newer", T + window + 1 - 100, gaid="g-1", network="other"),
        event("install", "again", T + window + 1, gaid="g-1"),
    )
    again = await harness.record("again")

    assert again["status"] == "attributed"
    assert again["network"] == "other"
    assert again["touch_event_id"] == "newer"


async def test_reinstall_after_window_counts_from_new_install(make_harness):
    harness = await make_harness(**CUSTOM)
    window = harness.settings.reinstall_window_s
    await harness.send(event("install", "first", T, gaid="g-1"))
    await harness.send(event("install", "second", T + window + 1, gaid="g-1"))

    await harness.send(event("install", "third", T + window + 2, gaid="g-1"))

    assert (await harness.record("second"))["status"] == "organic"
    assert (await harness.record("third"))["status"] == "reinstall"


async def test_reinstall_by_any_shared_identifier(harness):
    await harness.send(
        event("click", "click", T - 100, idfa="A-1", idfv="V-1"),
        event("install", "first", T, idfa="A-1", idfv="V-1"),
    )

    await harness.send(event("install", "again", T + 3600, idfa="A-1", idfv="V-2"))
    again = await harness.record("again")

    assert again["status"] == "reinstall"
    assert again["touch_event_id"] == "click"


async def test_reinstall_of_organic_stays_organic(harness):
    await harness.send(event("install", "first", T, gaid="g-1"))
    await harness.send(event("click", "late-click", T + 100, gaid="g-1"), event("install", "again", T + 200, gaid="g-1"))

    again = await harness.record("again")

    assert again["status"] == "reinstall"
    assert again["network"] is None
    assert again["touch_event_id"] is None


async def test_install_without_device_ids_never_reinstall(harness):
    await harness.send(event("install", "first", T, **FINGERPRINT), event("install", "again", T + 60, **FINGERPRINT))

    assert (await harness.record("again"))["status"] == "organic"


# All-zero advertising ids ----------------------------------------------------

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("field", ["idfa", "gaid"])
async def test_zero_advertising_id_matches_nothing(harness, field):
    await harness.send(
        event("click", "click", T - 100, **{field: ZERO}),
        event("install", "first", T, **{field: ZERO}),
        event("install", "second", T + 10, **{field: ZERO}),
    )

    assert (await harness.record("first"))["status"] == "organic"
    assert (await harness.record("second"))["status"] == "organic"


async def test_zero_idfa_other_ids_still_match(make_harness):
    harness = await make_harness(platform="ios")

    await harness.send(
        event("click", "click", T - 100, idfa=ZERO, idfv="V-1"),
        event("install", "install", T, idfa=ZERO, idfv="V-1"),
    )

    assert (await harness.record("install"))["touch_event_id"] == "click"


# Session and in-app carry-over -----------------------------------------------


async def test_session_and_in_app_carry_network(harness):
    await harness.send(
        event("click", "click", T - 100, gaid="g-1", network="adnet", campaign="spring"),
        event("install", "install", T, gaid="g-1"),
        event("install", "organic-install", T, gaid="g-2"),
    )

    outcome = await harness.send(
        event("session", "s-1", T + 10, gaid="g-1"),
        event("in_app", "buy", T + 20, gaid="g-1", event_name="purchase", revenue="4.99", currency="USD"),
        event("in_app", "refund", T + 30, gaid="g-1", event_name="refund", revenue="-1.99", currency="USD"),
        event("in_app", "organic-buy", T + 40, gaid="g-2", event_name="purchase", revenue="0.1", currency="USD"),
        event("in_app", "stranger-buy", T + 40, gaid="g-3", event_name="purchase", revenue="0.2", currency="USD"),
        event("in_app", "no-revenue", T + 50, gaid="g-1", event_name="level_up"),
    )
    lines = await harness.store.revenue(harness.settings.app_id)
    revenue = {(line.network, line.campaign, line.currency): (line.amount, line.events) for line in lines}

    assert outcome.carried == [
        ("adnet", "session"),
        ("adnet", "in_app"),
        ("adnet", "in_app"),
        (None, "in_app"),
        (None, "in_app"),
        ("adnet", "in_app"),
    ]
    assert revenue == {("adnet", "spring", "USD"): ("3.00", 2), (None, None, "USD"): ("0.3", 2)}


async def test_in_app_after_reinstall_carries_first_network(harness):
    await harness.send(
        event("click", "click", T - 100, gaid="g-1", network="first-net"),
        event("install", "first", T, gaid="g-1"),
        event("click", "later-click", T + 500, gaid="g-1", network="later-net"),
        event("install", "again", T + 1000, gaid="g-1"),
    )

    outcome = await harness.send(event("session", "session", T + 2000, gaid="g-1"))

    assert outcome.carried == [("first-net", "session")]


async def test_revenue_kept_exactly(harness):
    await harness.send(*(
        event("in_app", f"buy-{index}", T + index, gaid="g-1", event_name="purchase", revenue="0.1", currency="EUR")
        for index in range(10)
    ))

    [line] = await harness.store.revenue(harness.settings.app_id)

    assert line.amount == "1.0"
    assert line.events == 10


# Duplicates and determinism ---------------------------------------------------


async def test_duplicate_in_batch_and_across_batches(harness):
    first = await harness.send(
        event("click", "click", T - 100, gaid="g-1"),
        event("install", "install", T, gaid="g-1"),
        event("install", "install", T + 5, gaid="g-2"),
    )
    second = await harness.send(event("install", "install", T + 9, gaid="g-3"), event("click", "fresh", T, gaid="g-1"))

    assert first.duplicate_flags == [False, False, True]
    assert second.duplicate_flags == [True, False]
    assert [record.install_event_id for record in first.records] == ["install"]
    assert second.records == []
    assert (await harness.record("install"))["touch_event_id"] == "click"


async def test_same_event_id_in_two_apps(make_harness):
    harness = await make_harness()
    other = AppSettings(app_id="other.app", platform="android")
    await register(harness.store, other)

    first = await harness.send(event("install", "install", T, gaid="g-1"))
    second = await harness.send(event("install", "install", T, gaid="g-1"), settings=other)

    assert first.duplicate_flags == [False]
    assert second.duplicate_flags == [False]
    assert (await harness.record("install", app_id="other.app"))["status"] == "organic"


async def test_touches_of_other_app_not_candidates(make_harness):
    harness = await make_harness()
    other = AppSettings(app_id="other.app", platform="android")
    await register(harness.store, other)
    await harness.send(event("click", "click", T - 100, gaid="g-1"), settings=other)

    await harness.send(event("install", "install", T, gaid="g-1"))

    assert (await harness.record("install"))["status"] == "organic"


def random_traffic(seed: int, count: int) -> list[dict]:
    """Return touches, installs and in-app events over few devices, so rules interact."""
    rng = random.Random(seed)
    documents = []
    for index in range(count):
        kind = rng.choice(["click", "click", "impression", "install", "session", "in_app"])
        fields = {}
        if rng.random() < 0.7:
            fields[rng.choice(["gaid", "android_id", "idfa"])] = f"device-{rng.randrange(6)}"
        if rng.random() < 0.5:
            fields["ip"] = f"192.0.2.{rng.randrange(4)}"
            fields["user_agent"] = f"ua/{rng.randrange(2)}"
        if kind == "click" and rng.random() < 0.3:
            fields["click_id"] = f"ck-{rng.randrange(6)}"
        if kind == "install":
            if rng.random() < 0.3:
                fields["referrer_click_id"] = f"ck-{rng.randrange(6)}"
            if rng.random() < 0.3:
                fields["install_begin_time"] = T + index * 30 - rng.randrange(120)
        if kind in ("click", "impression"):
            fields["network"] = f"net-{rng.randrange(5)}"
        if kind == "in_app":
            fields.update(event_name="purchase", revenue=f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}", currency="USD")
        # Times mostly rise, with some arriving out of order and some equal.
        event_time = T + index * 30 - rng.choice([0, 0, 0, 15, 45, 600])
        event_id = f"e-{rng.randrange(count)}" if rng.random() < 0.05 else f"e-{index}"
        documents.append(event(kind, event_id, event_time, **fields))
    return documents


async def records_and_revenue(harness) -> tuple[list[dict], list]:
    records, _ = await harness.store.list_records(RecordQuery(app_id=harness.settings.app_id, limit=100_000))
    return [record_to_json(record) for record in records], await harness.store.revenue(harness.settings.app_id)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_same_events_same_records(make_harness, seed):
    documents = random_traffic(seed, 600)
    whole = await make_harness(ctit_min_s=120, fingerprint_window_s=3600, impression_window_s=1800)
    split = await make_harness(ctit_min_s=120, fingerprint_window_s=3600, impression_window_s=1800)

    await whole.send(*documents)
    for start in range(0, len(documents), 7):
        await split.send(*documents[start : start + 7])
    whole_records, whole_revenue = await records_and_revenue(whole)
    split_records, split_revenue = await records_and_revenue(split)

    assert len(whole_records) > 50
    assert {record["status"] for record in whole_records} == {"attributed", "organic", "reinstall"}
    assert {record["match_type"] for record in whole_records} >= {"referrer", "device_id", "fingerprint"}
    assert whole_records == split_records
    assert whole_revenue == split_revenue


async def test_reinstall_links_new_identifier(harness):
    await harness.send(
        event("click", "click", T - 100, gaid="g-1", network="adnet"),
        event("install", "first", T, gaid="g-1"),
        event("install", "second", T + 900, gaid="g-1", idfv="v-new"),
    )

    await harness.send(
        event("install", "third", T + 1900, idfv="V-NEW"),
        event("in_app", "purchase", T + 2000, idfv="v-new", event_name="buy", revenue="2.50", currency="USD"),
    )
    third = await harness.record("third")
    [line] = await harness.store.revenue(harness.settings.app_id)

    assert third["status"] == "reinstall"
    assert third["touch_event_id"] == "click"
    assert line.network == "adnet"
    assert line.amount == "2.50"


async def test_reinstall_keeps_linked_identifier_of_other_install(harness):
    await harness.send(
        event("click", "click-a", T - 100, gaid="g-a", network="net-a"),
        event("install", "install-a", T, gaid="g-a"),
        event("click", "click-b", T + 50, idfv="v-b", network="net-b"),
        event("install", "install-b", T + 100, idfv="v-b"),
        event("install", "reinstall", T + 900, gaid="g-a", idfv="v-b"),
    )

    await harness.send(event("install", "later", T + 1000, idfv="v-b"))

    assert (await harness.record("reinstall"))["touch_event_id"] == "click-a"
    assert (await harness.record("later"))["touch_event_id"] == "click-b"


# Late installs, sent after an event far later in event time. A click stays matchable for its
# longer window (7 days) plus the late-arrival allowance (1 day), an install for the reinstall
# window (90 days) plus the allowance.
CLICK_HORIZON = 8 * 86400
INSTALL_HORIZON = 91 * 86400
PAST_HORIZON = 2 * 3600


# (case id, events in arrival order, install to read, record field, expected value)
LATE_CASES = [
    (
        "click past horizon",
        [event("click", "click", T, gaid="g-1"), event("session", "later", T + CLICK_HORIZON + PAST_HORIZON),
         event("install", "install", T + 100, gaid="g-1")],
        "install", "status", "organic",
    ),
    (
        "click within horizon",
        [event("click", "click", T, gaid="g-1"), event("session", "later", T + CLICK_HORIZON - PAST_HORIZON),
         event("install", "install", T + 100, gaid="g-1")],
        "install", "touch_event_id", "click",
    ),
    (
        "install past horizon",
        [event("install", "first", T, gaid="g-1"), event("session", "later", T + INSTALL_HORIZON + PAST_HORIZON),
         event("install", "second", T + 100, gaid="g-1")],
        "second", "status", "organic",
    ),
]


@pytest.mark.parametrize("split", [False, True], ids=["one batch", "one batch per event"])
@pytest.mark.parametrize(("documents", "install", "field", "expected"), [case[1:] for case in LATE_CASES],
                         ids=[case[0] for case in LATE_CASES])
async def test_late_install_judged_alike_however_split(make_harness, documents, install, field, expected, split):
    harness = await make_harness()

    for batch in [[document] for document in documents] if split else [documents]:
        await harness.send(*batch)

    assert (await harness.record(install))[field] == expected
