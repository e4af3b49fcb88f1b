"""AgedDict: look-ups across parts, removal by identity, and parts bounded in size."""

from __future__ import annotations

import sys

import pytest

from ingestion.store.aged import AgedDict


def test_newest_value_wins_across_parts():
    table = AgedDict(part_size=2)
    table["a"] = "first"
    table["b"] = "b"
    table["a"] = "second"

    assert len(table.parts) == 2
    assert table.get("a") == "second"
    assert table.get("b") == "b"
    assert table.get("missing") is None
    assert table.get("missing", "fallback") == "fallback"


def test_discard_removes_only_that_value():
    first, second = object(), object()
    table = AgedDict(part_size=2)
    table["a"] = first
    table["b"] = object()
    table["a"] = second

    assert not table.discard("a", object())
    assert table.discard("a", first)
    assert table.get("a") is second
    assert len(table) == 2


def test_emptied_old_part_dropped():
    table = AgedDict(part_size=2)
    values = {key: object() for key in "abcde"}
    for key, value in values.items():
        table[key] = value

    assert [len(part) for part in table.parts] == [2, 2, 1]
    table.discard("a", values["a"])
    table.discard("b", values["b"])
    assert [len(part) for part in table.parts] == [2, 1]
    table.discard("e", values["e"])
    # The newest part stays, empty, for the next insertion.
    assert [len(part) for part in table.parts] == [2, 0]
    assert len(table) == 2


def test_parts_stay_small_under_churn():
    table = AgedDict(part_size=1000)
    values = []
    for number in range(20_000):
        value = (number,)
        values.append(value)
        table[f"key-{number}"] = value
        if number >= 5000:
            old = values[number - 5000]
            assert table.discard(f"key-{number - 5000}", old)

    assert len(table) == 5000
    assert all(len(part) <= 1000 for part in table.parts)
    assert len(table.parts) <= 6
    # No part's table grew past what 1,000 keys need, however many keys passed through.
    grown = {f"key-{number}": None for number in range(1000)}
    assert max(map(sys.getsizeof, table.parts)) <= sys.getsizeof(grown)
    assert table.get("key-19999") == (19999,)
    assert table.get("key-14999") is None


def test_part_size_must_be_positive():
    with pytest.raises(ValueError, match="part_size must be at least 1, got 0"):
        AgedDict(part_size=0)

