"""The replay report: counts, agreement with the file's own attribution, percentiles.

``build_report`` compares each install of the file with the attribution record
the service wrote for it. The install agrees when the record is ``attributed``
to exactly the click of the install's row. Every other install is listed with
the reason it differs:

- ``click_injection``: the service rejected the row's click as click injection
  (for example a click less than the app's ``ctit_min_s``, 10 s by default,
  before the install);
- ``other_touch``: the service credited another touch, such as a later click
  with the same IP address and user agent;
- ``organic`` or ``reinstall``: the record has that status and no rejected click of the row;
- ``no_record``: the service returned no record for the install.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingestion.replay.talkingdata import ExpectedInstall

CLICK_INJECTION_REASONS = frozenset({"ctit_below_minimum", "click_after_install_begin"})
PERCENTILES = (50, 90, 95, 99)
MAX_LISTED_EVENT_ERRORS = 100


@dataclass(slots=True)
class SendStats:
    """Counts and timing of the sending phase of a replay."""

    clicks: int = 0
    installs: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.clicks + self.installs


def percentile_summary(values: Sequence[float]) -> dict[str, Any]:
    """Summarize values with count, min, max, mean and nearest-rank p50, p90, p95 and p99.

    The nearest-rank percentile p is the smallest value with at least p % of
    the values at or below it, so it is always one of the values.
    """
    ordered = sorted(values)
    summary: dict[str, Any] = {"count": len(ordered)}
    if not ordered:
        summary.update({"min": None, "max": None, "mean": None})
        summary.update({f"p{p}": None for p in PERCENTILES})
        return summary
    summary["min"] = ordered[0]
    for p in PERCENTILES:
        rank = math.ceil(p / 100 * len(ordered))
        summary[f"p{p}"] = ordered[max(rank, 1) - 1]
    summary["max"] = ordered[-1]
    summary["mean"] = round(sum(ordered) / len(ordered), 3)
    return summary


def injection_rejections(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the record's rejected touches whose reason is click injection."""
    return [
        touch
        for touch in record.get("rejected_touches") or []
        if touch.get("reason") in CLICK_INJECTION_REASONS
    ]


def classify(install: ExpectedInstall, record: Mapping[str, Any] | None) -> str:
    """Return ``agree`` or the reason the record differs from the file; see the module docstring."""
    if record is None:
        return "no_record"
    if record.get("status") == "attributed" and record.get("touch_event_id") == install.click_event_id:
        return "agree"
    rejected_ids = {touch.get("touch_event_id") for touch in injection_rejections(record)}
    if install.click_event_id in rejected_ids:
        return "click_injection"
    if record.get("status") == "attributed":
        return "other_touch"
    return str(record.get("status"))


def build_report(
    *,
    source: str,
    url: str,
    rows: int,
    attributed_rows: int,
    apps: Sequence[str],
    apps_created: int,
    installs: Sequence[ExpectedInstall],
    records: Mapping[str, Mapping[str, Any]],
    sent: SendStats,
) -> dict[str, Any]:
    """Build the report as one JSON-ready dictionary.

    ``records`` maps install event ids to the service's attribution records;
    records of installs that are not in ``installs`` are ignored.
    """
    outcomes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    match_types: Counter[str] = Counter()
    disagreements: list[dict[str, Any]] = []
    click_injections: list[dict[str, Any]] = []
    record_ctits: list[float] = []

    for install in installs:
        record = records.get(install.install_event_id)
        outcome = classify(install, record)
        outcomes[outcome] += 1
        if record is None:
            disagreements.append(_disagreement(install, None, outcome))
            continue

        statuses[str(record.get("status"))] += 1
        if record.get("status") == "attributed":
            match_types[str(record.get("match_type"))] += 1
            if record.get("ctit_seconds") is not None:
                record_ctits.append(record["ctit_seconds"])
        rejections = injection_rejections(record)
        if rejections:
            click_injections.append(_click_injection(install, record, rejections))
        if outcome != "agree":
            disagreements.append(_disagreement(install, record, outcome))

    compared = len(installs)
    agreed = outcomes["agree"]
    without_injection = compared - outcomes["click_injection"]
    return {
        "source": source,
        "url": url,
        "file": {
            "rows": rows,
            "attributed_rows": attributed_rows,
            "apps": len(apps),
            "ctit_seconds": percentile_summary([install.ctit_seconds for install in installs]),
        },
        "apps": {"met": len(apps), "registered": apps_created, "already_registered": len(apps) - apps_created},
        "events": {
            "sent": sent.events,
            "clicks": sent.clicks,
            "installs": sent.installs,
            "accepted": sent.accepted,
            "duplicates": sent.duplicates,
            "rejected": sent.rejected,
            "errors": sent.errors[:MAX_LISTED_EVENT_ERRORS],
            "errors_listed": min(len(sent.errors), MAX_LISTED_EVENT_ERRORS),
        },
        "attribution": {
            "installs": compared,
            "records": compared - outcomes["no_record"],
            "attributed": statuses["attributed"],
            "organic": statuses["organic"],
            "reinstall": statuses["reinstall"],
            "match_types": dict(sorted(match_types.items())),
            "rejected_as_click_injection": len(click_injections),
            "click_injections": click_injections,
            "ctit_seconds": percentile_summary(record_ctits),
        },
        "agreement": {
            "compared": compared,
            "agreed": agreed,
            "percent": _percent(agreed, compared),
            "agreed_without_click_injection_percent": _percent(agreed, without_injection),
            "disagreements_by_reason": {
                reason: count for reason, count in sorted(outcomes.items()) if reason != "agree"
            },
            "disagreements": disagreements,
        },
        "throughput": {
            "seconds": round(sent.seconds, 3),
            "events_per_second": round(sent.events / sent.seconds, 1) if sent.seconds > 0 else None,
            "requests": sent.requests,
            "retries": sent.retries,
        },
    }


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def _disagreement(install: ExpectedInstall, record: Mapping[str, Any] | None, outcome: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "line": install.line,
        "app_id": install.app_id,
        "install_event_id": install.install_event_id,
        "expected_touch_event_id": install.click_event_id,
        "expected_network": install.network,
        "file_ctit_seconds": install.ctit_seconds,
        "reason": outcome,
    }
    if record is not None:
        entry.update(
            {
                "status": record.get("status"),
                "touch_event_id": record.get("touch_event_id"),
                "network": record.get("network"),
                "match_type": record.get("match_type"),
                "ctit_seconds": record.get("ctit_seconds"),
                "rejected_touches": record.get("rejected_touches") or [],
            }
        )
    return entry


