"""A bounded schemathesis run against the local stack, from handlers/openapi.yaml.

Every operation gets up to 25 generated requests, valid and invalid
(derandomized: the same requests on every run), sent with a valid token of
a tenant of its own so that what it creates never mixes with other tests'.
Each response must not be a server error and must be what the description
documents: a listed status code, its content type and its schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.local_stack import LocalStack, local_stack_fixture  # noqa: F401
from tests.openapi_document import OPENAPI_PATH

FUZZ_TENANT = "fuzz-tenant"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(OPENAPI_PATH)


@pytest.fixture(scope="module", autouse=True)
def remove_fuzzed_schedules(local_stack: LocalStack) -> Iterator[None]:
    """Deletes the schedules the run created, so no later engine run sends them."""
    yield
    listed = local_stack.call("GET", "/analytics/schedules", FUZZ_TENANT).json()
    for schedule in listed["schedules"]:
        local_stack.call("DELETE", f"/analytics/schedules/{schedule['id']}", FUZZ_TENANT)


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_described(case: schemathesis.Case, local_stack: LocalStack) -> None:
    case.call_and_validate(
        base_url=local_stack.base_url,
        headers=local_stack.auth(FUZZ_TENANT),
        checks=CHECKS,
    )
