"""The metrics benchmark runs and its recorders expose the same counts (speed is not asserted)."""

from loadtest.bench_metrics import RECORDERS, format_table, make_batches, run


def test_batches_have_requested_shape():
    batches = make_batches(batch_size=500, groups=12, distinct=3, seed=7)

    for duration, events, grouped in batches:
        assert duration > 0
        assert len(events) == 500
        assert sum(count for _, count in grouped) == 500
        assert len(grouped) <= 12


def test_run_counts_match():
    result = run(batch_size=200, groups=10, batches=2, rounds=1)

    assert result["all_counts_match"] is True
    assert result["exposed_counter_total"] == 400
    assert set(result["ns_per_event"]) == set(RECORDERS)
    assert all(result["sums_match"].values())


def test_table_lists_every_recorder():
    result = run(batch_size=50, groups=5, batches=1, rounds=1)

    table = format_table(result)

    for name in RECORDERS:
        assert name in table
