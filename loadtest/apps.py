"""The apps a load test sends events for, with their ingest keys and pre-built batches.

With UNMOGROWP_ADMIN_TOKEN set, each Locust process registers one Android and one iOS app of
its own (`POST /v1/apps`) with a random id, so runs never collide and a fresh service needs no
setup. Ingest keys are shown once, so a process cannot reuse another's apps. Without the admin
token, UNMOGROWP_INGEST_KEY and UNMOGROWP_LOADTEST_APP_ID name one app registered beforehand.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import secrets
from typing import Any

import msgspec

from loadtest.generator import BatchTemplate, TemplatePool, build_template
from loadtest.settings import (
    ADMIN_TOKEN_ENV,
    APP_ID_ENV,
    INGEST_KEY_ENV,
    PLATFORM_ENV,
    Settings,
    admin_token,
)

APPS_ENDPOINT = "/v1/apps"
PLATFORMS = ("android", "ios")
_REGISTRATION_ATTEMPTS = 3


class SetupError(RuntimeError):
    """Raised when the load test cannot send events; the message gives the cause and the fix."""


@dataclasses.dataclass(frozen=True)
class AppFeed:
    """One app's ingest key and the batches the ingestion users send for it."""

    app_id: str
    platform: str
    headers: dict[str, str]
    pool: TemplatePool


class IngestionFeed:
    """The apps of one process, cycled batch by batch."""

    def __init__(self, apps: list[AppFeed]) -> None:
        self.apps = apps
        self._cycle = itertools.cycle(apps)

    def next_batch(self) -> tuple[AppFeed, BatchTemplate, int, bytes]:
        """Return the next app, template, sequence number and rendered body."""
        app = next(self._cycle)
        template, sequence, body = app.pool.next_body()
        return app, template, sequence, body


def _register(client: Any, platform: str, token: str) -> tuple[str, str]:
    """Register an app through a Locust client; return (app_id, ingest key)."""
    for _ in range(_REGISTRATION_ATTEMPTS):
        app_id = f"loadtest-{platform}-{secrets.token_hex(4)}"
        with client.post(
            APPS_ENDPOINT,
            json={"app_id": app_id, "platform": platform},
            headers={"Authorization": f"Bearer {token}"},
            name=APPS_ENDPOINT,
            catch_response=True,
        ) as response:
            if response.status_code == 409:
                # Another run took the id; a 409 is no failure of the service.
                response.success()
                continue
            if response.status_code == 0:
                # No HTTP response at all: Locust gives the connection error instead of a status.
                response.failure(f"registering an app failed: {response.error}")
                raise SetupError(
                    f"POST {APPS_ENDPOINT} got no response from --host {client.base_url!r} ({response.error}). "
                    "Check that the ingestion service runs there and that --host starts with http:// or https://."
                )
            if response.status_code != 201:
                detail = (response.text or "")[:300]
                response.failure(f"registering an app failed with HTTP {response.status_code}")
                raise SetupError(
                    f"POST {APPS_ENDPOINT} failed with HTTP {response.status_code}: {detail}. "
                    f"Check that {ADMIN_TOKEN_ENV} is the service's admin token and --host is the ingestion service."
                )
            try:
                document = msgspec.json.decode(response.content)
                return document["app"]["app_id"], document["ingest_key"]
            except (msgspec.DecodeError, KeyError, TypeError) as error:
                response.failure("registering an app returned an unexpected body")
                raise SetupError(f"POST {APPS_ENDPOINT} returned an unexpected body ({error}); expected app and ingest_key") from None
    raise SetupError(f"POST {APPS_ENDPOINT}: every app id tried was taken ({_REGISTRATION_ATTEMPTS} attempts)")


def _headers(ingest_key: str, content_type: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {ingest_key}",
        "Content-Type": content_type,
        # The response is a few bytes of JSON, so compressing it would only cost the service time.
        "Accept-Encoding": "identity",
    }


def _feed_for(app_id: str, platform: str, ingest_key: str, settings: Settings) -> AppFeed:
    templates = [
        build_template(app_id, platform, settings.batch_size, batch_format=settings.batch_format)
        for _ in range(settings.templates_per_app)
    ]
    return AppFeed(app_id, platform, _headers(ingest_key, templates[0].content_type), TemplatePool(templates))


def build_feed(client: Any, settings: Settings) -> IngestionFeed:
    """Register this process's apps (or read a pre-registered one) and build their batches.

    Raises SetupError when neither the admin token nor a pre-registered app is configured, or
    when the service rejects the registration.
    """
    token = admin_token()
    if token is not None:
        apps = []
        for platform in PLATFORMS:
            app_id, key = _register(client, platform, token)
            apps.append(_feed_for(app_id, platform, key, settings))
        return IngestionFeed(apps)

    key = os.environ.get(INGEST_KEY_ENV)
    app_id = os.environ.get(APP_ID_ENV)
    if not key or not app_id:
        raise SetupError(
            f"{ADMIN_TOKEN_ENV} is not set, so the load test cannot register its own apps. "
            f"Set it to the ingestion service's admin token, or set {INGEST_KEY_ENV} and {APP_ID_ENV} "
            f"(and {PLATFORM_ENV}, android or ios) for an app registered beforehand."
        )
    platform = os.environ.get(PLATFORM_ENV, "android")
    if platform not in PLATFORMS:
        raise SetupError(f"{PLATFORM_ENV}: must be android or ios, got {platform!r}")
    return IngestionFeed([_feed_for(app_id, platform, key, settings)])
