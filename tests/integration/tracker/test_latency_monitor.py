"""The statistics poller against a real HTTP server: success, failure and overdue polls."""

from customer_tracker.ingestion_client import IngestionClient
from customer_tracker.latency import LatencyMonitor

from .conftest import ADMIN_TOKEN, START, Clock


async def test_poll_states(ingestion):
    ingestion.set_latency("a", p50=1, p95=2, p99=3)
    clock = Clock(START)
    probes = []

    async def record_probe(ok, error):
        probes.append((ok, error))

    client = IngestionClient(ingestion.url, ADMIN_TOKEN)
    monitor = LatencyMonitor(client, interval_seconds=10, record_probe=record_probe, clock=clock)
    try:
        assert monitor.stale is True
        assert await monitor.poll_once() is True
        assert monitor.stale is False
        assert monitor.customer_latency(["a"]).milliseconds == {"p50": 1, "p95": 2, "p99": 3}

        clock.advance(seconds=30)
        assert monitor.stale is False
        clock.advance(seconds=1)
        assert monitor.stale is True
        assert monitor.describe()["age_seconds"] == 31

        ingestion.fail_with = 503
        assert await monitor.poll_once() is False
        assert "HTTP 503" in monitor.last_error
        assert monitor.customer_latency(["a"]).milliseconds == {"p50": 1, "p95": 2, "p99": 3}

        ingestion.fail_with = None
        assert await monitor.poll_once() is True
        assert monitor.stale is False
        assert monitor.consecutive_failures == 0
        assert [ok for ok, _error in probes] == [True, False, True]
    finally:
        await client.aclose()


async def test_wrong_token_named(ingestion):
    client = IngestionClient(ingestion.url, "some-other-token")
    monitor = LatencyMonitor(client, interval_seconds=10, clock=Clock(START))
    try:
        assert await monitor.poll_once() is False
        assert "rejected the tracker's admin token" in monitor.last_error
        assert "UNMOGROWP_ADMIN_TOKEN" in monitor.last_error
    finally:
        await client.aclose()


async def test_attribution_pages_followed(ingestion):
    for number in range(5):
        ingestion.add_record("a", f"i-{number}", "AdNet")
    client = IngestionClient(ingestion.url, ADMIN_TOKEN)
    try:
        records = [record async for record in client.iter_attributions("a")]
        unknown = [record async for record in client.iter_attributions("unknown")]
    finally:
        await client.aclose()
    assert [record["install_event_id"] for record in records] == [f"i-{n}" for n in range(5)]
    assert unknown == []
    assert sum("/v1/attributions?app_id=a" in url for url in ingestion.requests) == 3


async def test_failures_at_startup_not_counted(ingestion):
    clock = Clock(START)
    probes = []

    async def record_probe(ok, error):
        probes.append(ok)

    ingestion.stop()
    client = IngestionClient(ingestion.url, ADMIN_TOKEN)
    monitor = LatencyMonitor(client, interval_seconds=10, record_probe=record_probe, clock=clock)
    try:
        assert await monitor.poll_once() is False
        clock.advance(seconds=29)
        assert await monitor.poll_once() is False
        assert probes == []
        assert monitor.stale is True

        clock.advance(seconds=1)
        assert await monitor.poll_once() is False
        assert probes == [False]

        ingestion.start()
        assert await monitor.poll_once() is True
        assert probes == [False, True]
    finally:
        await client.aclose()
