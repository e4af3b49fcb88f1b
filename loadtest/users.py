"""The simulated users: an SDK backend posting event batches, and a customer-success person.

Both classes are abstract here. `locustfile.py` defines the concrete classes that Locust runs,
so Locust never finds the same user twice when it loads every file of `loadtest/`.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
import random
import socket
import time
import urllib.parse

import msgspec
import gevent
from locust import FastHttpUser, task
from locust.runners import LocalRunner

from loadtest.apps import SetupError
from loadtest.pacing import SchedulePacer
from loadtest.recorder import EVENTS_ENDPOINT
from loadtest.settings import admin_token
from loadtest.state import STATE

logger = logging.getLogger("loadtest")


class BatchResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    errors: list[dict] = []


_decode_result = msgspec.json.Decoder(BatchResult).decode


def new_traceparent() -> str:
    """Return a W3C traceparent header value for a new sampled trace."""
    trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-01"


_IDLE_WAIT_S = 60.0
_WAIT_FOR_APPS_S = 15.0
_reported_setup_failure = False
# The statistics entry (name, method) of a failed setup; a master ends the run when it appears.
SETUP_FAILURE_ENTRY = ("ingestion apps", "SETUP")


def _report_setup_failure(environment, error: SetupError) -> None:
    """Count a failed setup once per process, and end a single-process run at once.

    Users of a worker stay idle instead. The failure reaches the master with the worker's next
    statistics report, and the campaign shape then ends the run.
    """
    global _reported_setup_failure
    if _reported_setup_failure:
        return
    _reported_setup_failure = True
    name, request_type = SETUP_FAILURE_ENTRY
    environment.events.request.fire(
        request_type=request_type, name=name, response_time=0, response_length=0,
        exception=error, context={},
    )
    if isinstance(environment.runner, LocalRunner):
        gevent.spawn(environment.runner.quit)


class IngestionUserBase(FastHttpUser):
    """Posts pre-built batches with fresh ids to POST /v1/events as fast as its pacing allows.

    Each event counted in a response adds to events per second. A 200 response with rejected
    events is a failure, because the generator only builds valid events.
    """

    abstract = True
    # One connection per user; a user sends one batch at a time.
    concurrency = 1

    def on_start(self) -> None:
        settings = STATE.settings
        self.feed = None
        self.traceparent = settings.traceparent
        rate = settings.paced_batch_rate()
        self._pacer = SchedulePacer(rate) if rate > 0 else None
        # Each batch's events count as sent since the previous counted response (see recorder).
        self._counted_since = STATE.tally.clock()
        try:
            self.feed = STATE.ingestion_feed(self.client)
        except SetupError as error:
            _report_setup_failure(self.environment, error)

    def wait_time(self) -> float:
        if self.feed is None:
            return _IDLE_WAIT_S
        return self._pacer.wait() if self._pacer is not None else 0

    @task
    def post_batch(self) -> None:
        if self.feed is None:
            return
        app, template, sequence, body = self.feed.next_batch()
        headers = app.headers
        if self.traceparent:
            headers = {**headers, "traceparent": new_traceparent()}
        with self.client.post(
            EVENTS_ENDPOINT, data=body, headers=headers, name=EVENTS_ENDPOINT, catch_response=True
        ) as response:
            if response.status_code != 200:
                return  # Locust records the HTTP error as the failure.
            try:
                result = _decode_result(response.content)
            except msgspec.DecodeError as error:
                response.failure(f"POST {EVENTS_ENDPOINT} returned an unexpected body: {error}")
                return
            self._counted_since = STATE.tally.add(
                result.accepted, result.duplicates, result.rejected, since=self._counted_since
            )
            STATE.recent_sends.append((template, sequence))
            if result.rejected:
                first = result.errors[0].get("error", "") if result.errors else ""
                field = first.split(":", 1)[0] or "unknown"
                # The failure name stays free of ids, so that Locust's error table stays short.
                response.failure(f"events rejected, first on field {field}")
                logger.warning(
                    "%d of %d events rejected for app %s; first: %s",
                    result.rejected, template.event_count, app.app_id, first,
                )


def _reachable(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=2):
            return True
    except OSError:
        return False


class TrackerUserBase(FastHttpUser):
    """A customer-success person's day in the tracker.

    Reads (customer lists, status pages, surveys, tickets) need no token. Writes (surveys,
    tickets, phase changes, reconciliations) happen only with UNMOGROWP_ADMIN_TOKEN set. The
    user creates one customer of its own for the apps the ingestion users send to, and hands in
    the generator's expected attributions of recent sends as that customer's reference.
    """

    abstract = True
    concurrency = 1
    _warned_unreachable = False

    def wait_time(self) -> float:
        return _IDLE_WAIT_S if self.idle else random.uniform(1, 5)

    def on_start(self) -> None:
        token = admin_token()
        self.admin_headers = {"Authorization": f"Bearer {token}"} if token else None
        self.customer_ids: list[str] = []
        self.own_customer: str | None = None
        self.tickets: list[tuple[str, str]] = []
        self.base = STATE.settings.tracker_host
        self.idle = not self.base or not _reachable(self.base)
        if self.idle:
            if not TrackerUserBase._warned_unreachable:
                logger.warning("the tracker at %r does not accept connections; tracker users stay idle", self.base)
                TrackerUserBase._warned_unreachable = True
            return
        self.list_customers()
        if self.admin_headers is not None:
            self._wait_for_apps()
            self._create_own_customer()

    def _url(self, path: str) -> str:
        return f"{self.base}{path}"

    def _create_own_customer(self) -> None:
        """Create the customer that owns this process's apps, or share the one another tracker user created.

        An app has one owner, so a second customer with the same apps would be rejected (409).
        """
        with STATE.customer_lock:
            if STATE.customer_id is None:
                STATE.customer_id = self._post_customer()
        if STATE.customer_id is not None:
            self.own_customer = STATE.customer_id
            self.customer_ids.append(STATE.customer_id)

    def _post_customer(self) -> str | None:
        """Create a customer with this process's apps; return its id, or None when the tracker rejected it."""
        feed = STATE.feed
        app_ids = [app.app_id for app in feed.apps] if feed is not None else []
        customer_id = f"loadtest-{random.getrandbits(32):08x}"
        body = {
            "customer_id": customer_id,
            "company_name": "Load Test Games Ltd",
            "app_ids": app_ids,
            "pilot": True,
            "kickoff_date": datetime.date.today().isoformat(),
            "currency": "USD",
            "previous_monthly_cost": "12000.00",
            "monthly_cost": "8500.00",
        }
        with self.client.post(
            self._url("/v1/customers"), json=body, headers=self.admin_headers,
            name="/v1/customers", catch_response=True,
        ) as response:
            if response.status_code == 201:
                return customer_id
        return None

    def _some_customer(self) -> str | None:
        return random.choice(self.customer_ids) if self.customer_ids else None

    def _wait_for_apps(self) -> None:
        """Wait up to 15 s until this process's ingestion users have registered their apps.

        The user's own customer lists those apps, so that its reconciliations can find the
        installs. A process that runs no ingestion users creates the customer without apps
        once the wait is over.
        """
        if not any(issubclass(cls, IngestionUserBase) for cls in self.environment.user_classes):
            return
        deadline = time.monotonic() + _WAIT_FOR_APPS_S
        while STATE.feed is None and not STATE.setup_failed and time.monotonic() < deadline:
            gevent.sleep(0.2)

    def _writable(self) -> bool:
        return not self.idle and self.admin_headers is not None and self.own_customer is not None

    @task(4)
    def list_customers(self) -> None:
        if self.idle:
            return
        response = self.client.get(self._url("/v1/customers?limit=100"), name="/v1/customers")
        if response.status_code == 200:
            try:
                items = msgspec.json.decode(response.content).get("items", [])
            except msgspec.DecodeError:
                return
            self.customer_ids = [item["customer_id"] for item in items if "customer_id" in item]

    @task(6)
    def view_status(self) -> None:
        customer_id = self._some_customer()
        if customer_id:
            self.client.get(self._url(f"/v1/customers/{customer_id}/status"), name="/v1/customers/{id}/status")

    @task(2)
    def view_customer(self) -> None:
        customer_id = self._some_customer()
        if customer_id:
            self.client.get(self._url(f"/v1/customers/{customer_id}"), name="/v1/customers/{id}")

    @task(2)
    def view_tickets(self) -> None:
        customer_id = self._some_customer()
        if customer_id:
            self.client.get(self._url(f"/v1/customers/{customer_id}/tickets"), name="/v1/customers/{id}/tickets")

    @task(1)
    def view_surveys(self) -> None:
        customer_id = self._some_customer()
        if customer_id:
            self.client.get(self._url(f"/v1/customers/{customer_id}/surveys"), name="/v1/customers/{id}/surveys")

    @task(1)
    def record_survey(self) -> None:
        if not self._writable():
            return
        self.client.post(
            self._url(f"/v1/customers/{self.own_customer}/surveys"),
            json={"score": random.randint(82, 100), "comment": "weekly check-in"},
            headers=self.admin_headers, name="/v1/customers/{id}/surveys",
        )

    @task(1)
    def open_or_close_ticket(self) -> None:
        if not self._writable():
            return
        if self.tickets and random.random() < 0.6:
            customer_id, ticket_id = self.tickets.pop(0)
            self.client.patch(
                self._url(f"/v1/customers/{customer_id}/tickets/{ticket_id}"), json={"status": "closed"},
                headers=self.admin_headers, name="/v1/customers/{id}/tickets/{ticket_id}",
            )
            return
        response = self.client.post(
            self._url(f"/v1/customers/{self.own_customer}/tickets"),
            json={"title": "SDK events arrive late on Android", "severity": random.choice(("low", "medium", "high"))},
            headers=self.admin_headers, name="/v1/customers/{id}/tickets",
        )
        if response.status_code == 201:
            try:
                self.tickets.append((self.own_customer, str(msgspec.json.decode(response.content)["ticket_id"])))
            except (msgspec.DecodeError, KeyError):
                pass

    @task(1)
    def advance_phase(self) -> None:
        if not self._writable():
            return
        response = self.client.get(
            self._url(f"/v1/customers/{self.own_customer}/phase"), name="/v1/customers/{id}/phase"
        )
        if response.status_code != 200:
            return
        phases = ("discovery", "setup", "launch", "live")
        current = msgspec.json.decode(response.content).get("phase") or "discovery"
        if current in phases and current != "live":
            self.client.put(
                self._url(f"/v1/customers/{self.own_customer}/phase"),
                json={"phase": phases[phases.index(current) + 1]},
                headers=self.admin_headers, name="/v1/customers/{id}/phase",
            )

    @task(1)
    def reconcile(self) -> None:
        """Hand in the expected attributions of a recent send as the customer's reference."""
        if not self._writable() or not STATE.recent_sends:
            return
        template, sequence = STATE.recent_sends[-1]
        _, expected = template.materialize(sequence)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(("install_event_id", "app_id", "network", "campaign"))
        for record in expected:
            writer.writerow((record.install_event_id, template.app_id, record.network or "", record.campaign or ""))
        self.client.post(
            self._url(f"/v1/customers/{self.own_customer}/reconciliations"),
            data=buffer.getvalue().encode(),
            headers={**self.admin_headers, "Content-Type": "text/csv"},
            name="/v1/customers/{id}/reconciliations",
        )
