"""Reconciliation: the customer's reference attributions against the ingestion service's records.

The reference is what the customer's incumbent platform attributed, one row per install:
``install_event_id``, ``network`` (empty for organic) and optionally ``campaign`` and
``app_id``. It comes as CSV, with or without a header line, or as JSON: an array of objects,
or an object with an ``items`` array.

An install matches when the ingestion service has a record for it whose network equals the
reference's, compared without case and surrounding spaces, with an empty or missing
network on both sides counting as equal (organic). When the reference row gives a
campaign, the campaign must match too, by the same rule.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Callable, Iterable
from decimal import ROUND_HALF_EVEN, Decimal

import orjson

from customer_tracker.errors import InvalidInput, UnsupportedMediaType

MAX_REFERENCE_BYTES = 10 * 1024 * 1024
MAX_REFERENCE_ROWS = 100_000
MAX_FIELD_CHARACTERS = 128
CSV_COLUMNS = ("install_event_id", "network", "campaign", "app_id")

# Mismatch reasons.
NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
NETWORK_DIFFERS = "network_differs"
CAMPAIGN_DIFFERS = "campaign_differs"


@dataclasses.dataclass(frozen=True)
class ReferenceRow:
    install_event_id: str
    network: str | None
    campaign: str | None
    app_id: str | None
    where: str  # "line N" of a CSV file or "item N" of a JSON array, for messages


@dataclasses.dataclass(frozen=True)
class Outcome:
    compared: int
    matched: int
    accuracy_percent: Decimal
    mismatches: list[dict]


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _check_field(value: str | None, name: str, where: str) -> str | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if len(value) > MAX_FIELD_CHARACTERS:
        raise InvalidInput(f"{where}: {name} is longer than {MAX_FIELD_CHARACTERS} characters", field=name)
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise InvalidInput(f"{where}: {name} contains a control character", field=name)
    return value


def _make_row(fields: dict[str, str | None], where: str) -> ReferenceRow:
    install_event_id = _check_field(fields.get("install_event_id"), "install_event_id", where)
    if install_event_id is None:
        raise InvalidInput(f"{where}: install_event_id is missing or empty", field="install_event_id")
    return ReferenceRow(
        install_event_id=install_event_id,
        network=_check_field(fields.get("network"), "network", where),
        campaign=_check_field(fields.get("campaign"), "campaign", where),
        app_id=_check_field(fields.get("app_id"), "app_id", where),
        where=where,
    )


def parse_csv(text: str) -> list[ReferenceRow]:
    """Parse CSV rows ``install_event_id,network[,campaign]``, or any column order under a header.

    A first line with a cell ``install_event_id`` is a header; it may also name ``campaign``
    and ``app_id``. Blank lines are skipped.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: tuple[str, ...] = ("install_event_id", "network", "campaign")
    rows: list[ReferenceRow] = []
    header_seen = False
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if not header_seen and not rows and "install_event_id" in _normalized(cells):
                columns = _header_columns(cells, reader.line_num)
                header_seen = True
                continue
            where = f"line {reader.line_num}"
            if len(cells) > len(columns) or len(cells) < 2:
                raise InvalidInput(
                    f"{where}: expected the columns {','.join(columns)} (network may be empty, later columns "
                    f"optional), got {len(cells)} cells"
                )
            rows.append(_make_row(dict(zip(columns, cells)), where))
            if len(rows) > MAX_REFERENCE_ROWS:
                raise InvalidInput(f"the reference has more than {MAX_REFERENCE_ROWS} rows: split it into several runs")
    except csv.Error as error:
        raise InvalidInput(f"line {reader.line_num}: malformed CSV ({error})") from None
    return rows


def _normalized(cells: list[str]) -> tuple[str, ...]:
    return tuple(cell.strip().lower() for cell in cells)


def _header_columns(cells: list[str], line: int) -> tuple[str, ...]:
    columns = _normalized(cells)
    unknown = [column for column in columns if column not in CSV_COLUMNS]
    if unknown:
        raise InvalidInput(
            f"line {line}: unknown column {unknown[0]!r} in the header: use {', '.join(CSV_COLUMNS)}"
        )
    if len(set(columns)) != len(columns):
        raise InvalidInput(f"line {line}: a column appears twice in the header")
    if "network" not in columns:
        raise InvalidInput(f"line {line}: the header has no network column; add it (empty cells mean organic)")
    return columns


