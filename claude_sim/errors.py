"""API errors as the real Messages API reports them.

Every failure leaves the simulator as ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with the status the real API uses, so the SDK maps it to the same
exception class (``RateLimitError``, ``NotFoundError``, ``OverloadedError``...).

    APIError                     status  error.type
    ├── InvalidRequestError      400     invalid_request_error
    ├── AuthenticationError      401     authentication_error
    ├── NotFoundError            404     not_found_error
    ├── RequestTooLargeError     413     request_too_large
    ├── RateLimitError           429     rate_limit_error   (+ retry-after)
    ├── InternalServerError      500     api_error
    └── OverloadedError          529     overloaded_error
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """A failure with the status, type and message the real API would send."""

    status = 500
    error_type = "api_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def body(self, request_id: str) -> dict[str, Any]:
        """The JSON body of the error reply (or of a stream's ``error`` event)."""
        return {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": request_id,
        }


class InvalidRequestError(APIError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationError(APIError):
    status = 401
    error_type = "authentication_error"


class NotFoundError(APIError):
    status = 404
    error_type = "not_found_error"


class RequestTooLargeError(APIError):
    status = 413
    error_type = "request_too_large"


class RateLimitError(APIError):
    status = 429
    error_type = "rate_limit_error"

    def __init__(
        self, message: str, *, limit: str, retry_after_s: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers={**(headers or {}), "retry-after": str(retry_after_s)})
        self.limit = limit
        self.retry_after_s = retry_after_s


class InternalServerError(APIError):
    status = 500
    error_type = "api_error"


class OverloadedError(APIError):
    status = 529
    error_type = "overloaded_error"
