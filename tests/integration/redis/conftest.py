"""Redis backends for the store tests: the shared server and a cluster started here.

``redis`` is database 12 of the Redis server on 127.0.0.1:6379, with a key
prefix of this test session; its keys are deleted at the end. ``cluster`` is a
three-master Redis Cluster that the session starts on free loopback ports and
stops at the end. Each store gets its own key prefix, so no test reads
another's apps or events.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from ingestion.model import AppSettings
from ingestion.store.redis import RedisSettings, RedisStore
from tests.integration.redis.redis_servers import (
    SHARED_REDIS,
    RedisClusterProcesses,
    delete_prefix,
    redis_binaries_missing,
)
from tests.unit.ingestion.helpers import APP_ID, Harness, register

SHARED_DB = 12
BACKENDS = ("redis", "cluster")


@pytest.fixture(scope="session")
def session_prefix() -> Iterator[str]:
    prefix = f"umgtest-{secrets.token_hex(4)}-"
    yield prefix
    delete_prefix(*SHARED_REDIS, SHARED_DB, prefix)


@pytest.fixture(scope="session")
def shared_redis() -> None:
    client = redis.Redis(*SHARED_REDIS, socket_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"the Redis server on {SHARED_REDIS[0]}:{SHARED_REDIS[1]} does not answer: {error}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[RedisClusterProcesses]:
    missing = redis_binaries_missing()
    if missing:
        pytest.fail(f"cannot start a Redis Cluster: {missing}")
    processes = RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster"))
    try:
        processes.start()
        yield processes
    finally:
        processes.stop()


_store_numbers = itertools.count()


def new_store_url(request, backend: str) -> str:
    """Return a URL on ``backend`` (redis or cluster) with a key prefix no other store uses."""
    prefix = f"{request.getfixturevalue('session_prefix')}{next(_store_numbers)}-"
    if backend == "cluster":
        return request.getfixturevalue("cluster").url(prefix)
    request.getfixturevalue("shared_redis")
    return f"redis://{SHARED_REDIS[0]}:{SHARED_REDIS[1]}/{SHARED_DB}?prefix={prefix}"


@pytest.fixture
def backend(request) -> str:
    """The backend of the test's stores; parametrize with indirect=True to choose it."""
    return getattr(request, "param", "redis")


@pytest.fixture
async def make_store(request, backend) -> AsyncIterator:
    """Return an async factory of started Redis stores, each with its own keys unless ``url`` is given."""
    stores: list[RedisStore] = []

    async def factory(url: str | None = None, **settings) -> RedisStore:
        store = RedisStore(url or new_store_url(request, backend), RedisSettings(**settings))
        await store.start()
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.stop()


@pytest.fixture(params=BACKENDS)
async def make_harness(request, make_store) -> AsyncIterator:
    """The attribution-rule tests' harness factory, on a Redis server or a cluster."""
    backend_name = request.param

    async def factory(*, limits=None, data_dir=None, **settings) -> Harness:
        if limits is not None or data_dir is not None:
            raise TypeError("limits and data_dir configure the embedded store; a Redis store has neither")
        settings.setdefault("app_id", APP_ID)
        settings.setdefault("platform", "android")
        app = AppSettings(**settings)
        store = await make_store(new_store_url(request, backend_name))
        await register(store, app)
        return Harness(store, app)

    yield factory


@pytest.fixture
async def harness(make_harness) -> Harness:
    """An android app with the default windows."""
    return await make_harness()
