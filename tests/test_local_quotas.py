"""Per-tenant quotas through the local stack over HTTP, under concurrent requests.

Each test uses a tenant of its own (no customer record: allowed, with empty
data), so the quotas it fills never touch the other tests' tenants.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import requests

from tests.local_stack import LocalStack, local_stack_fixture  # noqa: F401
from tests.openapi_document import assert_conforms

# Not yet understood (left open in issue 20): with libfaketime moving the stack's clock
# (`make test-later`), the stack stops answering these concurrent deferred-report
# creates (reads time out after 60 s). They pass on the real clock in every `make test`.
UNDER_FAKETIME = pytest.mark.skipif(
    "FAKETIME" in os.environ, reason="the local stack hangs on them under libfaketime"
)

REPORTS = "/analytics/reports"
SCHEDULES = "/analytics/schedules"
# A detailed year as PDF: always deferred locally (the local sync budget is 2 s).
LARGE_REPORT = {"type": "detailed", "format": "pdf", "period": "365d"}
SCHEDULE = {
    "type": "summary",
    "format": "csv",
    "period": "7d",
    "frequency": "daily",
    "time_utc": "06:00",
    "recipients": ["ops@example.com"],
}
# Only a guard against a hung stack; no assertion depends on how long anything takes.
GIVE_UP_AFTER_SECONDS = 300


def concurrently(count: int, request: Any) -> list[requests.Response]:
    responses: list[requests.Response] = []
    start = threading.Barrier(count)

    def send() -> None:
        start.wait()
        responses.append(request())

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def statuses(responses: list[requests.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


@UNDER_FAKETIME
def test_20_concurrent_large_reports_leave_exactly_the_pending_cap(
    local_stack: LocalStack,
) -> None:
    tenant = "quota-reports"
    local_stack.call("POST", "/_local/report-jobs/pause", None).raise_for_status()
    try:
        responses = concurrently(
            20, lambda: local_stack.call("POST", REPORTS, tenant, json=LARGE_REPORT)
        )
    finally:
        local_stack.call("POST", "/_local/report-jobs/resume", None).raise_for_status()

    assert statuses(responses) == [202] * 5 + [429] * 15
    for response in responses:
        body = assert_conforms(response, "POST", REPORTS)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "30"
            assert body["code"] == "too_many_pending_reports"
    listed = local_stack.call("GET", REPORTS, tenant).json()["reports"]
    accepted = {response.json()["id"] for response in responses if response.status_code == 202}
    assert {report["id"] for report in listed} == accepted

    # Once the engine has finished them, the tenant may queue large reports again.
    give_up = time.monotonic() + GIVE_UP_AFTER_SECONDS
    while time.monotonic() < give_up:
        listed = local_stack.call("GET", REPORTS, tenant).json()["reports"]
        if all(report["status"] != "pending" for report in listed):
            break
        time.sleep(0.5)
    assert [report["status"] for report in listed] == ["ready"] * 5
    assert local_stack.call("POST", REPORTS, tenant, json=LARGE_REPORT).status_code == 202


@UNDER_FAKETIME
def test_a_second_tenants_small_report_is_served_before_the_first_tenants_backlog(
    local_stack: LocalStack,
) -> None:
    busy, quiet = "fair-busy", "fair-quiet"
    local_stack.call("POST", "/_local/report-jobs/pause", None).raise_for_status()
    try:
        backlog = [
            local_stack.call("POST", REPORTS, busy, json=LARGE_REPORT).json()["id"]
            for _ in range(5)
        ]
        small = local_stack.call(
            "POST", REPORTS, quiet, json={"type": "summary", "format": "pdf", "period": "7d"}
        )
        assert small.status_code == 202, small.text
    finally:
        local_stack.call("POST", "/_local/report-jobs/resume", None).raise_for_status()

    give_up = time.monotonic() + GIVE_UP_AFTER_SECONDS
    while time.monotonic() < give_up:
        report = local_stack.call("GET", f"{REPORTS}/{small.json()['id']}", quiet).json()
        if report["status"] != "pending":
            break
        time.sleep(0.2)
    assert report["status"] == "ready"
    # Measured by position, not time: all six jobs were queued when the
    # engine resumed, and it took at most one of the busy tenant's ahead of
    # the quiet tenant's, not its whole backlog (first come, first served
    # would put four more there).
    delivered = local_stack.call("GET", "/_local/report-jobs", None).json()["delivered"]
    ahead = delivered[: delivered.index(report["id"])]
    assert len(set(ahead) & set(backlog)) <= 1, delivered


def test_20_concurrent_schedule_creates_from_45_leave_exactly_50(local_stack: LocalStack) -> None:
    tenant = "quota-schedules"
    for _ in range(45):
        created = local_stack.call("POST", SCHEDULES, tenant, json=SCHEDULE)
        assert created.status_code == 201, created.text

    responses = concurrently(20, lambda: local_stack.call("POST", SCHEDULES, tenant, json=SCHEDULE))

    assert statuses(responses) == [201] * 5 + [409] * 15
    for response in responses:
        assert_conforms(response, "POST", SCHEDULES)
    assert len(local_stack.call("GET", SCHEDULES, tenant).json()["schedules"]) == 50
