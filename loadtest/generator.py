"""Event batches of realistic install funnels whose true attribution is known.

Each funnel is one device's journey: impressions and clicks from ad networks, maybe an install,
then sessions and in-app purchases. The generator builds every funnel from a named scenario
(a referrer click, a click injection, a reinstall, ...), so it also records the attribution
that the ingestion service must produce for each install under the default app settings
(click window 7 days, impression and fingerprint windows 1 day, reinstall window 90 days,
minimum click-to-install time 10 s). Touches always precede their install in batch order.
Every send of a batch repeats the same event times, so after the first send to an app its
watermark (latest event time) is near `now`, and each later send arrives behind it. Installs are
therefore at most 36 hours old: every touch that a funnel's expected record names then lies
inside its horizon at that watermark (a click up to 7.5 days back against 8 days, a winning
impression up to 39 hours back against 2 days, with the service's default one-day late-arrival
allowance), and the expected attribution holds for every send, not only the first.

A `BatchTemplate` is one encoded batch in which every event id, click id, device id and
user-agent build string carries the placeholder `SEQUENCE_PLACEHOLDER`. The template keeps the
body split at the placeholder, and `render(sequence)` joins the pieces with the sequence number
in one `bytes.join`, so each send gets fresh ids and fresh devices for the cost of one copy of
the body. For 1,000 events that took 26 us on one core of an Intel Xeon VM, against 230 us for
`bytes.replace`, which searches for each of the ~2,600 placeholders again. Templates of one process differ by a random token, so
(token, sequence) never repeats within 16**8 sends of a template.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

SEQUENCE_PLACEHOLDER = b"@@@@@@@@"
SEQUENCE_WIDTH = len(SEQUENCE_PLACEHOLDER)
SEQUENCE_LIMIT = 16**SEQUENCE_WIDTH
_PLACEHOLDER_TEXT = SEQUENCE_PLACEHOLDER.decode()

BATCH_FORMATS = ("array", "object", "ndjson")
CONTENT_TYPES = {
    "array": "application/json",
    "object": "application/json",
    "ndjson": "application/x-ndjson",
}

# Default app settings of the ingestion service, in seconds.
CLICK_WINDOW_S = 7 * 86400
IMPRESSION_WINDOW_S = 86400
FINGERPRINT_WINDOW_S = 86400
REINSTALL_WINDOW_S = 90 * 86400
CTIT_MIN_S = 10

ZERO_DEVICE_ID = "00000000-0000-0000-0000-000000000000"

NETWORKS = (
    "google_ads",
    "meta_ads",
    "tiktok_ads",
    "unity_ads",
    "applovin",
    "ironsource",
    "apple_search_ads",
    "snapchat_ads",
)
CAMPAIGNS = (
    "spring_sale",
    "retargeting_lapsed",
    "brand_awareness",
    "new_levels_launch",
    "weekend_boost",
)
ADGROUPS = ("broad_18_34", "lookalike_payers", "interest_puzzle", "geo_tier1")
CREATIVES = ("video_15s_a", "video_30s_b", "playable_demo", "static_banner_2", "carousel_3")
ANDROID_MODELS = ("Pixel 8", "SM-S918B", "SM-A546B", "2201117TG", "CPH2451")
IOS_VERSIONS = ("17_4", "17_5_1", "18_0", "18_1")
APP_EVENTS = ("tutorial_complete", "level_up", "add_to_cart", "sign_up")
PRICES = {"USD": ("0.99", "4.99", "9.99", "19.99", "49.99"), "EUR": ("1.09", "5.49", "10.99"), "JPY": ("160", "480", "1600")}


@dataclasses.dataclass(frozen=True)
class ExpectedAttribution:
    """The attribution record the ingestion service must produce for one install.

    String fields may contain `SEQUENCE_PLACEHOLDER` while they belong to a template.
    `rejected_touches` lists (touch event id, reason) for the matched clicks that the
    click-injection rule must reject; the reasons are the service's `ctit_below_minimum` and
    `click_after_install_begin`.
    """

    install_event_id: str
    scenario: str
    status: str
    network: str | None = None
    campaign: str | None = None
    touch_event_id: str | None = None
    touch_type: str | None = None
    match_type: str | None = None
    rejected_touches: tuple[tuple[str, str], ...] = ()

    def with_sequence(self, sequence_text: str) -> ExpectedAttribution:
        """Return a copy with the placeholder replaced by `sequence_text`."""

        def fill(value: str | None) -> str | None:
            return None if value is None else value.replace(_PLACEHOLDER_TEXT, sequence_text)

        return dataclasses.replace(
            self,
            install_event_id=fill(self.install_event_id),
            touch_event_id=fill(self.touch_event_id),
            rejected_touches=tuple((fill(touch), reason) for touch, reason in self.rejected_touches),
        )


@dataclasses.dataclass
class _Device:
    platform: str
    ip: str
    user_agent: str
    ad_id: str | None  # GAID on Android, IDFA on iOS; None when the user withheld it
    vendor_id: str  # Android ID on Android, IDFV on iOS
    att_status: str | None = None

    def identifiers(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        if self.platform == "android":
            ids["android_id"] = self.vendor_id
            if self.ad_id is not None:
                ids["gaid"] = self.ad_id
        else:
            ids["idfv"] = self.vendor_id
            if self.ad_id is not None:
                ids["idfa"] = self.ad_id
        return ids

    def ad_identifier(self) -> dict[str, str]:
        """Return the identifier an ad network reports on a touch: the advertising id only."""
        if self.ad_id is None:
            return {}
        return {"gaid" if self.platform == "android" else "idfa": self.ad_id}


class _FunnelBuilder:
    """Build the events of one batch and record the expected attribution of each install."""

    def __init__(self, rng: random.Random, app_id: str, platform: str, token: str, now: float) -> None:
        self.rng = rng
        self.app_id = app_id
        self.platform = platform
        self.token = token
        self.now = now
        self.events: list[tuple[float, int, dict[str, Any]]] = []
        self.expected: list[ExpectedAttribution] = []
        self._counter = itertools.count()

    # -- identities ------------------------------------------------------------------------

    def _next_number(self) -> int:
        return next(self._counter)

    def _event_id(self) -> str:
        return f"{self.token}-{_PLACEHOLDER_TEXT}-{self._next_number():05d}"

    def _uuid_with_sequence(self, upper: bool) -> str:
        # The placeholder is the first group of the UUID, so every send gets new device ids.
        rng = self.rng
        text = (
            f"{_PLACEHOLDER_TEXT}-{self.token[:4]}-4{rng.getrandbits(12):03x}-"
            f"{rng.choice('89ab')}{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}"
        )
        return text.upper() if upper else text

    def new_device(self, ad_id: str = "present", att_status: str | None = None) -> _Device:
        """Create a device whose identifiers are unique to this template and send.

        `ad_id` is "present", "zero" (the all-zero id of a user who limited ad tracking) or
        "absent". On iOS, an IDFA is only present when `att_status` is "authorized".
        """
        rng = self.rng
        number = self._next_number()
        ip = f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        build = f"{_PLACEHOLDER_TEXT}.{self.token}{number:05x}"
        if self.platform == "android":
            model = rng.choice(ANDROID_MODELS)
            user_agent = (
                f"Mozilla/5.0 (Linux; Android 14; {model} Build/AP2A.{build}; wv) "
                "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36"
            )
            # 20 hex digits rather than Android's 16, so that the sequence and the whole token fit.
            vendor_id = f"{_PLACEHOLDER_TEXT}{self.token}{number:04x}"
            device = _Device("android", ip, user_agent, None, vendor_id)
            if ad_id == "present":
                device.ad_id = self._uuid_with_sequence(upper=False)
            elif ad_id == "zero":
                device.ad_id = ZERO_DEVICE_ID
            return device

        version = rng.choice(IOS_VERSIONS)
        user_agent = (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {version} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Mobile/15E148 Build/{build}"
        )
        status = att_status or rng.choice(("authorized", "denied", "not_determined"))
        device = _Device("ios", ip, user_agent, None, self._uuid_with_sequence(upper=True), status)
        if ad_id == "present" and status == "authorized":
            device.ad_id = self._uuid_with_sequence(upper=True)
        elif ad_id == "zero":
            device.ad_id = ZERO_DEVICE_ID
        return device

    def new_source(self, exclude: str | None = None) -> tuple[str, str, str, str]:
        rng = self.rng
        network = rng.choice([name for name in NETWORKS if name != exclude])
        return network, rng.choice(CAMPAIGNS), rng.choice(ADGROUPS), rng.choice(CREATIVES)

    # -- events ----------------------------------------------------------------------------

    def _add(self, event_time: float, event: dict[str, Any]) -> dict[str, Any]:
        event["event_time"] = round(event_time, 3)
        self.events.append((event_time, len(self.events), event))
        return event

    def _base(self, event_type: str, device: _Device) -> dict[str, Any]:
        return {
            "event_id": self._event_id(),
            "app_id": self.app_id,
            "event_type": event_type,
            "platform": device.platform,
        }

    def touch(
        self,
        event_type: str,
        device: _Device,
        event_time: float,
        source: tuple[str, str, str, str] | None = None,
        with_ad_id: bool = True,
        with_click_id: bool = False,
    ) -> dict[str, Any]:
        """Add an impression or click as the ad network reports it."""
        network, campaign, adgroup, creative = source or self.new_source()
        event = self._base(event_type, device)
        if with_ad_id:
            event.update(device.ad_identifier())
        event["ip"] = device.ip
        event["user_agent"] = device.user_agent
        event["network"] = network
        event["campaign"] = campaign
        event["adgroup"] = adgroup
        event["creative"] = creative
        if event_type == "click" and with_click_id:
            event["click_id"] = f"clk-{self.token}-{_PLACEHOLDER_TEXT}-{self._next_number():05d}"
        return self._add(event_time, event)

    def install(
        self,
        device: _Device,
        event_time: float,
        referrer_click_id: str | None = None,
        install_begin_time: float | None = None,
    ) -> dict[str, Any]:
        event = self._base("install", device)
        event.update(device.identifiers())
        event["ip"] = device.ip
        event["user_agent"] = device.user_agent
        if device.att_status is not None:
            event["att_status"] = device.att_status
        if referrer_click_id is not None:
            event["referrer_click_id"] = referrer_click_id
        if install_begin_time is not None:
            moment = datetime.datetime.fromtimestamp(install_begin_time, tz=datetime.timezone.utc)
            event["install_begin_time"] = moment.isoformat(timespec="milliseconds")
        return self._add(event_time, event)

    def after_install(self, device: _Device, install_time: float) -> None:
        """Add the sessions and in-app events that follow an install, none of them after `now`.

        Follow-ups can reach 5.5 hours after their install and installs can be 3 hours old, but
        the service rejects events more than 300 s ahead of its clock.
        """
        rng = self.rng
        moment = install_time

        def add(event_time: float, event: dict[str, Any]) -> None:
            # Times only grow from here, so once one is past `now` all later ones are too.
            if event_time <= self.now:
                self._add(event_time, event)

        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            moment += rng.uniform(60, 3600)
            event = self._base("session", device)
            event.update(device.identifiers())
            add(moment, event)

        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            moment += rng.uniform(30, 1800)
            event = self._base("in_app", device)
            event.update(device.identifiers())
            event["event_name"] = rng.choice(APP_EVENTS)
            add(moment, event)

        if rng.random() < 0.3:
            currency = rng.choice(("USD", "USD", "USD", "EUR", "JPY"))
            price = rng.choice(PRICES[currency])
            moment += rng.uniform(30, 1800)
            event = self._base("in_app", device)
            event.update(device.identifiers())
            event["event_name"] = "purchase"
            event["revenue"] = price
            event["currency"] = currency
            event["params"] = {"sku": f"gems_{rng.choice((100, 500, 1200))}", "quantity": 1}
            add(moment, event)
            if rng.random() < 0.05:
                moment += rng.uniform(600, 3600)
                refund = self._base("in_app", device)
                refund.update(device.identifiers())
                refund["event_name"] = "refund"
                refund["revenue"] = f"-{price}"
                refund["currency"] = currency
                add(moment, refund)

    def expect(self, install: dict[str, Any], scenario: str, status: str, touch: dict[str, Any] | None = None,
               match_type: str | None = None, rejected: tuple[tuple[dict[str, Any], str], ...] = ()) -> None:
        self.expected.append(
            ExpectedAttribution(
                install_event_id=install["event_id"],
                scenario=scenario,
                status=status,
                network=None if touch is None else touch["network"],
                campaign=None if touch is None else touch["campaign"],
                touch_event_id=None if touch is None else touch["event_id"],
                touch_type=None if touch is None else touch["event_type"],
                match_type=match_type,
                rejected_touches=tuple((click["event_id"], reason) for click, reason in rejected),
            )
        )

    def sorted_events(self) -> list[dict[str, Any]]:
        return [event for _, _, event in sorted(self.events, key=lambda item: (item[0], item[1]))]


# -- scenarios -------------------------------------------------------------------------------
#
# Each scenario adds one funnel ending in an install at `install_time` and records the expected
# record. Touch times keep clear of window edges and of the minimum click-to-install time
# unless the scenario is about that edge.

def _referrer(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device()
    rng = b.rng
    for _ in range(rng.randint(0, 2)):
        b.touch("impression", device, t - rng.uniform(3600, 20 * 3600))
    click = b.touch("click", device, t - rng.uniform(600, 2 * 86400), with_click_id=True)
    begin = t - rng.uniform(CTIT_MIN_S + 5, 60)
    install = b.install(device, t, referrer_click_id=click["click_id"], install_begin_time=begin)
    b.expect(install, "referrer", "attributed", click, "referrer")
    b.after_install(device, t)


def _referrer_beats_later_device_click(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device()
    rng = b.rng
    click = b.touch("click", device, t - rng.uniform(4 * 3600, 86400), with_click_id=True)
    b.touch("click", device, t - rng.uniform(600, 3600), source=b.new_source(exclude=click["network"]))
    install = b.install(device, t, referrer_click_id=click["click_id"], install_begin_time=t - 30)
    b.expect(install, "referrer_beats_later_device_click", "attributed", click, "referrer")
    b.after_install(device, t)


def _device_click(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device(att_status="authorized")
    rng = b.rng
    for _ in range(rng.randint(0, 3)):
        b.touch("impression", device, t - rng.uniform(3600, 20 * 3600))
    clicks = [b.touch("click", device, t - rng.uniform(2 * 86400, 6 * 86400))]
    if rng.random() < 0.5:
        # A second, later click from another network: the latest click wins.
        clicks.append(b.touch("click", device, t - rng.uniform(120, 86400), source=b.new_source(clicks[0]["network"])))
    install = b.install(device, t)
    b.expect(install, "device_click" if len(clicks) == 1 else "latest_device_click_wins", "attributed",
             clicks[-1], "device_id")
    b.after_install(device, t)


def _click_beats_later_impression(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device(att_status="authorized")
    rng = b.rng
    click = b.touch("click", device, t - rng.uniform(5 * 3600, 86400))
    b.touch("impression", device, t - rng.uniform(600, 3600), source=b.new_source(click["network"]))
    install = b.install(device, t)
    b.expect(install, "click_beats_later_impression", "attributed", click, "device_id")
    b.after_install(device, t)


def _fingerprint(b: _FunnelBuilder, t: float) -> None:
    # Android with a zeroed GAID, or iOS with tracking authorized but the click carried no IDFA.
    rng = b.rng
    device = b.new_device(ad_id="zero") if b.platform == "android" else b.new_device(att_status="authorized")
    click = b.touch("click", device, t - rng.uniform(600, 20 * 3600), with_ad_id=False)
    install = b.install(device, t)
    b.expect(install, "fingerprint", "attributed", click, "fingerprint")
    b.after_install(device, t)


def _fingerprint_beats_impression(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device(att_status="authorized")
    rng = b.rng
    click = b.touch("click", device, t - rng.uniform(2 * 3600, 10 * 3600), with_ad_id=False)
    b.touch("impression", device, t - rng.uniform(300, 3600), source=b.new_source(click["network"]))
    install = b.install(device, t)
    b.expect(install, "fingerprint_beats_impression", "attributed", click, "fingerprint")
    b.after_install(device, t)


def _ios_denied_fingerprint(b: _FunnelBuilder, t: float) -> None:
    # Same IP and user agent as the click, but iOS without ATT consent never matches by fingerprint.
    device = b.new_device(att_status=b.rng.choice(("denied", "not_determined", "restricted")))
    b.touch("click", device, t - b.rng.uniform(600, 10 * 3600), with_ad_id=False)
    install = b.install(device, t)
    b.expect(install, "ios_denied_fingerprint", "organic")
    b.after_install(device, t)


def _view_through(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device(att_status="authorized")
    rng = b.rng
    impressions = [b.touch("impression", device, t - rng.uniform(6 * 3600, 20 * 3600))]
    impressions.append(b.touch("impression", device, t - rng.uniform(300, 3 * 3600), source=b.new_source()))
    install = b.install(device, t)
    b.expect(install, "view_through", "attributed", impressions[-1], "device_id")
    b.after_install(device, t)


def _click_injection(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device(att_status="authorized")
    rng = b.rng
    honest = b.touch("click", device, t - rng.uniform(3600, 2 * 86400))
    injected = b.touch("click", device, t - rng.uniform(1, CTIT_MIN_S - 3), source=b.new_source(honest["network"]))
    install = b.install(device, t)
    b.expect(install, "click_injection", "attributed", honest, "device_id",
             rejected=((injected, "ctit_below_minimum"),))
    b.after_install(device, t)


def _click_after_install_begin(b: _FunnelBuilder, t: float) -> None:
    # Android only: a click between the Play Store install start and the first open is injected.
    device = b.new_device()
    rng = b.rng
    begin = t - rng.uniform(120, 600)
    honest = b.touch("click", device, t - rng.uniform(3600, 2 * 86400))
    injected = b.touch("click", device, begin + rng.uniform(20, 60), source=b.new_source(honest["network"]))
    install = b.install(device, t, install_begin_time=begin)
    b.expect(install, "click_after_install_begin", "attributed", honest, "device_id",
             rejected=((injected, "click_after_install_begin"),))
    b.after_install(device, t)


def _expired_click(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device(att_status="authorized")
    b.touch("click", device, t - CLICK_WINDOW_S - b.rng.uniform(3600, 86400))
    device.ip = f"100.{b.rng.randint(64, 127)}.{b.rng.randint(0, 255)}.{b.rng.randint(1, 254)}"
    install = b.install(device, t)
    b.expect(install, "expired_click", "organic")
    b.after_install(device, t)


def _organic(b: _FunnelBuilder, t: float) -> None:
    device = b.new_device()
    install = b.install(device, t)
    b.expect(install, "organic", "organic")
    b.after_install(device, t)


def _reinstall(b: _FunnelBuilder, t: float) -> None:
    # The first install is attributed; a second install of the same device keeps that attribution
    # even though a newer click from another network precedes it.
    device = b.new_device(att_status="authorized")
    rng = b.rng
    first_time = t - rng.uniform(86400, 2 * 86400)
    click = b.touch("click", device, first_time - rng.uniform(600, 86400))
    first = b.install(device, first_time)
    b.expect(first, "reinstall_first", "attributed", click, "device_id")
    b.after_install(device, first_time)
    b.touch("click", device, t - rng.uniform(600, 3600), source=b.new_source(click["network"]))
    second = b.install(device, t)
    b.expected.append(
        ExpectedAttribution(
            install_event_id=second["event_id"],
            scenario="reinstall",
            status="reinstall",
            network=click["network"],
            campaign=click["campaign"],
            touch_event_id=click["event_id"],
            touch_type="click",
            match_type="device_id",
        )
    )


def _stray_touch(b: _FunnelBuilder, t: float) -> None:
    """Add an impression or click from a device that never installs."""
    device = b.new_device(ad_id=b.rng.choice(("present", "present", "absent")))
    event_type = "impression" if b.rng.random() < 0.8 else "click"
    b.touch(event_type, device, t, with_click_id=event_type == "click")


Scenario = Callable[[_FunnelBuilder, float], None]

ANDROID_SCENARIOS: dict[Scenario, int] = {
    _referrer: 25,
    _referrer_beats_later_device_click: 5,
    _device_click: 20,
    _click_beats_later_impression: 4,
    _fingerprint: 8,
    _fingerprint_beats_impression: 3,
    _view_through: 8,
    _click_injection: 4,
    _click_after_install_begin: 3,
    _expired_click: 3,
    _organic: 12,
    _reinstall: 5,
}
IOS_SCENARIOS: dict[Scenario, int] = {
    _device_click: 25,
    _click_beats_later_impression: 4,
    _fingerprint: 10,
    _fingerprint_beats_impression: 3,
    _ios_denied_fingerprint: 15,
    _view_through: 10,
    _click_injection: 4,
    _expired_click: 3,
    _organic: 20,
    _reinstall: 5,
}
# A funnel adds at most 13 events (device click: 3 impressions, 2 clicks, the install and up to 7
# follow-ups), so a batch stops taking funnels this close to its size and fills up with strays.
_MAX_FUNNEL_EVENTS = 16


@dataclasses.dataclass(frozen=True)
class BatchTemplate:
    """One encoded batch whose ids carry `SEQUENCE_PLACEHOLDER`, with its expected records."""

    app_id: str
    platform: str
    token: str
    batch_format: str
    segments: tuple[bytes, ...]  # the encoded body split at SEQUENCE_PLACEHOLDER
    event_count: int
    expected: tuple[ExpectedAttribution, ...]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.batch_format]

    @property
    def body(self) -> bytes:
        """The encoded batch with the placeholders in place."""
        return SEQUENCE_PLACEHOLDER.join(self.segments)

    def render(self, sequence: int) -> bytes:
        """Return the body with fresh ids for `sequence` (0 <= sequence < 16**8)."""
        return (b"%08x" % sequence).join(self.segments)

    def materialize(self, sequence: int) -> tuple[list[dict[str, Any]], list[ExpectedAttribution]]:
        """Return the decoded events of `render(sequence)` and the expected records for them."""
        body = self.render(sequence)
        if self.batch_format == "ndjson":
            events = [msgspec.json.decode(line) for line in body.splitlines() if line]
        elif self.batch_format == "object":
            events = msgspec.json.decode(body)["events"]
        else:
            events = msgspec.json.decode(body)
        sequence_text = "%08x" % sequence
        return events, [record.with_sequence(sequence_text) for record in self.expected]


def build_template(
    app_id: str,
    platform: str,
    batch_size: int = 1000,
    *,
    seed: int | None = None,
    now: float | None = None,
    batch_format: str = "array",
    stray_share: float = 0.5,
) -> BatchTemplate:
    """Build a batch of `batch_size` events for one app.

    About `stray_share` of the events are touches from devices that never install; the rest
    form install funnels. Install times lie between 36 hours and 3 hours before `now` (default:
    the current time), so no event is ahead of the server clock and repeated sends still match
    (see the module's doc). A `seed` makes the batch
    reproducible; without one, the random token comes from os.urandom, so forked Locust
    processes never share ids.
    """
    if platform not in ("android", "ios"):
        raise ValueError(f"platform must be 'android' or 'ios', got {platform!r}")
    if batch_format not in BATCH_FORMATS:
        raise ValueError(f"batch_format must be one of {', '.join(BATCH_FORMATS)}, got {batch_format!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not 0.0 <= stray_share < 1.0:
        raise ValueError(f"stray_share must be in [0, 1), got {stray_share}")

    rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
    token = f"{rng.getrandbits(32):08x}"
    now = datetime.datetime.now(datetime.timezone.utc).timestamp() if now is None else now
    builder = _FunnelBuilder(rng, app_id, platform, token, now)

    table = ANDROID_SCENARIOS if platform == "android" else IOS_SCENARIOS
    scenarios = list(table)
    weights = list(table.values())
    latest_install = now - 3 * 3600
    earliest_install = now - 36 * 3600

    while len(builder.events) + _MAX_FUNNEL_EVENTS <= batch_size:
        if rng.random() < stray_share:
            _stray_touch(builder, rng.uniform(earliest_install - 86400, latest_install))
        else:
            scenario = rng.choices(scenarios, weights)[0]
            scenario(builder, rng.uniform(earliest_install, latest_install))
    while len(builder.events) < batch_size:
        _stray_touch(builder, rng.uniform(earliest_install - 86400, latest_install))

    events = builder.sorted_events()
    return BatchTemplate(
        app_id=app_id,
        platform=platform,
        token=token,
        batch_format=batch_format,
        segments=tuple(encode_batch(events, batch_format).split(SEQUENCE_PLACEHOLDER)),
        event_count=len(events),
        expected=tuple(builder.expected),
    )


def encode_batch(events: list[dict[str, Any]], batch_format: str = "array") -> bytes:
    """Encode events as a JSON array, a {"events": [...]} object or NDJSON."""
    if batch_format == "array":
        return msgspec.json.encode(events)
    if batch_format == "object":
        return msgspec.json.encode({"events": events})
    if batch_format == "ndjson":
        return b"".join(msgspec.json.encode(event) + b"\n" for event in events)
    raise ValueError(f"batch_format must be one of {', '.join(BATCH_FORMATS)}, got {batch_format!r}")


class TemplatePool:
    """Templates of one process, cycled, with one sequence counter shared by all of them.

    Every template has its own random token, so one counter keeps (token, sequence) unique.
    """

    def __init__(self, templates: list[BatchTemplate]) -> None:
        if not templates:
            raise ValueError("a template pool needs at least one template")
        self.templates = templates
        self._cycle: Iterator[BatchTemplate] = itertools.cycle(templates)
        self._sequence = itertools.count()

    def next_body(self) -> tuple[BatchTemplate, int, bytes]:
        """Return the next template, its sequence number and the body rendered with it."""
        template = next(self._cycle)
        # NOTE: ids repeat after 16**8 sends, which at 1,000 batches/s takes 49 days.
        sequence = next(self._sequence) % SEQUENCE_LIMIT
        return template, sequence, template.render(sequence)