def _click_injection(
    install: ExpectedInstall, record: Mapping[str, Any], rejections: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    return {
        "line": install.line,
        "app_id": install.app_id,
        "install_event_id": install.install_event_id,
        "file_ctit_seconds": install.ctit_seconds,
        "rejected_touches": [
            {
                "touch_event_id": touch.get("touch_event_id"),
                "reason": touch.get("reason"),
                "is_file_click": touch.get("touch_event_id") == install.click_event_id,
            }
            for touch in rejections
        ],
        "status": record.get("status"),
        "touch_event_id": record.get("touch_event_id"),
    }


def render_table(report: Mapping[str, Any]) -> str:
    """Render the report as an aligned, human-readable table."""
    events = report["events"]
    attribution = report["attribution"]
    agreement = report["agreement"]
    throughput = report["throughput"]
    file = report["file"]

    lines = [f"TalkingData replay of {report['source']} through {report['url']}", ""]

    def row(label: str, value: Any, note: str = "") -> None:
        text = f"{value:,}" if isinstance(value, int) else str(value)
        lines.append(f"  {label:<30}{text:>12}{'  ' + note if note else ''}")

    row("rows read", file["rows"], f"{file['attributed_rows']:,} attributed, {file['apps']:,} apps")
    row("apps registered", report["apps"]["registered"], f"{report['apps']['already_registered']:,} already registered")
    row("events sent", events["sent"], f"{events['clicks']:,} clicks, {events['installs']:,} installs")
    row("accepted", events["accepted"])
    row("duplicates", events["duplicates"])
    row("rejected", events["rejected"])
    row("installs", attribution["installs"], f"{attribution['records']:,} with a record")
    row("  attributed", attribution["attributed"], _match_type_note(attribution["match_types"]))
    row("  organic", attribution["organic"])
    row("  reinstall", attribution["reinstall"])
    row("rejected as click injection", attribution["rejected_as_click_injection"])

    percent = agreement["percent"]
    row(
        "agreement with the file",
        f"{agreement['agreed']:,}/{agreement['compared']:,}",
        f"{percent} %" if percent is not None else "",
    )
    without_injection = agreement["agreed_without_click_injection_percent"]
    if without_injection is not None:
        row("  without click injections", "", f"{without_injection} %")
    for reason, count in agreement["disagreements_by_reason"].items():
        row(f"  differs: {reason.replace('_', ' ')}", count)

    lines.append("")
    lines.append(f"  {'click-to-install seconds':<30}" + "".join(f"{name:>9}" for name in _CTIT_COLUMNS))
    _ctit_row(lines, "  from the records", attribution["ctit_seconds"])
    _ctit_row(lines, "  from the file", file["ctit_seconds"])

    lines.append("")
    rate = throughput["events_per_second"]
    row(
        "events per second",
        f"{rate:,.0f}" if rate is not None else "n/a",
        f"{events['sent']:,} events in {throughput['seconds']} s, "
        f"{throughput['requests']:,} requests, {throughput['retries']:,} retries",
    )
    return "\n".join(lines)


_CTIT_COLUMNS = ("count", "min", "p50", "p90", "p95", "p99", "max")


def _ctit_row(lines: list[str], label: str, summary: Mapping[str, Any]) -> None:
    cells = []
    for name in _CTIT_COLUMNS:
        value = summary[name]
        cells.append(f"{'-' if value is None else format(value, ',.0f'):>9}")
    lines.append(f"  {label:<30}" + "".join(cells))


def _match_type_note(match_types: Mapping[str, int]) -> str:
    return ", ".join(f"{count:,} by {name}" for name, count in match_types.items())
