"""The Makefile: `make help` lists every target; `make policy-venv` says what it built."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = (ROOT / "Makefile").read_text()


def make(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def targets(makefile: Path) -> tuple[set[str], set[str], set[str]]:
    """(.PHONY targets, rules named like commands, targets `make help` lists) of a Makefile."""
    text = makefile.read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", text, re.MULTILINE)[1].split())
    # Rules named like commands (file targets such as $(VENV)/.synced start otherwise).
    rules = set(re.findall(r"^([a-z][\w-]*):(?!=)", text, re.MULTILINE))
    done = make("-f", str(makefile), "help")
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^make ([a-z][\w-]*)", done.stdout, re.MULTILINE))
    return phony, rules, listed


def test_every_target_is_phony_and_listed_by_make_help() -> None:
    phony, rules, listed = targets(ROOT / "Makefile")

    assert rules == phony
    assert listed == rules
    assert {"lint", "policy", "policy-requirements", "policy-venv"} <= listed


UNLISTED = {
    "a new target": (".PHONY: help", ".PHONY: help docs", "\ndocs: venv\n\t@true\n", {"docs"}),
    "a help line dropped": ('\t@echo "make lint ', '\t@true "make lint ', "", {"lint"}),
}


@pytest.mark.parametrize("case", UNLISTED)
def test_a_target_missing_from_make_help_is_found(tmp_path: Path, case: str) -> None:
    old, new, appended, missing = UNLISTED[case]
    assert old in MAKEFILE
    copy = tmp_path / "Makefile"
    copy.write_text(MAKEFILE.replace(old, new, 1) + appended)

    phony, rules, listed = targets(copy)

    assert rules == phony
    assert rules - listed == missing


def test_policy_venv_says_what_it_built(tmp_path: Path) -> None:
    pins = dict(
        re.findall(
            r"^([\w-]+)==([\w.]+)", (ROOT / "policies" / "requirements.txt").read_text(), re.M
        )
    )
    venv = tmp_path / "venv"
    expected = re.compile(
        rf"{re.escape(str(venv))}: Python 3\.11\.\d+, pulumi {re.escape(pins['pulumi'])}, "
        rf"pulumi-policy {re.escape(pins['pulumi-policy'])}, \d+ packages\n"
    )

    built = make("policy-venv", f"POLICY_VENV={venv}")
    again = make("policy-venv", f"POLICY_VENV={venv}")

    assert built.returncode == 0, built.stderr
    assert expected.fullmatch(built.stdout), built.stdout
    # Nothing to rebuild: it still says what is there.
    assert again.stdout == built.stdout
    assert (venv / "bin" / "python").is_file()
