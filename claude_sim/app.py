"""The HTTP face of the simulator: ``create_app(SimConfig)`` returns an ASGI app.

Routes: ``POST /v1/messages`` (plain and SSE), ``POST /v1/messages/count_tokens``,
``GET /v1/models[/{id}]``, and for benchmarks ``GET /sim/stats`` and ``POST /sim/reset``.
Drive it in-process with ``httpx2.ASGITransport(app=create_app(...))`` given to
``AsyncAnthropic(http_client=...)``, or serve it with ``python -m claude_sim``.
"""

from __future__ import annotations

import json
import logging
import secrets
from contextlib import aclosing
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from claude_sim.config import SimConfig
from claude_sim.engine import DroppedConnectionError, SimReply, SimulatedAPI, collect
from claude_sim.errors import (
    APIError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    RequestTooLargeError,
)
from claude_sim.request import API_VERSIONS, parse_json

log = logging.getLogger("claude_sim")


def _request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def _error_response(exc: APIError, request_id: str | None = None) -> JSONResponse:
    rid = request_id or _request_id()
    return JSONResponse(
        exc.body(rid), status_code=exc.status, headers={"request-id": rid, **exc.headers}
    )


class _Gate:
    """Checks every ``/v1`` call shares: key, API version, body size."""

    def __init__(self, config: SimConfig) -> None:
        self._keys = set(config.api_keys) if config.api_keys is not None else None
        self._max_bytes = config.max_request_bytes

    def api_key(self, request: Request) -> str:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            raise AuthenticationError("x-api-key header is required")
        if self._keys is not None and key not in self._keys:
            raise AuthenticationError("invalid x-api-key")
        return key

    def version(self, request: Request) -> str:
        version = request.headers.get("anthropic-version")
        if not version:
            raise InvalidRequestError("anthropic-version: header is required")
        if version not in API_VERSIONS:
            raise InvalidRequestError(
                f"anthropic-version: '{version}' is not a valid version; use one of "
                + ", ".join(API_VERSIONS)
            )
        return version

    async def body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise RequestTooLargeError("Request exceeds the maximum allowed number of bytes.")
        raw = await request.body()
        if len(raw) > self._max_bytes:
            raise RequestTooLargeError("Request exceeds the maximum allowed number of bytes.")
        return parse_json(raw)


class _SSEResponse(Response):
    """Sends a reply's events as SSE; a dropped-connection fault cuts the socket mid-stream."""

    def __init__(self, reply: SimReply, api: SimulatedAPI) -> None:
        super().__init__(
            status_code=200,
            media_type="text/event-stream",
            headers={**reply.headers, "cache-control": "no-cache"},
        )
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._reply = reply
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        self._api.stats.stream_opened()
        try:
            async with aclosing(self._reply.events) as events:
                async for name, data in events:
                    frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
        except DroppedConnectionError:
            return
        except OSError:
            return
        finally:
            self._api.stats.stream_closed()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _DroppedResponse(Response):
    """Headers and half a body, then the connection closes: a fault injected on a plain reply."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )


class _Routes:
    """The endpoints; an ``APIError`` raised by any of them becomes the API's error body."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.api = SimulatedAPI(config)
        self.gate = _Gate(config)

    async def messages(self, request: Request) -> Response:
        key = self.gate.api_key(request)
        version = self.gate.version(request)
        body = await self.gate.body(request)
        reply = self.api.messages(key, body, version)
        if body.get("stream") is True:
            return _SSEResponse(reply, self.api)
        try:
            message = await collect(reply)
        except DroppedConnectionError:
            return _DroppedResponse(
                b'{"id": "msg_partial", "type": "message", "content": [',
                headers={**reply.headers, "content-length": "1024"},
                media_type="application/json",
            )
        except APIError as exc:
            # Failed after the reply began: the error keeps the reply's request id.
            return _error_response(exc, reply.request_id)
        return JSONResponse(message, headers=reply.headers)

    async def count_tokens(self, request: Request) -> Response:
        self.gate.api_key(request)
        version = self.gate.version(request)
        body = await self.gate.body(request)
        return JSONResponse(
            {"input_tokens": self.api.count_tokens(body, version)},
            headers={"request-id": _request_id()},
        )

    def model_info(self, model_id: str) -> dict[str, Any]:
        spec = self.api.model(model_id)
        return {
            "type": "model",
            "id": spec.id,
            "display_name": spec.display_name,
            "created_at": spec.created_at,
            "lifecycle": spec.lifecycle,
            "max_input_tokens": spec.context_window,
            "max_tokens": spec.max_output_tokens,
        }

    async def list_models(self, request: Request) -> Response:
        self.gate.api_key(request)
        limit = _int_param(request, "limit", 20)
        ids = [m.id for m in self.config.models if m.lifecycle != "retired"]
        after = request.query_params.get("after_id")
        before = request.query_params.get("before_id")
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        if before in ids:
            ids = ids[: ids.index(before)]
        page = ids[: max(1, min(limit, 1000))]
        return JSONResponse(
            {
                "data": [self.model_info(i) for i in page],
                "has_more": len(ids) > len(page),
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        )

    async def get_model(self, request: Request) -> Response:
        self.gate.api_key(request)
        return JSONResponse(self.model_info(request.path_params["model_id"]))

    async def stats(self, request: Request) -> Response:
        snapshot = self.api.stats.snapshot(self.api.limiter.levels())
        elapsed = self.api.elapsed_s()
        return JSONResponse(
            {
                **snapshot,
                "elapsed_s": round(elapsed, 3),
                "cache_entries": len(self.api.cache),
                "otpm_mode": self.config.otpm_mode,
                "profile": self.config.profile,
            }
        )

    async def reset(self, request: Request) -> Response:
        self.api.reset()
        return JSONResponse({"reset": True})


def _int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, str(default)))
    except ValueError:
        raise InvalidRequestError(f"{name}: Input should be a valid integer") from None


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _error_response(exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_response(NotFoundError("Not found"))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    error = InvalidRequestError(f"Method {request.method} not allowed on {request.url.path}")
    response = _error_response(error)
    response.status_code = 405
    return response


def create_app(config: SimConfig | None = None) -> Starlette:
    """The simulator as an ASGI app; its state lives in ``app.state.api``."""
    routes = _Routes(config or SimConfig())
    app = Starlette(
        routes=[
            Route("/v1/messages", routes.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", routes.count_tokens, methods=["POST"]),
            Route("/v1/models", routes.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", routes.get_model, methods=["GET"]),
            Route("/sim/stats", routes.stats, methods=["GET"]),
            Route("/sim/reset", routes.reset, methods=["POST"]),
        ],
        exception_handlers={APIError: _api_error, 404: _not_found, 405: _not_allowed},
    )
    app.state.api = routes.api
    return app
