"""A service with a tiny journal segment size compacts, and its metrics show it."""

from __future__ import annotations

import time

from tests.integration.ingestion.helpers import click, wait_for

SERVICE_OPTIONS = {"journal_max_bytes": 2_000}


def value(api, name: str, **labels) -> float:
    [found] = [sample_value for sample_labels, sample_value in api.samples(name) if sample_labels == labels]
    return found


def test_compactions_counted_with_pause(api):
    app_id, key = api.register()
    now = time.time()
    before = value(api, "attribution_store_compactions_total", outcome="succeeded")

    for batch in range(3):
        clicks = [click(app_id, f"click-{batch}-{index}", now - 600, gaid=f"g-{batch}-{index}") for index in range(20)]
        assert api.send(key, clicks)["accepted"] == 20

    # The snapshot's bytes are written after the request that started the compaction returns.
    assert wait_for(lambda: value(api, "attribution_store_compactions_total", outcome="succeeded") > before)
    assert value(api, "attribution_store_compactions_total", outcome="failed") == 0
    assert value(api, "attribution_store_compaction_pause_seconds_total") > 0
