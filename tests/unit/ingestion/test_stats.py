"""Per-app stats of one worker, and the books of several workers added up."""

from __future__ import annotations

import logging

from ingestion.stats import SLOT_SECONDS, StatsBook
from ingestion.stats_sharing import SharedStats, stats_path

NOW = 1_800_000_000.0
REGISTERED = NOW - 3600


def test_counts_add_peer_books():
    own, peer = StatsBook(), StatsBook()
    own.record("app", REGISTERED, 10, 1, 2, 5.0, NOW)
    peer.record("app", REGISTERED, 7, 0, 1, 5.0, NOW)

    assert own.counts("app", REGISTERED, [peer.apps]) == {"accepted": 17, "duplicate": 1, "rejected": 3}
    assert own.counts("app", REGISTERED) == {"accepted": 10, "duplicate": 1, "rejected": 2}


def test_percentiles_cover_peer_latency():
    own, peer = StatsBook(), StatsBook()
    own.record("app", REGISTERED, 100, 0, 0, 2.5, NOW)
    peer.record("app", REGISTERED, 300, 0, 0, 400.0, NOW)

    alone = own.percentiles("app", REGISTERED, NOW)
    together = own.percentiles("app", REGISTERED, NOW, [peer.apps])

    assert alone["p95"] <= 3
    assert together["p50"] > 250
    assert together["p95"] > 250


def test_deleted_app_figures_left_out():
    own, peer = StatsBook(), StatsBook()
    own.record("app", REGISTERED, 5, 0, 0, 400.0, NOW)
    peer.record("app", REGISTERED, 7, 0, 0, 400.0, NOW)
    again = REGISTERED + 60

    own.record("app", again, 2, 0, 0, 1.0, NOW)

    assert own.counts("app", again, [peer.apps]) == {"accepted": 2, "duplicate": 0, "rejected": 0}
    assert own.percentiles("app", again, NOW, [peer.apps])["p50"] <= 1
    assert peer.counts("app", again) == {"accepted": 0, "duplicate": 0, "rejected": 0}


def test_peer_minutes_outside_window_ignored():
    own, peer = StatsBook(window_seconds=300), StatsBook(window_seconds=300)
    peer.record("app", REGISTERED, 50, 0, 0, 400.0, NOW - 10 * SLOT_SECONDS)

    assert own.percentiles("app", REGISTERED, NOW, [peer.apps]) == {"p50": None, "p95": None, "p99": None}
    assert own.counts("app", REGISTERED, [peer.apps])["accepted"] == 50


def test_document_names_apps_without_events():
    document = StatsBook().document([("quiet", REGISTERED)], NOW, [])

    assert document["quiet"]["events"] == {"accepted": 0, "duplicate": 0, "rejected": 0}
    assert document["quiet"]["latency_ms"]["p50"] is None


def test_saved_book_read_by_other_slot(tmp_path):
    first, second = StatsBook(), StatsBook()
    first.record("app", REGISTERED, 4, 0, 0, 1.0, NOW)
    SharedStats(first, tmp_path, 0).save()

    peers = SharedStats(second, tmp_path, 1).peers()

    assert len(peers) == 1
    assert second.counts("app", REGISTERED, peers)["accepted"] == 4


def test_own_slot_left_out_of_peers(tmp_path):
    book = StatsBook()
    book.record("app", REGISTERED, 4, 0, 0, 1.0, NOW)
    shared = SharedStats(book, tmp_path, 0)
    shared.save()

    assert shared.peers() == []


def test_replacement_worker_takes_over_counts(tmp_path):
    dead = StatsBook()
    dead.record("app", REGISTERED, 9, 0, 0, 1.0, NOW)
    SharedStats(dead, tmp_path, 3).save()
    replacement = StatsBook()

    SharedStats(replacement, tmp_path, 3).take_over()
    replacement.record("app", REGISTERED, 1, 0, 0, 1.0, NOW)

    assert replacement.counts("app", REGISTERED)["accepted"] == 10


def test_unchanged_book_not_written_again(tmp_path):
    book = StatsBook()
    book.record("app", REGISTERED, 1, 0, 0, 1.0, NOW)
    shared = SharedStats(book, tmp_path, 0)
    shared.save()
    stats_path(tmp_path, 0).unlink()

    shared.save()
    unchanged = stats_path(tmp_path, 0).exists()
    book.record("app", REGISTERED, 1, 0, 0, 1.0, NOW)
    shared.save()

    assert not unchanged
    assert stats_path(tmp_path, 0).exists()


def test_damaged_peer_file_left_out(tmp_path, caplog):
    stats_path(tmp_path, 1).write_bytes(b"\xc1 not msgpack")
    shared = SharedStats(StatsBook(), tmp_path, 0)

    with caplog.at_level(logging.WARNING, logger="ingestion.stats_sharing"):
        peers = shared.peers()

    assert peers == []
    assert "stats of another worker unreadable" in caplog.text
