"""Run an ASGI app on uvicorn with uvloop and httptools.

``ConnectionCountingProtocol`` extends uvicorn's httptools protocol so that a
gauge follows the number of open client connections exactly: it rises when a
connection is made and falls when it is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 15


def connection_counting_protocol(on_change: Callable[[int], None]) -> type[HttpToolsProtocol]:
    """Return a protocol class that calls ``on_change(+1)`` and ``on_change(-1)``."""

    class ConnectionCountingProtocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            on_change(1)
            super().connection_made(transport)

        def connection_lost(self, exc) -> None:
            on_change(-1)
            super().connection_lost(exc)

    return ConnectionCountingProtocol


def serve(
    app,
    *,
    host: str,
    port: int,
    on_connection_change: Callable[[int], None] | None = None,
    graceful_shutdown_seconds: int = GRACEFUL_SHUTDOWN_SECONDS,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully."""
    http_protocol: str | type = "httptools"
    if on_connection_change is not None:
        http_protocol = connection_counting_protocol(on_connection_change)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http_protocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
    )
    server = uvicorn.Server(config)
    logger.info("listening", extra={"host": host, "port": port})
    server.run()
