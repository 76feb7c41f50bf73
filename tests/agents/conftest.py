"""Fixtures for the agents package: the shipped catalog and a local S3 emulator."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.catalog import Catalog, load_catalog
from tests.conftest import free_port

S3_CREDENTIALS = {
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
    "aws_region": "us-east-1",
}


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The catalog shipped with the package."""
    return load_catalog()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port for the whole session, stopped afterwards."""
    port = free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    command = [str(moto_server)] if moto_server.exists() else [sys.executable, "-m", "moto.server"]
    process = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on port {port}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def index_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A catalog index built once for the session."""
    return str(tmp_path_factory.mktemp("catalog") / "index.lance")


@dataclass
class Wiring:
    """A pipeline on claude_sim, and its parts to rewire."""

    pipeline: Any
    runner: Any
    config: Any
    index: Any
    sim: Any
    """The simulator's ASGI app (its state in ``sim.state.api``)."""

    def pipeline_with(self, call: Any) -> Any:
        """The same pipeline, calling agents through ``call``."""
        from agents.pipeline import Pipeline

        return Pipeline(self.config, call, catalog_index=self.index)


@pytest.fixture
def make_pipeline(index_uri: str) -> Callable[..., Wiring]:
    """A pipeline wired to claude_sim in-process, through the real SDK and runner."""
    from agents.config import PipelineConfig
    from agents.pipeline import Pipeline
    from agents.retrieval import CatalogIndex, RetrievalConfig
    from agents.runner import AgentRunner, sdk_send
    from claude_sim import SimConfig, create_app
    from tests.claude_sim.conftest import sdk

    def build(sim: dict[str, Any] | None = None, **config: Any) -> Wiring:
        settings = PipelineConfig.model_validate(
            {"retrieval": RetrievalConfig(uri=index_uri), **config}
        )
        app = create_app(
            SimConfig.model_validate({"speed": 200, "profile": "tier4", **(sim or {})})
        )
        runner = AgentRunner(settings, sdk_send(sdk(app)))
        index = CatalogIndex.open(settings.retrieval)
        pipeline = Pipeline(settings, runner.run, catalog_index=index)
        return Wiring(pipeline, runner, settings, index, app)

    return build
