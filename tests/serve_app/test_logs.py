"""The gateway's logs: one JSON object per line, a line per generation, no key or user text."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from serve_app.logs import JSONLineFormatter, generation_line
from tests.serve_app.conftest import TENANT_KEYS, Gateway, generate, new_job, user


def test_a_line_carries_the_known_context_and_nothing_else_attached() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONLineFormatter())
    logger = logging.getLogger("nocode.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        extra = {"job_id": "job_1", "tenant": "acme", "body": {"instruction": "secret"}}
        logger.warning("store slow for %s", "job_1", extra=extra)
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["message"] == "store slow for job_1"
    assert (line["level"], line["job_id"], line["tenant"]) == ("WARNING", "job_1", "acme")
    assert "body" not in line
    assert "secret" not in out.getvalue()


def test_the_generation_line_has_outcome_tokens_and_cost_but_not_the_instruction() -> None:
    job = new_job(request={"instruction": "Make the hero say HUSH-7781"}, key_id="key-abc")
    usage = {"total": {"calls": 6, "input_tokens": 900, "output_tokens": 300, "cost_usd": 0.02}}
    line = generation_line(job, "succeeded", {"usage": usage})
    assert line["outcome"] == "succeeded"
    assert (line["calls"], line["input_tokens"], line["cost_usd"]) == (6, 900, 0.02)
    assert line["key_id"] == "key-abc"
    assert line["instruction_chars"] == len("Make the hero say HUSH-7781")
    assert "HUSH" not in json.dumps(line)
    failed = generation_line(job, "failed", {"type": "agent_output_invalid", "message": "x"})
    assert failed["error_type"] == "agent_output_invalid"


@pytest.mark.ray
def test_each_generation_ends_with_one_json_line_in_the_replicas_log(gateway: Gateway) -> None:
    import ray

    marker = f"MARK{uuid.uuid4().hex[:8]}"
    body = {"instruction": f"Create a landing page for {marker} bakery", "user_id": user()}
    reply = generate(gateway, "logged", {**body, "stream": False})
    job_id = reply.json()["job_id"]
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not lines:
        for path in logs.glob("worker-*.err"):
            for raw in path.read_text(errors="replace").splitlines():
                if job_id in raw and '"outcome"' in raw:
                    lines.append(json.loads(raw[raw.index("{") :]))
        time.sleep(2)
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["outcome"] == "succeeded"
    assert line["tenant"] == "acme"
    assert line["key_id"].startswith("key-")
    assert line["input_tokens"] > 0
    assert line["cost_usd"] > 0
    everything = "".join(p.read_text(errors="replace") for p in logs.glob("worker-*"))
    assert marker not in everything, "the user's text reached a log"
    assert TENANT_KEYS["acme"] not in everything, "a key reached a log"
