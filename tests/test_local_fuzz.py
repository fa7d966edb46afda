"""Schemathesis against the local stack, as an API consumer's CI runs it, from handlers/openapi.yaml.

The run is the `schemathesis run` command (the engine, checks and report a
consumer uses) with every check (`--checks all`: server errors, status codes,
content types, response schemas and headers, schema-valid requests accepted,
schema-violating requests rejected, 405 with `Allow` for undeclared methods,
...) and the examples, coverage, fuzzing and stateful phases (the stateful
phase follows the document's links). A fixed seed and a bounded number of
examples per operation send the same requests on every run; FUZZ_SEED picks
another seed locally. A failure prints schemathesis' report: each failing
case with a curl command that reproduces it.

Requests carry a token of a tenant of the run's own, so what it creates never
mixes with other tests' data; the schedules it leaves are deleted afterwards.
The last test breaks the document on purpose and shows the run fails: each
broken copy runs only the phase that meets the disagreement first (the
documented examples answer with the renamed field; the fuzzing phase sends
periods the copy allows), without shrinking, so it costs seconds, not a whole run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from handlers.shared.routes import SIGNED_LINK_ROUTES
from tests.local_stack import LocalStack, local_stack_fixture  # noqa: F401
from tests.openapi_document import OPENAPI_PATH, document

# Not yet understood (left open in issue 20): under libfaketime (`make test-later`) the
# schemathesis run against the stack stops progressing; it passes on the real clock.
pytestmark = pytest.mark.skipif("FAKETIME" in os.environ, reason="hangs under libfaketime")

FUZZ_TENANT = "fuzz-tenant"
SEED = int(os.environ.get("FUZZ_SEED", "18"))
# Per operation and phase; the coverage phase's deterministic cases come on top.
MAX_EXAMPLES = 10
PHASES = "examples,coverage,fuzzing,stateful"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def schemathesis_run(
    stack: LocalStack,
    spec: Path,
    tenant: str,
    workdir: Path,
    *options: str,
    phases: str = PHASES,
) -> subprocess.CompletedProcess[str]:
    """`schemathesis run` over `spec` against the stack, every check, the given phases
    (all four unless told); in `workdir`, where the command keeps its cache of
    failures (`.schemathesis/`)."""
    command = [
        str(SCHEMATHESIS),
        "run",
        str(spec),
        "--url",
        stack.base_url,
        "--header",
        f"Authorization: Bearer {stack.token(tenant)}",
        "--checks",
        "all",
        "--phases",
        phases,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        *options,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=workdir)


def delete_schedules(stack: LocalStack, tenant: str) -> None:
    """Deletes the schedules a run created, so no later engine run sends them."""
    listed = stack.call("GET", "/analytics/schedules", tenant).json()
    for schedule in listed["schedules"]:
        stack.call("DELETE", f"/analytics/schedules/{schedule['id']}", tenant)


@pytest.fixture(scope="module", autouse=True)
def remove_fuzzed_schedules(local_stack: LocalStack) -> Iterator[None]:
    yield
    delete_schedules(local_stack, FUZZ_TENANT)


def test_the_api_answers_exactly_as_described(local_stack: LocalStack, tmp_path: Path) -> None:
    run = schemathesis_run(local_stack, OPENAPI_PATH, FUZZ_TENANT, tmp_path)
    assert run.returncode == 0, f"schemathesis (seed {SEED}) found failures:\n{run.stdout}"
    # The one warning allowed: the signed-link routes refuse (403) every token
    # schemathesis can make, since only a link signed by the stack's key is genuine;
    # schemathesis reports that as failed authentication. Any other operation
    # answering only 401/403 would mean the run's bearer token was refused.
    refused = set(re.findall(r"^\s+- ([A-Z]+ \S+)$", run.stdout, re.MULTILINE))
    assert refused <= {route.key for route in SIGNED_LINK_ROUTES}, run.stdout
    assert "No issues found" in run.stdout or "Authentication failed" in run.stdout, run.stdout
    assert "Failures:" not in run.stdout and "FAILURES" not in run.stdout, run.stdout
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, run.stdout


def broken_usage_document(tmp_path: Path, change: str) -> Path:
    """A copy of the document that disagrees with the handlers about GET /analytics/usage."""
    spec = yaml.safe_load(yaml.safe_dump(document()))
    if change == "response":  # the handler answers `period`, the copy calls it `window`
        usage = spec["components"]["schemas"]["Usage"]
        usage["properties"]["window"] = usage["properties"].pop("period")
        usage["required"] = ["window" if name == "period" else name for name in usage["required"]]
    else:  # the copy takes any string as a period; the handler does not
        spec["components"]["schemas"]["Period"].pop("pattern")
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("change", "phase", "failure"),
    [
        ("response", "examples", "Response violates schema"),
        ("request", "fuzzing", "Schema-valid request rejected"),
    ],
)
def test_a_run_fails_when_the_document_and_a_handler_disagree(
    local_stack: LocalStack, tmp_path: Path, change: str, phase: str, failure: str
) -> None:
    spec = broken_usage_document(tmp_path, change)
    run = schemathesis_run(
        local_stack,
        spec,
        FUZZ_TENANT,
        tmp_path,
        "--include-operation-id",
        "getUsage",
        # The first failing case is proof enough: no time spent minimizing it.
        "--no-shrink",
        phases=phase,
    )
    assert run.returncode == 1, run.stdout
    assert failure in run.stdout, run.stdout
    # The report shows how to send the failing request again.
    assert "Reproduce with" in run.stdout and "curl -X GET" in run.stdout, run.stdout
