"""Property-based checks of every operation of the OpenAPI document (schemathesis): no 5xx,
and every response conforms to the documented status codes, content types and schemas.

The operations are walked in one test (schemathesis' pytest loader does not run under this
pytest), each with its own small hypothesis budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Api, start

EXAMPLES = 4
"""Examples per operation: enough to reach the validation paths, small enough for CI."""


@pytest.fixture
def schema_api(seeded_db: Path, tmp_path: Path) -> Iterator[Api]:
    yield from start(seeded_db, tmp_path)


def test_every_operation_conforms(schema_api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", schema_api.client.app)
    headers = schema_api.headers("admin")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        check()
        checked.append(operation.label)
    assert len(checked) >= 27
