"""Every failure the service reports, as one tree; each carries an HTTP status and a type.

Caller mistakes (4xx) are kept apart from upstream failures (5xx) so clients know whether
to change the request or retry it. Errors pickle with their fields, so they cross Ray
actor boundaries intact; a pydantic ``ValidationError`` never does (it becomes
``InvalidRequestError`` or ``AgentOutputError`` with readable messages).

    NocodeError                      500 internal_error
    ├── RequestError                 4xx: the caller can fix it
    │   ├── InvalidRequestError      422 invalid_request
    │   ├── AuthenticationError      401 authentication_error
    │   ├── NotFoundError            404 not_found
    │   ├── PayloadTooLargeError     413 payload_too_large
    │   ├── RateLimitedError         429 rate_limited (retry_after_s)
    │   └── QueueFullError           429 queue_full (retry_after_s)
    ├── CancelledError               499 cancelled
    └── UpstreamError                5xx: retrying later may help
        ├── ClaudeAPIError           502 upstream_error (upstream_status)
        ├── AgentOutputError         502 agent_output_invalid (agent, problems)
        ├── BudgetTimeoutError       503 budget_timeout (retry_after_s)
        └── StageFailedError         503 stage_failed (agent)
"""

from __future__ import annotations

from typing import Any, ClassVar


def _rebuild(cls: type[NocodeError], message: str, fields: dict[str, Any]) -> NocodeError:
    return cls(message, **fields)


class NocodeError(Exception):
    """Base of every error the service raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.headers: dict[str, str] = {}

    def with_headers(self, headers: dict[str, str]) -> NocodeError:
        """HTTP headers to send with this error (RateLimit, Retry-After)."""
        self.headers = dict(headers)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))

    @property
    def retry_after_s(self) -> float | None:
        value = self.fields.get("retry_after_s")
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of a JSON reply or an SSE ``error`` event."""
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        body.update({k: v for k, v in self.fields.items() if v is not None})
        return body


class RequestError(NocodeError):
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


class PayloadTooLargeError(RequestError):
    status = 413
    type = "payload_too_large"


class RateLimitedError(RequestError):
    status = 429
    type = "rate_limited"


class QueueFullError(RequestError):
    status = 429
    type = "queue_full"


class CancelledError(NocodeError):
    status = 499
    type = "cancelled"


class UpstreamError(NocodeError):
    status = 502
    type = "upstream_error"


class ClaudeAPIError(UpstreamError):
    status = 502
    type = "upstream_error"


class AgentOutputError(UpstreamError):
    status = 502
    type = "agent_output_invalid"


class BudgetTimeoutError(UpstreamError):
    status = 503
    type = "budget_timeout"


class StageFailedError(UpstreamError):
    status = 503
    type = "stage_failed"
