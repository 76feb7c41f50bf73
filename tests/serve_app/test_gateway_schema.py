"""The running gateway against its own OpenAPI document, fuzzed by schemathesis.

Every operation gets bounded, derandomised examples, valid and invalid (bodies, path and
query parameters), as tenant wayne, whose quota lets only a few become real generations.
No reply may be a ``5xx`` or differ from the document (status, content type, headers and
body schema), and invalid input must be refused with a ``4xx``.

The examples are drawn here with ``as_strategy`` rather than through schemathesis's
pytest loader, whose lazy fixture schemas do not run under pytest 9.2 (it sets a node
attribute pytest no longer has).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serve_app.api_schema import finished
from serve_app.bodies import GenerateBody, SeedBody
from serve_app.ingress import app
from tests.serve_app.conftest import TENANT_KEYS, Gateway

pytestmark = pytest.mark.ray

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
DOCUMENT = finished(app.openapi(), (GenerateBody, SeedBody))
CASES = [
    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode.value}")
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # Invalid input needs an input: a route without parameters or body has none to break.
    if mode is GenerationMode.POSITIVE or operation.get("parameters") or path.endswith("/page")
]
EXAMPLES = 12
"""Per operation and mode: enough to reach every kind of field, few enough for CI."""


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_reply_is_what_the_schema_says(
    gateway: Gateway, method: str, path: str, mode: GenerationMode
) -> None:
    served = schemathesis.openapi.from_url(gateway.url + "/openapi.json", timeout=30)
    operation = served[path][method]
    headers = {"authorization": f"Bearer {TENANT_KEYS['wayne']}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def replies_conform(case: Any) -> None:
        reply = case.call_and_validate(
            base_url=gateway.url, headers=headers, checks=CHECKS, timeout=120
        )
        statuses.append(reply.status_code)

    statuses: list[int] = []
    replies_conform()
    if mode is GenerationMode.POSITIVE:  # valid input got past the key and the validation
        assert [s for s in statuses if s not in (401, 422)], statuses
