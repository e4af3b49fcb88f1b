"""A closed-loop HTTP/1.1 load generator on asyncio, for the benchmark.

Each of `connections` keep-alive connections sends one batch, waits for the response, and
sends the next, so the server always has that many requests in hand. Bodies come from the
generator's templates with fresh ids (one `bytes.join` per request), responses are parsed by
httptools, and latency is measured from the first byte written to the last byte read.

It is used instead of Locust or wrk because it measures more for one client core. It spends
less CPU per request than Locust (the benchmark reports the CPU share of both), and it times
each request without a statistics layer in between. wrk's Lua would have to rebuild a 380 KB
body per request to keep ids fresh, or cycle a fixed set of bodies and so turn the run into a
duplicate-detection benchmark.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import httptools
import msgspec

from loadtest.percentile import nearest_rank


class _Counts(msgspec.Struct):
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


_decode_counts = msgspec.json.Decoder(_Counts).decode


class HttpError(RuntimeError):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.chunks: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpError(f"invalid HTTP response: {error}"))

    def connection_lost(self, exc) -> None:
        self._fail(HttpError(f"connection closed by the server ({exc})"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.chunks)
        self.chunks = []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), body))

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.writelines((head, body))
        return await self.waiter


@dataclasses.dataclass
class LoadResult:
    """Figures of a load run inside its measurement window."""

    seconds: float
    requests: int
    events: int
    errors: int
    latencies_ms: list[float]
    first_error: str | None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, fraction: float) -> float | None:
        """Return the latency percentile in ms (nearest rank), or None without requests."""
        return nearest_rank(self.latencies_ms, fraction)


# A batch source returns (request head without Content-Length, body); the head ends in "\r\n".
BatchSource = Callable[[], tuple[bytes, bytes]]


async def run_load(
    host: str,
    port: int,
    next_request: BatchSource,
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
) -> LoadResult:
    """Drive `connections` closed loops for warmup + duration; measure only the duration."""
    loop = asyncio.get_running_loop()
    protocols = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(_Connection, host, port)
        protocols.append(protocol)

    started = time.perf_counter()
    window_start = started + warmup_s
    window_end = window_start + duration_s
    result = LoadResult(duration_s, 0, 0, 0, [], None)

    async def drive(connection: _Connection) -> None:
        while True:
            head, body = next_request()
            request_head = head + b"Content-Length: %d\r\n\r\n" % len(body)
            sent = time.perf_counter()
            if sent >= window_end:
                return
            try:
                status, payload = await connection.request(request_head, body)
            except HttpError as error:
                result.errors += 1
                result.first_error = result.first_error or str(error)
                return
            done = time.perf_counter()
            if done < window_start or done > window_end:
                continue
            result.requests += 1
            result.latencies_ms.append((done - sent) * 1000.0)
            if status != 200:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}: {payload[:200]!r}"
                continue
            counts = _decode_counts(payload)
            result.events += counts.accepted + counts.duplicates + counts.rejected
            if counts.rejected and result.first_error is None:
                result.first_error = f"events rejected: {payload[:300]!r}"

    try:
        await asyncio.gather(*(drive(protocol) for protocol in protocols))
    finally:
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
    return result
