"""``--store`` URLs of the Redis backend and the redis-py clients they give.

``redis://[USER:PASSWORD@]HOST:PORT/DB`` (or ``rediss://`` for TLS) names one
server; ``redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]`` names
any nodes of a Redis Cluster, from which the client learns the others. The
query parameter ``prefix`` sets the prefix of every key (default ``umg``), so
several deployments or test runs can share one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.asyncio.retry import Retry

from ingestion.store.redis_keys import DEFAULT_PREFIX, check_prefix

SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379


class StoreUrlError(ValueError):
    """A ``--store`` URL is invalid; the message names the part and how to fix it."""


@dataclass(frozen=True)
class RedisTarget:
    """Connection target of the Redis store, parsed from its URL."""

    cluster: bool
    nodes: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None
    tls: bool
    prefix: str

    def describe(self) -> str:
        """Return the URL without credentials, for logs."""
        scheme = "rediss" if self.tls else "redis"
        if self.cluster:
            scheme += "+cluster"
        hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.nodes)
        return f"{scheme}://{hosts}" + ("" if self.cluster else f"/{self.db}")


def is_redis_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def parse_store_url(url: str) -> RedisTarget:
    """Parse a ``redis://`` or ``redis+cluster://`` URL; raise StoreUrlError naming the bad part."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in SCHEMES:
        raise StoreUrlError(
            f"--store {url!r}: scheme must be one of {', '.join(SCHEMES)}, "
            "as in redis://127.0.0.1:6379/0 or redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
        )
    cluster = scheme.endswith("+cluster")
    tls = scheme.startswith("rediss")
    parts = urlsplit("redis://" + rest)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        user_text, has_password, password_text = credentials.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if has_password else None
    if not netloc:
        raise StoreUrlError(f"--store: no HOST:PORT in the {scheme}:// URL; add one, as in {scheme}://127.0.0.1:6379")
    nodes = tuple(_parse_node(text) for text in netloc.split(","))
    if not cluster and len(nodes) > 1:
        raise StoreUrlError(
            "--store: a redis:// URL names one server; list several nodes with redis+cluster://HOST:PORT,HOST:PORT"
        )

    db = 0
    path = parts.path.strip("/")
    if path:
        if cluster:
            raise StoreUrlError("--store: a Redis Cluster has only database 0; remove the /DB part of the URL")
        if not path.isdigit():
            raise StoreUrlError(f"--store: database {path!r} is not a number; use /0 to /15, as in redis://HOST:PORT/0")
        db = int(path)

    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - {"prefix"})
    if unknown:
        raise StoreUrlError(f"--store: unknown URL parameter {unknown[0]!r}; the only one is prefix")
    prefix = options.get("prefix", [DEFAULT_PREFIX])[-1]
    try:
        check_prefix(prefix)
    except ValueError as error:
        raise StoreUrlError(f"--store: {error}") from None
    return RedisTarget(cluster, nodes, db, username, password, tls, prefix)


def _parse_node(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port_text = text[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise StoreUrlError(f"--store: node {text!r} has no host; write HOST:PORT")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StoreUrlError(f"--store: port of node {text!r} is not a TCP port from 1 to 65535")
    return host, int(port_text)


def connect(target: RedisTarget, *, socket_timeout: float, connect_timeout: float) -> Redis | RedisCluster:
    """Return a client; it connects on first use (a cluster client on ``initialize()``)."""
    # redis-py resends a command once after a dropped connection. That is
    # safe for both batch scripts: the read only reserves unused sequence
    # numbers, and the commit recognises its own token.
    common = dict(
        username=target.username,
        password=target.password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        ssl=target.tls,
    )
    if target.cluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            **common,
        )
    host, port = target.nodes[0]
    return Redis(host=host, port=port, db=target.db, health_check_interval=30, **common)
