"""Fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _redis_command(port: int, command: bytes) -> bytes:
    """Send one inline command to the Redis on `port` and return the first line of its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(command + b"\r\n")
        return conn.recv(256).split(b"\r\n", 1)[0]


@dataclass
class RedisServer:
    """A throwaway redis-server on a fixed port, which tests may kill and start again."""

    binary: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server unless it runs, and wait until it answers PING."""
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if _redis_command(self.port, b"PING") == b"+PONG":
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def flush(self) -> None:
        """Forget every key."""
        if _redis_command(self.port, b"FLUSHALL") != b"+OK":
            raise RuntimeError("redis-server refused FLUSHALL")


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
