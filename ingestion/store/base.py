"""The store interface: what the ingestion service keeps and how it reads and writes it.

A backend owns the registered apps, the touches, the installs, the
attribution records and the duplicate filter. ``apply`` takes one app's
validated events as a whole batch, so a networked backend can fetch what the
batch needs and write what it produced in one round trip each way instead of
one per event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ingestion.engine import Outcome
from ingestion.events import Event
from ingestion.model import AppSettings, Record, StoredApp


class StoreUnavailable(RuntimeError):
    """The backend cannot be reached; the request may be retried later."""


@dataclass(frozen=True)
class RecordQuery:
    """Filters of ``GET /v1/attributions``; times in epoch seconds."""

    app_id: str
    since: float | None = None
    until: float | None = None
    network: str | None = None
    status: str | None = None
    limit: int = 100
    after_seq: int = 0


@dataclass(frozen=True)
class RevenueLine:
    network: str | None
    campaign: str | None
    currency: str
    amount: str
    events: int


class Store(ABC):
    """Backend of the ingestion service."""

    async def start(self) -> None:
        """Open connections or load saved state."""

    async def stop(self) -> None:
        """Save state and close connections; called once at shutdown."""

    @abstractmethod
    async def ready(self) -> bool:
        """Return True when the backend responds."""

    # Apps ---------------------------------------------------------------

    @abstractmethod
    async def create_app(self, app: StoredApp) -> bool:
        """Register ``app``; return False when its id is taken."""

    @abstractmethod
    async def get_app(self, app_id: str) -> StoredApp | None: ...

    @abstractmethod
    async def list_apps(self) -> list[StoredApp]: ...

    @abstractmethod
    async def replace_app(self, app: StoredApp) -> None:
        """Store new settings or a new key for an existing app."""

    @abstractmethod
    async def delete_app(self, app_id: str) -> bool:
        """Remove the app and revoke its key; return False when unknown."""

    @abstractmethod
    def app_by_key_id(self, key_id: str) -> StoredApp | None:
        """Look up an app by its ingest key's id without waiting on I/O."""

    @abstractmethod
    def cached_app(self, app_id: str) -> StoredApp | None:
        """Look up a registered app without waiting on I/O."""

    # Events -------------------------------------------------------------

    @abstractmethod
    async def apply(self, app: AppSettings, events: list[Event], now: float) -> Outcome:
        """Apply one app's validated events in order and make them durable.

        Returns only after the backend would keep the events across a restart.
        Raises ``StoreUnavailable`` when it cannot.
        """

    # Records ------------------------------------------------------------

    @abstractmethod
    async def list_records(self, query: RecordQuery) -> tuple[list[Record], int | None]:
        """Return matching records after ``query.after_seq`` and the seq to continue from."""

    @abstractmethod
    async def get_record(self, app_id: str, install_event_id: str) -> Record | None: ...

    @abstractmethod
    async def revenue(self, app_id: str) -> list[RevenueLine]:
        """Return in-app revenue by the network and campaign its device's install carried."""

    def entry_counts(self) -> dict[str, int]:
        """Return how many entries of each kind the store contains (for gauges)."""
        return {}
