"""Errors the tracker returns to clients, each with its HTTP status and a stable code."""

from __future__ import annotations


class TrackerError(Exception):
    """An error that a client caused or can act on; the message names the value and the fix."""

    status_code = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_body(self) -> dict:
        body: dict = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(TrackerError):
    status_code = 422
    code = "invalid_input"


class NotFound(TrackerError):
    status_code = 404
    code = "not_found"


class Conflict(TrackerError):
    status_code = 409
    code = "conflict"


class Unauthorized(TrackerError):
    status_code = 401
    code = "unauthorized"


class PayloadTooLarge(TrackerError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(TrackerError):
    status_code = 415
    code = "unsupported_media_type"


class IngestionUnavailable(TrackerError):
    """The ingestion service is unreachable or timed out, so the client may retry later."""

    status_code = 503
    code = "ingestion_unavailable"
    retry_after_seconds = 10


class IngestionFailed(TrackerError):
    """The ingestion service returned an error status or a body the tracker cannot parse."""

    status_code = 502
    code = "ingestion_failed"
