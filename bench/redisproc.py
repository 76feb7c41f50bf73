"""A throwaway ``redis-server`` process on loopback, for benchmarks and tests.

No password; no persistence unless asked (``appendonly``: every write logged, fsynced each
second, replayed on restart, as production runs it). It holds a run's broker, results or
test data and dies with it. Tests and the chaos benchmark kill and restart it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.simproc import free_port


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
    appendonly: bool = False
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
                "yes" if self.appendonly else "no",
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


@contextlib.contextmanager
def redis_server(*, appendonly: bool = False) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port for the length of the block."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make redis` installs it")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(binary, free_port(), Path(tmp), appendonly)
        server.start()
        try:
            yield server
        finally:
            server.stop()
