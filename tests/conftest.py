"""Fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from bench.redisproc import RedisServer
from bench.simproc import free_port


def started_redis(tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    """A new redis-server subprocess on a free loopback port, running."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    server = RedisServer(binary, free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server subprocess on a free loopback port for the whole session."""
    server = started_redis(tmp_path_factory)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis, running and emptied again after the test."""
    redis_server.start()
    yield redis_server.url
    # A failure test may have left it stopped.
    redis_server.start()
    redis_server.flush()
