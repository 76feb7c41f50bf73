"""Results on disk: JSON under bench/results/, and a section of BENCHMARKS.md per benchmark.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
in BENCHMARKS.md, so re-running one refreshes its tables and leaves the others alone.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\nEvery section below was written by the command it names; "
    "rerun it to refresh.\n"
)


def machine() -> str:
    """One line describing where the numbers came from."""
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.system()} {platform.machine()}, {cpus} cores, {mem:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def command() -> str:
    """The command line that is running, as a user would type it."""
    return "python -m " + " ".join(
        [sys.modules["__main__"].__spec__.name if sys.modules["__main__"].__spec__ else sys.argv[0]]
        + [shlex.quote(a) for a in sys.argv[1:]]
    )


def save_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


def write_section(
    name: str, title: str, body: str, *, path: Path = BENCHMARKS, header: str = HEADER
) -> None:
    """Replace (or append) this benchmark's section of BENCHMARKS.md (or of ``path``)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command()}`  \nMachine: {machine()}  \nRun: {stamp}\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->"
    )
    text = path.read_text() if path.exists() else header
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section + "\n")
    )
    path.write_text(text)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
