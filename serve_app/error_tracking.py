"""Optional error tracking with Sentry: every unexpected error, once, tagged and scrubbed.

On when ``SENTRY_DSN`` is set, off (nothing sent, nothing loaded into the request path)
when not. What reaches Sentry is what the gateway logs at ERROR with a traceback (an
unexpected error in a route or a job, with its error id); the log record's context
becomes the event's tags: job id, tenant, key id (a fingerprint), agent, error id. No
request bodies, headers, local variables or breadcrumbs are sent, and quoted text and
anything shaped like a key are blanked in messages and exception values, since either
may carry a user's instruction or a secret.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.integrations.logging import LoggingIntegration

TAGS = ("job_id", "tenant", "key_id", "agent", "error_id")
SECRET = re.compile(r"(sk-ant-[\w-]+|Bearer\s+\S+|key-[\w-]{6,})")
QUOTED = re.compile(r"""(['"])(?:(?!\1).){12,}\1""")
REDACTED = "[redacted]"


def scrub_text(text: str) -> str:
    """``text`` with keys and quoted strings (where user text travels) blanked."""
    return QUOTED.sub(REDACTED, SECRET.sub(REDACTED, text))


def scrub(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The event as it may leave: context lifted into tags, text scrubbed, the rest dropped."""
    extra = event.pop("extra", {}) or {}
    tags = event.setdefault("tags", {})
    for name in TAGS:
        if extra.get(name) is not None:
            tags[name] = str(extra[name])
    for name in ("request", "breadcrumbs", "user", "contexts"):
        event.pop(name, None)
    entry = event.get("logentry") or {}
    if "message" in entry:
        entry["message"] = scrub_text(str(entry["message"]))
    entry.pop("params", None)
    if "formatted" in entry:
        entry["formatted"] = scrub_text(str(entry["formatted"]))
    for exception in (event.get("exception") or {}).get("values", []):
        exception["value"] = scrub_text(str(exception.get("value", "")))
        for frame in (exception.get("stacktrace") or {}).get("frames", []):
            frame.pop("vars", None)
    return event


def configure_error_tracking(dsn: SecretStr | None, environment: str | None = None) -> bool:
    """Start reporting to Sentry when ``dsn`` is set (once per process); whether it is on."""
    if dsn is None:
        return False
    if sentry_sdk.is_initialized():
        return True
    sentry_sdk.init(
        dsn=dsn.get_secret_value(),
        environment=environment,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        max_breadcrumbs=0,
        traces_sample_rate=0.0,
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)],
        before_send=scrub,  # type: ignore[arg-type]
    )
    return True
