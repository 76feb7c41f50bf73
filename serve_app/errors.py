"""Every failure the gateway reports, as one tree; the exception handlers turn it into JSON.

Each class fixes an HTTP status and a ``type``; an instance carries a message, the seconds
after which retrying may help (``retry_after_s``) and any details the contract names. The
same object is a JSON error reply (``{"error": to_json()}``) before a stream starts and
the stream's ``error`` event after. Errors pickle with all their fields, so they cross a
Ray actor or replica hop intact.

    GatewayError                     500 internal_error
    ├── RequestError                 4xx: the caller can fix it
    │   ├── InvalidRequestError      422 invalid_request (detail)
    │   ├── AuthenticationError      401 authentication_error
    │   ├── NotFoundError            404 not_found
    │   ├── MethodNotAllowedError    405 method_not_allowed
    │   ├── PayloadTooLargeError     413 payload_too_large
    │   ├── RateLimitedError         429 rate_limited (retry_after_s)
    │   ├── QuotaExceededError       429 quota_exceeded (retry_after_s)
    │   └── QueueFullError           429 queue_full (retry_after_s)
    ├── DependencyUnavailableError   503: retry after retry_after_s
    │   ├── StoreUnavailableError    503 store_unavailable
    │   └── KeeperUnavailableError   503 keeper_unavailable
    ├── InternalError                500 internal_error (id, which the log line carries)
    └── GenerationError              an accepted generation failed: its stream's error event
        ├── CancelledError           499 cancelled
        ├── BudgetTimeoutError       503 budget_timeout (retry_after_s)
        └── StageFailedError         503 stage_failed (agent)

Failures of the pipeline itself (``agents.errors``: the Claude API refused, an agent's
answer stayed invalid) carry no status; they end a generation as its ``error`` event.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

JSONValue = Any
"""A value that JSON can carry."""


def _rebuild(
    cls: type[GatewayError],
    message: str,
    retry_after_s: float | None,
    headers: dict[str, str],
    details: dict[str, JSONValue],
) -> GatewayError:
    error = cls(message, retry_after_s=retry_after_s, **details)
    error.headers = headers
    return error


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, **details: JSONValue
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.details = details
        self.headers: dict[str, str] = {}

    def with_headers(self, headers: dict[str, str]) -> Self:
        """HTTP headers to send with this error (``RateLimit``, ``RateLimit-Policy``)."""
        self.headers = dict(headers)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), self.message, self.retry_after_s, self.headers, self.details),
        )

    def to_json(self) -> dict[str, JSONValue]:
        """The ``error`` object of a JSON reply or of an SSE ``error`` event."""
        body: dict[str, JSONValue] = {"type": self.type, "message": self.message}
        if self.retry_after_s is not None:
            body["retry_after_s"] = round(self.retry_after_s, 1)
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body

    def response_headers(self) -> dict[str, str]:
        """Headers of the JSON reply: ``Retry-After`` in whole seconds, when it applies."""
        headers = dict(self.headers)
        if self.retry_after_s is not None:
            headers.setdefault("Retry-After", str(max(1, math.ceil(self.retry_after_s))))
        return headers


class RequestError(GatewayError):
    status = 400
    type = "bad_request"


class InvalidRequestError(RequestError):
    status = 422
    type = "invalid_request"


class AuthenticationError(RequestError):
    status = 401
    type = "authentication_error"


class NotFoundError(RequestError):
    status = 404
    type = "not_found"


class MethodNotAllowedError(RequestError):
    status = 405
    type = "method_not_allowed"


class PayloadTooLargeError(RequestError):
    status = 413
    type = "payload_too_large"


class RateLimitedError(RequestError):
    status = 429
    type = "rate_limited"


class QuotaExceededError(RequestError):
    status = 429
    type = "quota_exceeded"


class QueueFullError(RequestError):
    status = 429
    type = "queue_full"


class DependencyUnavailableError(GatewayError):
    status = 503
    type = "dependency_unavailable"

    def __init__(
        self, message: str, *, retry_after_s: float | None = 5.0, **details: JSONValue
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)


class StoreUnavailableError(DependencyUnavailableError):
    """The state store (Redis, or the store actor) cannot be reached or refused a command."""

    type = "store_unavailable"


class KeeperUnavailableError(DependencyUnavailableError):
    """The budget keeper actor does not answer (it is restarting, or its node died)."""

    type = "keeper_unavailable"


class InternalError(GatewayError):
    """A bug of ours: the reply names an ``id`` that the logged traceback carries."""

    status = 500
    type = "internal_error"


class GenerationError(GatewayError):
    status = 500
    type = "generation_failed"


class CancelledError(GenerationError):
    status = 499
    type = "cancelled"


class BudgetTimeoutError(GenerationError):
    status = 503
    type = "budget_timeout"


class StageFailedError(GenerationError):
    status = 503
    type = "stage_failed"
