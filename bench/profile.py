"""Where a process spends its CPU: py-spy samples it for a while, then a short summary.

py-spy (from PyPI) reads a running Python process from outside, so the gateway runs
unchanged while it is sampled. It keeps only samples in which a thread was running, so
the count of samples over the samples due is how busy the process was. Each sample is
put down to the package of its innermost frame: our code, Serve, Ray's core, FastAPI and
Starlette, uvicorn, asyncio and threads.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RATE_HZ = 50
FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
PACKAGES = (
    ("gateway", ("serve_app/", "agents/", "claude_facts/")),
    ("Serve", ("ray/serve/",)),
    ("Ray core", ("ray/",)),
    ("FastAPI, Starlette", ("fastapi/", "starlette/", "anyio/")),
    ("uvicorn", ("uvicorn/", "httptools/")),
    ("asyncio, threads", ("asyncio/", "threading.py", "concurrent/", "selectors.py")),
)


def package_of(path: str) -> str:
    """The summary's name for the package a source file belongs to."""
    for name, markers in PACKAGES:
        if any(marker in path for marker in markers):
            return name
    return "other"


def summarise(collapsed: str, seconds: float) -> dict[str, Any]:
    """py-spy's collapsed stacks (``frame;frame;... count`` per line) as busy share,
    share of samples by package, and the five busiest innermost frames."""
    by_package: collections.Counter[str] = collections.Counter()
    by_frame: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        innermost = FRAME.match(stack.split(";")[-1])
        function, path = (innermost["function"], innermost["file"]) if innermost else ("?", "")
        total += int(count)
        by_package[package_of(path)] += int(count)
        short = re.sub(r".*(site-packages|python3\.\d+)/", "", path)
        by_frame[f"{function} ({short})"] += int(count)
    share = {name: round(n / max(1, total), 3) for name, n in by_package.most_common()}
    return {
        "busy": round(total / (RATE_HZ * seconds), 3),
        "samples": total,
        "by_package": share,
        "top_frames": [[f, round(n / max(1, total), 3)] for f, n in by_frame.most_common(5)],
    }


class Sampler:
    """py-spy recording one process for ``seconds``; ``result()`` waits and summarises."""

    def __init__(self, pid: int, seconds: float) -> None:
        # Installed beside this interpreter, which need not be on PATH.
        beside = Path(sys.executable).parent / "py-spy"
        binary = str(beside) if beside.exists() else shutil.which("py-spy")
        if binary is None:
            raise RuntimeError("py-spy is not installed: it comes with the bench extras")
        self._seconds = seconds
        self._out = Path(tempfile.mkdtemp()) / "stacks.txt"
        command = [binary, "record", "-p", str(pid), "-d", str(round(seconds))]
        command += ["-r", str(RATE_HZ), "--nonblocking", "-f", "raw", "-o", str(self._out)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def result(self) -> dict[str, Any]:
        self._process.wait()
        text = self._out.read_text() if self._out.exists() else ""
        shutil.rmtree(self._out.parent, ignore_errors=True)
        return summarise(text, self._seconds)
