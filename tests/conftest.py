import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# No test may reach a real AWS account: fake credentials, a fixed region, and
# no endpoint override leaking in from a developer's shell.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
)
for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)

# The one Hypothesis profile every property test runs under. A property test
# must never fail on speed (CI shares two cores with other work), so there is
# no deadline and no "too slow" health check; a failure prints the blob that
# replays it (`@reproduce_failure`). Tests still choose `max_examples`
# themselves; `@settings(...)` on a test inherits everything else from here,
# because this module is imported before any test module.
settings.register_profile(
    "securebase",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("securebase")


def _timing_dependent(test_settings: settings) -> list[str]:
    problems = []
    if test_settings.deadline is not None:
        problems.append(f"deadline={test_settings.deadline}")
    if HealthCheck.too_slow not in test_settings.suppress_health_check:
        problems.append("the too_slow health check is on")
    if not test_settings.print_blob:
        problems.append("print_blob is off")
    return problems


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuses a property test that left the profile for speed-dependent settings."""
    offenders = []
    for item in items:
        test_settings = getattr(
            getattr(item, "obj", None), "_hypothesis_internal_use_settings", None
        )
        if test_settings is not None and (problems := _timing_dependent(test_settings)):
            offenders.append(f"{item.nodeid}: {', '.join(problems)}")
    if offenders:
        raise pytest.UsageError(
            "property tests must keep the 'securebase' profile of tests/conftest.py "
            "(no deadline, print_blob, too_slow suppressed):\n  " + "\n  ".join(offenders)
        )
