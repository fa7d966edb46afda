"""The suite's own rules: property tests never fail on speed (tests/conftest.py), and a
parallel run builds each module's fixtures once (the Makefile's distribution)."""

import datetime as dt
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import ROOT, _timing_dependent
from tests.test_makefile import MAKEFILE

PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")


def test_the_loaded_profile_has_no_deadline_and_prints_the_failing_example():
    assert settings.default.deadline is None
    assert settings.default.print_blob is True
    assert HealthCheck.too_slow in settings.default.suppress_health_check
    assert _timing_dependent(settings.default) == []


def test_a_test_that_sets_its_own_examples_keeps_the_profile():
    assert _timing_dependent(settings(max_examples=5)) == []


def test_a_deadline_or_a_speed_health_check_is_refused():
    assert _timing_dependent(settings(deadline=dt.timedelta(milliseconds=200))) == [
        "deadline=0:00:00.200000"
    ]
    assert _timing_dependent(
        settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
    ) == ["the too_slow health check is on"]
    assert _timing_dependent(settings(print_blob=False)) == ["print_blob is off"]


def test_collection_stops_at_a_property_test_with_a_deadline(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_timed.py").write_text(
        "from hypothesis import given, settings, strategies as st\n\n"
        "@settings(deadline=200)\n@given(st.integers())\n"
        "def test_fast(n):\n    pass\n"
    )
    done = subprocess.run(
        [*PYTEST, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout
    assert "test_timed.py::test_fast: deadline=0:00:00.200000" in done.stderr


def test_make_test_builds_each_module_fixture_once(tmp_path):
    # With `make test`'s distribution, the ten tests of a module run on one worker,
    # so its module fixture (a program run, an emulator) is built once. (xdist's
    # per-test `load` would build it on both workers; its `loadgroup` groups do not
    # survive pytest 9, which ignores the node ids xdist rewrites.)
    dist = re.search(r"^PYTEST := .* --dist (\w+)$", MAKEFILE, re.MULTILINE)
    assert dist, "the Makefile's PYTEST line names no --dist"
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    setups = tmp_path / "setups.log"
    for module in ("test_one", "test_two"):
        (tmp_path / f"{module}.py").write_text(
            "import pytest\n\n"
            "@pytest.fixture(scope='module')\n"
            "def program():\n"
            f"    with open({str(setups)!r}, 'a') as log:\n"
            f"        log.write('{module}\\n')\n\n"
            + "".join(f"def test_{n}(program):\n    pass\n\n" for n in range(10))
        )
    done = subprocess.run(
        [*PYTEST, "-n", "2", "--dist", dist[1], str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.OK, done.stdout + done.stderr
    assert sorted(setups.read_text().split()) == ["test_one", "test_two"]
