"""The error trees: every error pickles whole, and the handlers answer the contract's JSON."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from agents.errors import PipelineError
from serve_app.error_handlers import install_error_handlers
from serve_app.errors import (
    GatewayError,
    QueueFullError,
    RateLimitedError,
    StoreUnavailableError,
)


def every_subclass(root: type[Exception]) -> Iterator[type[Exception]]:
    yield root
    for child in root.__subclasses__():
        yield from every_subclass(child)


@pytest.mark.parametrize("cls", list(every_subclass(GatewayError)), ids=lambda c: c.__name__)
def test_every_gateway_error_pickles_with_its_fields(cls: type[GatewayError]) -> None:
    error = cls("it broke", retry_after_s=7.5, agent="review").with_headers({"RateLimit": "x"})
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert (again.message, again.retry_after_s, again.details) == (
        "it broke",
        7.5,
        {"agent": "review"},
    )
    assert again.headers == {"RateLimit": "x"}
    assert again.to_json() == error.to_json()
    assert again.status == cls.status


@pytest.mark.parametrize("cls", list(every_subclass(PipelineError)), ids=lambda c: c.__name__)
def test_every_pipeline_error_pickles_with_its_fields(cls: type[PipelineError]) -> None:
    error = cls("no valid answer", agent="styles", problems=["props.title: required"])
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert again.to_json() == {
        "type": cls.type,
        "message": "no valid answer",
        "agent": "styles",
        "problems": ["props.title: required"],
    }
    assert not hasattr(again, "status"), "the pipeline's errors carry no HTTP status"


def app_raising() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimitedError("slow down", retry_after_s=2.2).with_headers(
            {"RateLimit-Policy": "5;w=60"}
        )

    @app.get("/full")
    async def full() -> None:
        raise QueueFullError("booked", retry_after_s=30)

    @app.get("/store")
    async def store() -> None:
        raise StoreUnavailableError("Redis at redis://127.0.0.1:1/0 is unavailable")

    @app.get("/bug")
    async def bug() -> None:
        raise ZeroDivisionError("a bug of ours")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"
            raise ZeroDivisionError("mid-stream")

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app_raising(), raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield http


async def test_gateway_errors_become_json_with_status_and_retry_after(
    client: httpx2.AsyncClient,
) -> None:
    limited = await client.get("/limited")
    assert limited.status_code == 429
    assert limited.json() == {
        "error": {"type": "rate_limited", "message": "slow down", "retry_after_s": 2.2}
    }
    assert limited.headers["retry-after"] == "3"
    assert limited.headers["ratelimit-policy"] == "5;w=60"
    full = await client.get("/full")
    assert (full.status_code, full.json()["error"]["type"]) == (429, "queue_full")
    down = await client.get("/store")
    assert down.status_code == 503
    assert down.json()["error"]["type"] == "store_unavailable"
    assert down.headers["retry-after"] == "5"


async def test_routes_and_methods_that_do_not_exist_are_json(client: httpx2.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found")
    wrong = await client.post("/limited")
    assert (wrong.status_code, wrong.json()["error"]["type"]) == (405, "method_not_allowed")


async def test_a_bug_is_a_500_whose_id_the_log_line_carries(
    client: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nocode.errors"):
        reply = await client.get("/bug")
    assert reply.status_code == 500
    error = reply.json()["error"]
    assert error["type"] == "internal_error"
    assert "a bug of ours" not in error["message"], "internals stay in the log"
    assert error["id"].startswith("err_")
    logged = [r for r in caplog.records if error["id"] in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None


async def test_a_failure_after_the_stream_started_is_its_last_event(
    client: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nocode.errors"):
        reply = await client.get("/stream")
    assert reply.status_code == 200
    first, error = reply.text.split("\n\n")[:2]
    assert first == "data: 1"
    assert error.startswith("event: error\ndata: ")
    data = json.loads(error.split("data: ", 1)[1])
    assert data["type"] == "internal_error"
    assert data["id"].startswith("err_")
    assert any("mid-stream" in str(r.exc_info) for r in caplog.records)
