"""The gateway's logs as one JSON object per line, and the line every generation ends with.

Every ``nocode.*`` logger writes through one handler per process (a replica, the keeper):
time, level, logger, message, and the context a call passes in ``extra``: job id, call id
(an upstream call's), tenant, key id (the key's fingerprint; never the key), agent and,
at a generation's end, its outcome, duration, tokens and cost. The user's text is never
logged: a line says how long the instruction was, not what it said. ``log_format: text``
keeps plain lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

from serve_app.store import JobRecord

LogFormat = Literal["json", "text"]
CONTEXT = (
    "job_id",
    "call_id",
    "tenant",
    "key_id",
    "agent",
    "outcome",
    "error_type",
    "duration_s",
    "instruction_chars",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cost_usd",
)
"""The only record attributes a line carries besides its message: nothing else a caller
attaches (a request body, a header) can reach the log."""
ROOT = "nocode"


class JSONLineFormatter(logging.Formatter):
    """One JSON object per record: the standard fields and the known context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {k: getattr(record, k) for k in CONTEXT if hasattr(record, k)}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logs(fmt: LogFormat) -> None:
    """Send the ``nocode`` loggers to stderr in ``fmt``, once per process (Ray collects a
    worker's stderr into its logs and the dashboard)."""
    logger = logging.getLogger(ROOT)
    handler = next((h for h in logger.handlers if getattr(h, "nocode", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.nocode = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    plain = logging.Formatter("%(levelname)s %(name)s -- %(message)s")
    handler.setFormatter(JSONLineFormatter() if fmt == "json" else plain)


def generation_line(job: JobRecord, status: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the line that ends a generation carries."""
    line: dict[str, Any] = {
        "job_id": job.job_id,
        "tenant": job.tenant,
        "key_id": job.key_id,
        "outcome": status,
        "duration_s": round(time.time() - job.created_at, 3),
        "instruction_chars": len(str(job.request.get("instruction", ""))),
    }
    total = (data.get("usage") or {}).get("total")
    if total:
        line |= {k: total.get(k, 0) for k in CONTEXT if k in total}
    if status != "succeeded":
        line["error_type"] = data.get("type")
    return line
