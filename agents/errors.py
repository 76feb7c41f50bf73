"""Failures of the page pipeline itself; they carry no HTTP status (a caller maps them).

Each has a ``type`` for the caller's error reply or event and pickles with its fields, so
it crosses a Ray replica hop intact. A pydantic ``ValidationError`` never leaves the
library: an invalid answer becomes ``AgentOutputError`` with readable problems.

    PipelineError                    pipeline_error
    ├── ClaudeAPIError               upstream_error (upstream_status)
    └── AgentOutputError             agent_output_invalid (agent, problems, usage)
"""

from __future__ import annotations

from typing import Any, ClassVar


def _rebuild(cls: type[PipelineError], message: str, fields: dict[str, Any]) -> PipelineError:
    return cls(message, **fields)


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    type: ClassVar[str] = "pipeline_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))

    def to_json(self) -> dict[str, Any]:
        """The error as JSON: ``type``, ``message`` and the fields that are set."""
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        body.update({k: v for k, v in self.fields.items() if v is not None})
        return body


class ClaudeAPIError(PipelineError):
    """The Claude API refused the call, or could not be reached, and retrying did not help."""

    type = "upstream_error"


class AgentOutputError(PipelineError):
    """An agent's answer stayed invalid after the repair calls."""

    type = "agent_output_invalid"
