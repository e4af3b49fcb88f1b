"""One ingestion service per test module, on loopback with its data in a temporary folder.

A module sets ``SERVICE_OPTIONS`` to start its service with other flags, such
as ``{"max_touches": 5}`` for ``--max-touches 5``. Tests that share a service
register their own apps, so they do not see each other's events.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.ingestion.helpers import Api, run_ingestion
from tests.support.services import RunningService


@pytest.fixture(scope="module")
def service(request, tmp_path_factory) -> Iterator[RunningService]:
    options = getattr(request.module, "SERVICE_OPTIONS", {})
    with run_ingestion(tmp_path_factory.mktemp("ingestion"), **options) as running:
        yield running


@pytest.fixture(scope="module")
def api(service) -> Iterator[Api]:
    client = Api(service)
    yield client
    client.close()
