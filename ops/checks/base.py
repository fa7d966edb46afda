"""What a check is, what it reports, and the runner that never stops early.

A check is a name and a zero-argument callable returning an `Outcome`. The
runner calls every check, and a check that raises becomes a FAIL carrying the
error, so one broken resource (or one missing permission) never hides the
state of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a status, not a password
    FAIL = "FAIL"
    # Worth a look, not a broken deployment (a non-empty dead-letter queue,
    # a firing alarm on a Phase 2 resource).
    WARN = "WARN"
    # Could not run with what was given (the smoke test without a token).
    SKIP = "SKIP"


# A resource name read from the stack outputs only when the check runs, so a
# missing output fails that check instead of stopping the run.
Lazy = Callable[[], str]


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str


def passed(detail: str) -> Outcome:
    return Outcome(Status.PASS, detail)


def failed(detail: str) -> Outcome:
    return Outcome(Status.FAIL, detail)


def warned(detail: str) -> Outcome:
    return Outcome(Status.WARN, detail)


def skipped(detail: str) -> Outcome:
    return Outcome(Status.SKIP, detail)


def verdict(problems: list[str], ok_detail: str) -> Outcome:
    """FAIL listing every problem found, or PASS with `ok_detail`."""
    return failed("; ".join(problems)) if problems else passed(ok_detail)


@dataclass(frozen=True)
class Check:
    group: str  # "table", "function", "api", ...
    name: str  # "table metrics: point-in-time recovery"
    run: Callable[[], Outcome]


@dataclass(frozen=True)
class CheckResult:
    group: str
    name: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {
            "group": self.group,
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
        }


class CheckError(Exception):
    """A check cannot reach a verdict; the message says why, in the user's terms."""


class MissingOutput(CheckError):
    """A stack output the check needs is absent (the resource was never deployed)."""


def describe_error(error: Exception) -> str:
    """A one-line account of why a check could not finish."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "ClientError")
        operation = error.operation_name
        return f"{operation} failed: {code}: {info.get('Message', '')}".rstrip(": ")
    if isinstance(error, CheckError):
        return str(error)
    if isinstance(error, BotoCoreError):
        return f"AWS SDK error: {error}"
    return f"{type(error).__name__}: {error}"


def run_checks(checks: Iterable[Check]) -> list[CheckResult]:
    results = []
    for check in checks:
        try:
            outcome = check.run()
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
            outcome = failed(describe_error(error))
        results.append(CheckResult(check.group, check.name, outcome.status, outcome.detail))
    return results