def parse_json(body: bytes) -> list[ReferenceRow]:
    """Parse a JSON array of reference objects, or an object with an ``items`` array."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the reference is not valid JSON: {error}") from None
    if isinstance(document, dict):
        document = document.get("items")
    if not isinstance(document, list):
        raise InvalidInput("the JSON reference must be an array of objects or an object with an 'items' array")
    if len(document) > MAX_REFERENCE_ROWS:
        raise InvalidInput(f"the reference has more than {MAX_REFERENCE_ROWS} rows: split it into several runs")
    rows = []
    for index, item in enumerate(document):
        where = f"item {index}"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: expected an object with install_event_id and network")
        # A misspelled key would otherwise read as a missing network, which is organic, and
        # could count as a match.
        unknown = [name for name in item if name not in CSV_COLUMNS]
        if unknown:
            raise InvalidInput(
                f"{where}: unknown field {unknown[0]!r}: use {', '.join(CSV_COLUMNS)}", field=str(unknown[0])
            )
        if "network" not in item:
            raise InvalidInput(
                f"{where}: network is missing; send the network, or null or \"\" for organic", field="network"
            )
        fields: dict[str, str | None] = {}
        for name in CSV_COLUMNS:
            value = item.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{where}: {name} must be a string or null, got {type(value).__name__}", field=name)
            fields[name] = value
        rows.append(_make_row(fields, where))
    return rows


def parse_reference(body: bytes, content_type: str) -> tuple[list[ReferenceRow], str]:
    """Parse the uploaded reference; return its rows and its format (``csv`` or ``json``)."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type in ("text/csv", "application/csv"):
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise InvalidInput(f"the CSV reference is not UTF-8 (byte {error.start}): save it as UTF-8") from None
        rows, source_format = parse_csv(text), "csv"
    elif media_type == "application/json":
        rows, source_format = parse_json(body), "json"
    else:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}: send the reference as text/csv or application/json"
        )
    if not rows:
        raise InvalidInput("the reference has no rows: send at least one install_event_id,network line")
    _reject_duplicates(rows)
    return rows, source_format


def _reject_duplicates(rows: Iterable[ReferenceRow]) -> None:
    seen: dict[tuple[str | None, str], str] = {}
    for row in rows:
        key = (row.app_id, row.install_event_id)
        if key in seen:
            raise InvalidInput(
                f"{row.where}: install {row.install_event_id!r} appears again (first at {seen[key]}): "
                "keep one row per install"
            )
        seen[key] = row.where


def check_apps(rows: Iterable[ReferenceRow], app_ids: Iterable[str], customer_id: str) -> None:
    """Raise InvalidInput when a row names an app that the customer does not own."""
    owned = set(app_ids)
    for row in rows:
        if row.app_id is not None and row.app_id not in owned:
            raise InvalidInput(
                f"{row.where}: app {row.app_id!r} is not an app of customer {customer_id!r} "
                f"(its apps: {sorted(owned)}): fix the app_id or add the app to the customer",
                field="app_id",
            )


@dataclasses.dataclass(frozen=True)
class IngestedAttribution:
    app_id: str
    status: str | None
    network: str | None
    campaign: str | None


async def index_records(
    app_ids: Iterable[str],
    install_ids: set[str],
    fetch_app: Callable[[str], AsyncIterator[dict]],
) -> dict[str, list[IngestedAttribution]]:
    """Read the records of each app and keep those whose install is in ``install_ids``.

    NOTE: this reads every record of the customer's apps, because the ingestion service has no
    lookup of many installs in one request. The cost grows with the apps' records, not with
    the reference.
    """
    index: dict[str, list[IngestedAttribution]] = {}
    for app_id in app_ids:
        async for record in fetch_app(app_id):
            install_event_id = record.get("install_event_id")
            if install_event_id not in install_ids:
                continue
            index.setdefault(install_event_id, []).append(
                IngestedAttribution(
                    app_id=str(record.get("app_id") or app_id),
                    status=record.get("status"),
                    network=record.get("network"),
                    campaign=record.get("campaign"),
                )
            )
    return index


def _same(expected: str | None, actual: str | None) -> bool:
    expected = _blank_to_none(expected)
    actual = _blank_to_none(actual) if isinstance(actual, str) else None
    if expected is None or actual is None:
        return expected is None and actual is None
    return expected.casefold() == actual.casefold()


def _stored_text(value: object, limit: int) -> str | None:
    # Cut to the column width, so an unexpectedly long value from the service cannot fail the insert.
    return value[:limit] if isinstance(value, str) else None


def compare(rows: list[ReferenceRow], index: dict[str, list[IngestedAttribution]]) -> Outcome:
    """Compare each reference row with the ingestion service's record of the same install."""
    matched = 0
    mismatches: list[dict] = []
    for row in rows:
        candidates = [
            record for record in index.get(row.install_event_id, ())
            if row.app_id is None or record.app_id == row.app_id
        ]
        mismatch = {
            "install_event_id": row.install_event_id,
            "app_id": row.app_id,
            "expected_network": row.network,
            "expected_campaign": row.campaign,
            "actual_status": None,
            "actual_network": None,
            "actual_campaign": None,
        }
        if not candidates:
            mismatches.append(dict(mismatch, reason=NOT_FOUND))
            continue
        if len(candidates) > 1:
            mismatches.append(dict(mismatch, reason=AMBIGUOUS))
            continue
        record = candidates[0]
        mismatch.update(
            app_id=record.app_id,
            actual_status=_stored_text(record.status, 16),
            actual_network=_stored_text(record.network, MAX_FIELD_CHARACTERS),
            actual_campaign=_stored_text(record.campaign, MAX_FIELD_CHARACTERS),
        )
        if not _same(row.network, record.network):
            mismatches.append(dict(mismatch, reason=NETWORK_DIFFERS))
        elif row.campaign is not None and not _same(row.campaign, record.campaign):
            mismatches.append(dict(mismatch, reason=CAMPAIGN_DIFFERS))
        else:
            matched += 1
    compared = len(rows)
    accuracy = (Decimal(matched) * 100 / Decimal(compared)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return Outcome(compared=compared, matched=matched, accuracy_percent=accuracy, mismatches=mismatches)
