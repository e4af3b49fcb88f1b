"""The replay itself: register the apps, send the events in time order, read the records back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ingestion.replay.client import IngestionClient
from ingestion.replay.report import SendStats, build_report
from ingestion.replay.talkingdata import PLATFORM, ClickLog

PROGRESS_INTERVAL_SECONDS = 5.0


def replay_click_log(
    log: ClickLog,
    client: IngestionClient,
    *,
    batch_size: int,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Replay a parsed TalkingData file through the service and return the report."""
    apps = log.app_ids()
    apps_created = 0
    for app_id in apps:
        apps_created += client.register_app(app_id, PLATFORM)
    progress(f"registered {apps_created:,} of {len(apps):,} apps ({len(apps) - apps_created:,} already registered)")

    sent = send_events(log, client, batch_size=batch_size, progress=progress)
    progress(f"sent {sent.events:,} events in {sent.seconds:.2f} s")

    installs = log.expected_installs()
    wanted = {install.install_event_id for install in installs}
    records: dict[str, dict[str, Any]] = {}
    for app_id in dict.fromkeys(install.app_id for install in installs):
        for record in client.iter_attributions(app_id):
            if record.get("install_event_id") in wanted:
                records[record["install_event_id"]] = record
    progress(f"read {len(records):,} attribution records for {len(installs):,} installs")

    return build_report(
        source=log.source,
        url=client.base_url,
        rows=len(log),
        attributed_rows=log.attributed_row_count,
        apps=apps,
        apps_created=apps_created,
        installs=installs,
        records=records,
        sent=sent,
    )


def send_events(
    log: ClickLog,
    client: IngestionClient,
    *,
    batch_size: int,
    progress: Callable[[str], None] = lambda message: None,
) -> SendStats:
    """Send every event of the log in time order, ``batch_size`` events per request, one request at a time.

    Requests go one after another because the service attributes an install
    from the touches it already has: sending batches in parallel could let an
    install arrive before its click.
    """
    stats = SendStats()
    requests_before = client.requests
    retries_before = client.retries
    total = log.event_count
    started = time.perf_counter()
    last_progress = started
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        offset = stats.events - len(batch)
        result = client.post_events(batch)
        stats.accepted += result.accepted
        stats.duplicates += result.duplicates
        stats.rejected += result.rejected
        for error in result.errors:
            index = error.get("index")
            stats.errors.append({**error, "index": offset + index if isinstance(index, int) else index})
        batch.clear()

    for event in log.events_in_time_order():
        batch.append(event)
        if event["event_type"] == "install":
            stats.installs += 1
        else:
            stats.clicks += 1
        if len(batch) >= batch_size:
            flush()
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_INTERVAL_SECONDS:
                progress(f"sent {stats.events:,} of {total:,} events")
                last_progress = now
    if batch:
        flush()

    stats.seconds = time.perf_counter() - started
    stats.requests = client.requests - requests_before
    stats.retries = client.retries - retries_before
    return stats
