"""The gateway's errors as the contract's JSON replies, registered once on the app.

``GatewayError`` becomes ``{"error": to_json()}`` with its status and ``Retry-After``;
Starlette's own 404/405 and FastAPI's validation errors take the same shape; anything
else is a bug of ours: ``500 internal_error`` whose ``id`` the logged traceback carries.
No route catches errors itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.errors import (
    GatewayError,
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    RequestError,
)

log = logging.getLogger("nocode.errors")


def error_response(error: GatewayError) -> JSONResponse:
    """The JSON reply of ``error``."""
    return JSONResponse(
        {"error": error.to_json()}, status_code=error.status, headers=error.response_headers()
    )


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds: dict[int, type[RequestError]] = {404: NotFoundError, 405: MethodNotAllowedError}
    error = kinds.get(exc.status_code, RequestError)(str(exc.detail))
    reply = error_response(error)
    reply.status_code = exc.status_code
    return reply


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = jsonable_encoder(exc.errors())
    return error_response(InvalidRequestError("the request is not valid", detail=detail))


class CatchUnexpected:
    """ASGI middleware: an exception no handler knows becomes a logged ``500`` with an id.

    Starlette's own 500 handler re-raises after replying, which under Serve counts as a
    second failure; this one replies and stops. A stream that already started cannot
    change its status: an SSE stream gets the ``error`` event instead, and every started
    reply is ended, so the client is not left waiting.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started: dict[str, bool] = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                types = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
                started["sse"] = any(v.startswith(b"text/event-stream") for v in types)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            error_id = f"err_{uuid.uuid4().hex[:16]}"
            log.exception(
                "unexpected error on %s (error id %s)",
                scope.get("path"),
                error_id,
                extra={"error_id": error_id},
            )
            error = InternalError("an unexpected error; it was logged", id=error_id).to_json()
            if not started:
                await _send_json_500(send, error)
                return
            tail = f"event: error\ndata: {json.dumps(error)}\n\n" if started["sse"] else ""
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "http.response.body", "body": tail.encode()})


async def _send_json_500(send: Send, error: dict[str, object]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler above on ``app``; call once, where the app is made."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(CatchUnexpected)
