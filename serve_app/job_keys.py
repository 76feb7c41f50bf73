"""What identifies a generation: its dedup key, its result-cache key, its request.

Both keys start with the tenant, so that no tenant can ever attach to or be answered from
another's job or result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from agents.page import Page
from agents.pipeline import GenerationRequest
from agents.planner import Group

PIPELINE_VERSION = "1"
"""Part of every result key: bump it when the pipeline's output changes."""
RESULT_CACHE = "generation"
CANCELS = "cancel"


def normalise(instruction: str) -> str:
    return " ".join(instruction.lower().split())


def page_hash(page: Page | None) -> str:
    return hashlib.sha256(page.model_dump_json().encode() if page else b"new").hexdigest()[:16]


def dedup_key(tenant: str, user: str, page_id: str, instruction: str, page: Page | None) -> str:
    """Same tenant, user, page, instruction and page content: the same job."""
    raw = f"{tenant}\0{user}\0{page_id}\0{normalise(instruction)}\0{page_hash(page)}"
    return "dedup:" + hashlib.sha256(raw.encode()).hexdigest()


def result_key(tenant: str, request: GenerationRequest) -> str:
    """Tenant, page id, page content, normalised instruction, forced groups, version."""
    groups = ",".join(request.groups or ())
    raw = (
        f"{tenant}\0{request.page_id}\0{page_hash(request.page)}\0"
        f"{normalise(request.instruction)}\0{groups}\0{PIPELINE_VERSION}"
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def to_request(body: Mapping[str, Any]) -> GenerationRequest:
    """The pipeline's request from a stored generate body."""
    page = Page.model_validate(body["page"]) if body.get("page") else None
    groups: tuple[Group, ...] | None = tuple(body["agents"]) if body.get("agents") else None
    return GenerationRequest(body["page_id"], body["instruction"], page, groups)
