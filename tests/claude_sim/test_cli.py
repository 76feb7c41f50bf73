"""``python -m claude_sim`` serves the API over HTTP; flags and config files become SimConfig."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from claude_sim.__main__ import main
from tests.conftest import free_port


def test_cli_serves_the_readme_example() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "claude_sim",
            "--profile",
            "tier1",
            "--port",
            str(port),
            "--speed",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = json.dumps(
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "Add a pricing section"}],
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/messages",
            data=body,
            method="POST",
            headers={
                "x-api-key": "sk-local",
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            },
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    payload = json.loads(reply.read())
                    headers = reply.headers
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert payload["type"] == "message"
        assert payload["usage"]["output_tokens"] > 0
        assert headers["anthropic-ratelimit-requests-limit"] == "50"
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_flags_exit_with_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--limit", "sonnet=fast"])
    assert exc.value.code == 2
    assert "POOL=RPM,ITPM,OTPM" in capsys.readouterr().err


def test_custom_profile_without_limits_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text("profile: custom\nlimits:\n  sonnet: {rpm: 5, itpm: 1000, otpm: 500}\n")
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    assert "needs limits for pools" in capsys.readouterr().err
