"""The suite's own rules (tests/conftest.py): property tests never fail on speed."""

import datetime as dt
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import ROOT, _timing_dependent


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
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout
    assert "test_timed.py::test_fast: deadline=0:00:00.200000" in done.stderr
