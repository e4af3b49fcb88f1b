"""State that one Locust process shares between its users, listeners and shape.

Locust imports every module of `loadtest/` a second time under its bare file name. Shared
state therefore lives here and is always reached as `loadtest.state`, and the bare-named copy
stays unused.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import gevent.lock

from loadtest.apps import IngestionFeed, SetupError, build_feed
from loadtest.generator import BatchTemplate
from loadtest.recorder import CampaignRecorder, EventTally
from loadtest.settings import Settings
from loadtest.verdict import Verdict

logger = logging.getLogger("loadtest")

# Sends whose expected attributions the tracker user can hand in as a customer's reference.
_RECENT_SENDS = 8


class ProcessState:
    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.tally = EventTally()
        self.recorder: CampaignRecorder | None = None  # only in the master or the only process
        self.verdict: Verdict | None = None
        self.run_started = False
        # (template, sequence) of recent sends. Expanding one costs a decode of the batch, which
        # only the tracker user pays when it hands in a reconciliation.
        self.recent_sends: collections.deque[tuple[BatchTemplate, int]] = collections.deque(maxlen=_RECENT_SENDS)
        self._feed: IngestionFeed | None = None
        self._setup_error: SetupError | None = None
        self._lock = gevent.lock.Semaphore()
        # The tracker customer that owns this process's apps, created by the first tracker user.
        self.customer_id: str | None = None
        self.customer_lock = gevent.lock.Semaphore()

    def ingestion_feed(self, client: Any) -> IngestionFeed:
        """Return this process's feed, registering its apps on the first call.

        The first user to start does the registration while later ones wait. A failed setup is
        raised again to every user instead of being retried by each.
        """
        with self._lock:
            if self._feed is not None:
                return self._feed
            if self._setup_error is not None:
                raise self._setup_error
            if self.settings is None:
                raise SetupError("the load-test settings were not read; run Locust with -f loadtest/")
            try:
                self._feed = build_feed(client, self.settings)
            except SetupError as error:
                logger.error("load test setup failed: %s", error)
                self._setup_error = error
                raise
            apps = ", ".join(f"{app.app_id} ({app.platform})" for app in self._feed.apps)
            logger.info("ingestion users send %d-event batches for %s", self.settings.batch_size, apps)
            return self._feed

    @property
    def feed(self) -> IngestionFeed | None:
        """The ingestion feed once the first ingestion user has set it up, else None."""
        return self._feed

    @property
    def setup_failed(self) -> bool:
        return self._setup_error is not None

    def start_run(self) -> None:
        """Forget the counts and verdict of a previous run in this process."""
        self.tally.reset()
        self.verdict = None
        self.run_started = True
        if self.recorder is not None:
            self.recorder.run_started()


STATE = ProcessState()
