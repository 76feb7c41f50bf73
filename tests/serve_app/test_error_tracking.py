"""Sentry, pointed at a local HTTP endpoint: an unexpected error is reported once, tagged
and scrubbed; with no DSN nothing is sent."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from serve_app.error_tracking import scrub_text

ROOT = Path(__file__).resolve().parents[2]
# A job failing in a way the gateway did not foresee, logged the way jobs.py logs it.
FAILING_JOB = """
import logging
import sentry_sdk
from serve_app.config import read_env
from serve_app.error_tracking import configure_error_tracking
from serve_app.logs import configure_logs

configure_logs("json")
env = read_env()
print("on" if configure_error_tracking(env.sentry_dsn, env.sentry_environment) else "off")
log = logging.getLogger("nocode.jobs")
log.info("an ordinary line is not an error", extra={"job_id": "job_ok"})
try:
    raise RuntimeError("choked on 'make the hero pink and sparkly' with sk-ant-api03-abc")
except RuntimeError:
    log.exception(
        "job %s failed unexpectedly (error id %s)", "job_7", "err_1",
        extra={"job_id": "job_7", "tenant": "acme", "key_id": "key-0123456789ab",
               "error_id": "err_1", "body": "make the hero pink and sparkly"},
    )
sentry_sdk.flush(5)
"""


class Envelopes(BaseHTTPRequestHandler):
    received: list[list[dict[str, Any]]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        items = [json.loads(line) for line in raw.splitlines() if line.strip()]
        type(self).received.append(items)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_endpoint() -> Iterator[tuple[str, list[list[dict[str, Any]]]]]:
    Envelopes.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Envelopes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://public@127.0.0.1:{server.server_port}/1", Envelopes.received
    server.shutdown()
    server.server_close()


def run_failing_job(dsn: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    if dsn:
        env["SENTRY_DSN"] = dsn
    done = subprocess.run(
        [sys.executable, "-c", FAILING_JOB], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_unexpected_error_is_reported_once_tagged_and_scrubbed(
    sentry_endpoint: tuple[str, list[list[dict[str, Any]]]],
) -> None:
    dsn, received = sentry_endpoint
    assert run_failing_job(dsn) == "on"
    events = [item for envelope in received for item in envelope if "exception" in item]
    assert len(events) == 1, received
    (event,) = events
    assert event["tags"] == {
        "job_id": "job_7",
        "tenant": "acme",
        "key_id": "key-0123456789ab",
        "error_id": "err_1",
    }
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    sent = json.dumps(received)
    assert "pink and sparkly" not in sent, "the user's text left the process"
    assert "sk-ant-api03" not in sent, "a key left the process"
    assert "job_ok" not in sent, "an INFO line is not an error"
    assert all("vars" not in f for f in exception["stacktrace"]["frames"])


def test_without_a_dsn_nothing_is_sent(
    sentry_endpoint: tuple[str, list[list[dict[str, Any]]]],
) -> None:
    _, received = sentry_endpoint
    assert run_failing_job(None) == "off"
    assert received == []


def test_scrubbing_blanks_quoted_text_and_keys_but_keeps_the_rest() -> None:
    text = "KeyError 'layout_generator_section_3' for Bearer abc.def and key-0123456789ab"
    assert scrub_text(text) == "KeyError [redacted] for [redacted] and [redacted]"
    assert scrub_text("plain message, short 'id'") == "plain message, short 'id'"
