"""Reading a request body within the size limit, gzip included."""

from __future__ import annotations

import zlib

from fastapi import HTTPException, Request

JSON_TYPES = frozenset(("application/json", "text/json", ""))
NDJSON_TYPES = frozenset(("application/x-ndjson", "application/ndjson", "application/jsonlines"))


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_limited_body(request: Request, max_bytes: int) -> bytes:
    """Return the decoded body; 413 past ``max_bytes`` before or after gunzip, 415 for other encodings."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise HTTPException(415, f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {max_bytes} bytes; split the batch")

    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise HTTPException(413, f"body exceeds the limit of {max_bytes} bytes; split the batch")
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding != "gzip":
        return body

    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        decoded = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise HTTPException(400, f"body is not valid gzip ({error}); compress the whole body with gzip") from None
    if len(decoded) > max_bytes or decompressor.unconsumed_tail:
        raise HTTPException(
            413, f"body decompresses to more than the limit of {max_bytes} bytes; split the batch"
        )
    if not decompressor.eof:
        raise HTTPException(400, "gzip body is truncated; send the complete compressed body")
    return decoded
