"""Compact MessagePack forms of what the Redis store keeps.

A stored touch keeps only what attribution reads back (the lookup keys are
already in the index key names), and a stored record leaves out the app id
and the list position, which the keys provide. Revenue is kept exactly: each
amount becomes integer coefficients per decimal exponent, which Redis adds
with ``HINCRBY``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Literal

import msgspec

from ingestion.model import Record, RejectedTouch, Touch

# Coefficients sent to HINCRBY stay below this, so about 9 million maximal
# increments of one line and exponent fit in Redis's signed 64-bit integers.
MAX_COEFFICIENT_CHUNK = 10**12


class StoredTouch(msgspec.Struct, array_like=True):
    seq: int
    event_id: str
    is_click: bool
    time: float
    network: str
    campaign: str | None
    adgroup: str | None
    creative: str | None


class StoredRejection(msgspec.Struct, array_like=True):
    touch_event_id: str
    reason: Literal["ctit_below_minimum", "click_after_install_begin"]


class StoredRecord(msgspec.Struct, array_like=True):
    install_event_id: str
    status: Literal["attributed", "organic", "reinstall"]
    network: str | None
    campaign: str | None
    adgroup: str | None
    creative: str | None
    touch_event_id: str | None
    touch_type: Literal["click", "impression"] | None
    match_type: Literal["referrer", "device_id", "fingerprint"] | None
    install_time: float
    touch_time: float | None
    ctit_seconds: float | None
    rejected: list[StoredRejection]


_encoder = msgspec.msgpack.Encoder()
_touch_decoder = msgspec.msgpack.Decoder(StoredTouch)
_record_decoder = msgspec.msgpack.Decoder(StoredRecord)


def encode(value) -> bytes:
    return _encoder.encode(value)


def encode_touch(touch: Touch) -> bytes:
    return _encoder.encode(
        StoredTouch(
            touch.seq, touch.event_id, touch.is_click, touch.time,
            touch.network, touch.campaign, touch.adgroup, touch.creative,
        )
    )


def decode_touch(body: bytes) -> Touch:
    stored = _touch_decoder.decode(body)
    return Touch(
        stored.seq, stored.event_id, stored.is_click, stored.time,
        stored.network, stored.campaign, stored.adgroup, stored.creative,
        None, (), None,
    )


def encode_record(record: Record) -> bytes:
    return _encoder.encode(
        StoredRecord(
            record.install_event_id, record.status, record.network, record.campaign,
            record.adgroup, record.creative, record.touch_event_id, record.touch_type,
            record.match_type, record.install_time, record.touch_time, record.ctit_seconds,
            [StoredRejection(rejected.touch_event_id, rejected.reason) for rejected in record.rejected_touches],
        )
    )


def decode_record(body: bytes, app_id: str, seq: int = 0) -> Record:
    stored = _record_decoder.decode(body)
    return Record(
        install_event_id=stored.install_event_id,
        app_id=app_id,
        status=stored.status,
        network=stored.network,
        campaign=stored.campaign,
        adgroup=stored.adgroup,
        creative=stored.creative,
        touch_event_id=stored.touch_event_id,
        touch_type=stored.touch_type,
        match_type=stored.match_type,
        install_time=stored.install_time,
        touch_time=stored.touch_time,
        ctit_seconds=stored.ctit_seconds,
        rejected_touches=tuple(RejectedTouch(rejected.touch_event_id, rejected.reason) for rejected in stored.rejected),
        seq=seq,
    )


def split_amount(amount: Decimal) -> list[tuple[int, int]]:
    """Return ``(exponent, coefficient)`` pairs that sum exactly to ``amount``.

    Each coefficient's magnitude is below ``MAX_COEFFICIENT_CHUNK``; a larger
    coefficient is split into chunks at higher exponents.
    """
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"revenue amount {amount} is not finite")
    coefficient = int("".join(map(str, digits)) or "0")
    chunks: list[tuple[int, int]] = []
    while True:
        coefficient, low = divmod(coefficient, MAX_COEFFICIENT_CHUNK)
        # The lowest chunk is kept even when zero: it carries the amount's
        # exponent, so "5.00" still sums to a total with two decimals.
        if low or not chunks:
            chunks.append((exponent, -low if sign else low))
        if not coefficient:
            break
        exponent += 12
    return chunks


def parse_revenue(amounts: dict[bytes, bytes], counts: dict[bytes, bytes]) -> list[tuple[str | None, str | None, str, Decimal, int]]:
    """Return (network, campaign, currency, amount, events) per line from the two hashes.

    Count fields are JSON ``[network, campaign, currency]``; amount fields are
    that line, ``|`` and the decimal exponent of the coefficient summed there.
    """
    totals: dict[bytes, Decimal] = {line: Decimal(0) for line in counts}
    for field, value in amounts.items():
        line, _, exponent = field.rpartition(b"|")
        # The constructor is exact; only the sum rounds, to the context's
        # 28 digits, as the embedded store's sums do.
        totals[line] = totals.get(line, Decimal(0)) + Decimal(f"{int(value)}E{int(exponent)}")
    lines = []
    for line, total in totals.items():
        network, campaign, currency = json.loads(line)
        lines.append((network, campaign, currency, total, int(counts.get(line, 0))))
    return lines
