"""The staggered compliance refresh: slots of account prefixes, and only AWS's own findings.

Security Hub is imitated by `FilteringSecurityHub`, which applies GetFindings'
documented filter semantics (moto ignores Filters): values of one attribute
are OR'ed (EQUALS, PREFIX), attributes are AND'ed, at most 20 values per
attribute (Security Hub API reference, StringFilter and
AwsSecurityFindingFilters), pages of MaxResults with NextToken.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from handlers import aggregator
from handlers.shared.aggregation import compliance, compliance_slots
from handlers.shared.aggregation.compliance_slots import CompliancePlan
from local.shards import InProcessShards
from tests.test_aggregator import (
    NOW,
    REGION,
    add_customers,
    asff,
    moto_clients,
    partition,
    set_state,
    table,
)
from tests.test_aggregator_sharded import (
    COMPLETED_AT,
    QUEUE,
    SHARD_SETTINGS,
    TENANTS,
    sharded_settings,
)

HOUR = dt.timedelta(hours=1)
DAY = dt.date(2026, 11, 23)
AWS_PRODUCT = f"arn:aws:securityhub:{REGION}::product/aws/securityhub"


def account_of(index: int) -> str:
    return f"{100000000000 + index}"


class Events:
    """The slice of botocore's event system `counting_requests` uses."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def register(self, event: str, handler: Any, unique_id: str) -> None:
        self.handlers[unique_id] = handler

    def unregister(self, event: str, unique_id: str) -> None:
        self.handlers.pop(unique_id, None)

    def emit(self, event_name: str) -> None:
        for handler in list(self.handlers.values()):
            handler(event_name=event_name)


class FilteringSecurityHub:
    """GetFindings over a list of findings, filtered and paged as Security Hub documents it."""

    def __init__(self, findings: list[dict[str, Any]]):
        self.meta = SimpleNamespace(events=Events())
        self.findings = findings
        self.requests: list[dict[str, Any]] = []

    def get_findings(self, **request: Any) -> dict[str, Any]:
        self.meta.events.emit("before-send.securityhub.GetFindings")
        self.requests.append(request)
        filters = request.get("Filters", {})
        for attribute, values in filters.items():
            assert len(values) <= compliance_slots.MAX_FILTER_VALUES, attribute
        matching = [f for f in self.findings if matches(f, filters)]
        first = int(request.get("NextToken", "0"))
        end = first + request["MaxResults"]
        page: dict[str, Any] = {"Findings": matching[first:end]}
        if end < len(matching):
            page["NextToken"] = str(end)
        return page


def value_at(finding: Mapping[str, Any], attribute: str) -> str | None:
    if attribute == "ComplianceStatus":
        return (finding.get("Compliance") or {}).get("Status")
    if attribute == "WorkflowStatus":
        return (finding.get("Workflow") or {}).get("Status")
    return finding.get(attribute)


def matches(finding: Mapping[str, Any], filters: Mapping[str, list[dict[str, str]]]) -> bool:
    for attribute, values in filters.items():
        actual = value_at(finding, attribute)
        positive = [v for v in values if v["Comparison"] in ("EQUALS", "PREFIX")]
        negative = [v for v in values if v["Comparison"] == "NOT_EQUALS"]
        if positive and not any(
            actual is not None
            and (
                actual == v["Value"]
                if v["Comparison"] == "EQUALS"
                else actual.startswith(v["Value"])
            )
            for v in positive
        ):
            return False
        if any(actual == v["Value"] for v in negative):
            return False
    return True


# -- the plan -----------------------------------------------------------------------------

account_ids = st.text(alphabet="0123456789", min_size=12, max_size=12)


@st.composite
def rosters(draw) -> list[str]:
    """Accounts spread over the space, or crowded under a common prefix."""
    shared = draw(st.text(alphabet="0123456789", max_size=5))
    rests = draw(
        st.lists(
            st.text(alphabet="0123456789", min_size=12 - len(shared), max_size=12 - len(shared)),
            min_size=1,
            max_size=400,
        )
    )
    return [shared + rest for rest in rests]


@given(rosters(), st.integers(min_value=1, max_value=12), st.lists(account_ids, max_size=30))
def test_every_account_falls_in_exactly_one_slot_of_at_most_20_prefixes(roster, slots, newcomers):
    plan = compliance_slots.plan(roster, slots, NOW)
    if plan is None:
        return  # too crowded to fit: the run reads compliance whole (tested below)
    assert len(plan.slots) == slots
    assert all(len(prefixes) <= compliance_slots.MAX_FILTER_VALUES for prefixes in plan.slots)
    everything = [prefix for prefixes in plan.slots for prefix in prefixes]
    # Prefix-free, and together they cover the whole 12-digit space (Kraft's sum is 1).
    assert all(not b.startswith(a) for a in everything for b in everything if a is not b), (
        everything
    )
    assert sum(Fraction(1, 10 ** len(prefix)) for prefix in everything) == 1
    assert all(0 < len(prefix) <= 12 for prefix in everything)
    for account in [*roster, *newcomers]:
        owners = [
            n for n, prefixes in enumerate(plan.slots) if any(map(account.startswith, prefixes))
        ]
        assert owners == [plan.slot_of(account)]


def test_the_plan_balances_the_roster():
    rng = random.Random(17)
    roster = [f"{rng.randrange(10**12):012d}" for _ in range(60_000)]
    plan = compliance_slots.plan(roster, 6, NOW)

    shares = [0] * 6
    for account in roster:
        shares[plan.slot_of(account)] += 1
    assert max(shares) <= 10_000 * 1.05 and min(shares) >= 10_000 * 0.95, shares


def test_a_roster_too_crowded_for_20_prefixes_a_slot_gets_no_plan():
    # 5,000 consecutive ids share 8 digits: splitting them needs 9 prefixes per level.
    assert compliance_slots.plan([account_of(i) for i in range(5_000)], 6, NOW) is None


def test_slots_fall_due_one_hour_after_another_and_missed_ones_together():
    plan = CompliancePlan(
        slots=(("0", "1"), ("2",), ("3",), ("4",), ("5",), ("6", "7", "8", "9")),
        planned_hour=NOW.replace(minute=0),
    )

    assert plan.due_slots({}, NOW) == (0,)
    assert plan.due_slots({0: NOW}, NOW + HOUR) == (1,)
    assert plan.due_slots({0: NOW, 1: NOW + HOUR}, NOW + 5 * HOUR) == (2, 3, 4, 5)
    read = {slot: NOW + slot * HOUR for slot in range(6)}
    assert plan.due_slots(read, NOW + 5 * HOUR + dt.timedelta(minutes=30)) == ()
    assert plan.due_slots(read, NOW + 6 * HOUR - dt.timedelta(minutes=4)) == (0,)
    assert CompliancePlan.from_item(plan.to_item()) == plan


def test_prefixes_are_read_20_to_a_request():
    prefixes = [f"{n:02d}" for n in range(41)]
    assert [len(chunk) for chunk in compliance_slots.chunks(prefixes)] == [20, 20, 1]
    assert compliance_slots.chunks([]) == []


def test_a_slot_is_asked_for_by_account_prefix_from_aws_only():
    request = compliance.findings_request(["111111111111"], ["4", "10"])

    assert request == {
        "Filters": {
            "CompanyName": [{"Value": "AWS", "Comparison": "EQUALS"}],
            "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
            "WorkflowStatus": [{"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}],
            "ComplianceStatus": [
                {"Value": "PASSED", "Comparison": "EQUALS"},
                {"Value": "FAILED", "Comparison": "EQUALS"},
            ],
            "AwsAccountId": [
                {"Value": "10", "Comparison": "PREFIX"},
                {"Value": "4", "Comparison": "PREFIX"},
            ],
        },
        "MaxResults": 100,
    }
    with pytest.raises(ValueError, match="at most 20 account prefixes; got 21"):
        compliance.findings_request([], [f"{n:02d}" for n in range(21)])


# -- the union of the slots is one full read ----------------------------------------------------


def control_finding(account: str, control: str, status: str, severity: str, resource: str):
    return asff(account, control, status, severity, resource, CompanyName="AWS")


findings_strategy = st.lists(
    st.builds(
        control_finding,
        st.sampled_from([account_of(i) for i in range(0, 3000, 37)] + ["999999999999"]),
        st.sampled_from(["S3.1", "IAM.4", "EC2.2", "KMS.3"]),
        st.sampled_from(["PASSED", "FAILED"]),
        st.sampled_from(["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"]),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=120,
)


@given(findings_strategy)
def test_the_slots_together_score_every_tenant_as_one_full_read(findings):
    tenant_by_account = {account_of(i): f"tenant-{i}" for i in range(0, 3000, 37)}
    plan = compliance_slots.plan(tenant_by_account, 6, NOW)
    full = compliance.snapshots(findings, tenant_by_account, DAY, "t")

    staggered: dict[str, Any] = {}
    seen = 0
    for prefixes in plan.slots:
        request = compliance.findings_request(tenant_by_account, prefixes)
        read = [f for f in findings if matches(f, request["Filters"])]
        seen += len(read)
        slot = compliance.snapshots(read, tenant_by_account, DAY, "t")
        assert not set(slot) & set(staggered)  # no tenant in two slots
        staggered |= slot

    assert staggered == full
    assert seen == len(findings)  # every finding read exactly once


# -- findings a tenant imports ------------------------------------------------------------------


@pytest.mark.parametrize(
    "imported",
    [
        # A custom integration: its own company name, its own product.
        {
            "CompanyName": "Acme Corp",
            "ProductArn": f"arn:aws:securityhub:{REGION}:111111111111:product/111111111111/default",
        },
        # A custom integration may set CompanyName itself; the product ARN is still its own.
        {
            "CompanyName": "AWS",
            "ProductArn": f"arn:aws:securityhub:{REGION}:111111111111:product/111111111111/default",
        },
        # The tenant's own company name (the filter GetFindings is asked for keeps it out).
        {"CompanyName": "Acme Corp", "ProductArn": AWS_PRODUCT},
    ],
)
def test_findings_a_tenant_imports_do_not_move_its_score(imported):
    tenant_by_account = {"111111111111": "acme"}
    own = [
        control_finding("111111111111", "S3.1", "FAILED", "HIGH", "bucket"),
        control_finding("111111111111", "IAM.4", "PASSED", "INFORMATIONAL", "root"),
    ]
    forged = [
        asff("111111111111", f"ACME.{n}", "PASSED", "INFORMATIONAL", f"r{n}", **imported)
        for n in range(10)
    ] + [asff("111111111111", "S3.1", "PASSED", "INFORMATIONAL", "bucket", **imported)]

    before = compliance.snapshots(own, tenant_by_account, DAY, "t")["acme"]
    after = compliance.snapshots([*own, *forged], tenant_by_account, DAY, "t")["acme"]

    assert after == before
    assert (after.score, after.passed_controls, after.failed_controls) == (50, 1, 1)
    assert not any(compliance.is_from_aws(f) for f in forged)
    assert all(compliance.is_from_aws(f) for f in own)


# -- sharded runs against moto ----------------------------------------------------------------


# 150 tenants: two shards (125 and 25), and the run is sharded (threshold 150).
ROSTER = TENANTS[:150]


def roster_findings() -> list[dict[str, Any]]:
    """Five control findings per tenant of the 150 (every third one failing S3.1), and an
    imported one; about 125 per slot, so a slot's read takes two pages."""
    result = []
    for index in range(len(ROSTER)):
        account = account_of(index)
        status = "FAILED" if index % 3 == 0 else "PASSED"
        result.append(control_finding(account, "S3.1", status, "HIGH", "b"))
        result.append(control_finding(account, "IAM.4", "PASSED", "INFORMATIONAL", "r"))
        result.append(control_finding(account, "EC2.2", "PASSED", "INFORMATIONAL", "i"))
        result.append(control_finding(account, "KMS.3", "PASSED", "INFORMATIONAL", "k"))
        result.append(control_finding(account, "EC2.8", "PASSED", "INFORMATIONAL", "i"))
    result.append(
        asff(account_of(1), "ACME.1", "PASSED", "INFORMATIONAL", "x", CompanyName="Tenant One")
    )
    return result


def add_tenants(clients, accounts: Sequence[str]) -> None:
    add_customers(
        clients,
        [
            {"customer_id": tenant, "status": "active", "aws_account_id": account}
            for tenant, account in zip(ROSTER, accounts, strict=True)
        ],
    )


def hourly(clients, securityhub, queue_url: str, now: dt.datetime) -> dict[str, Any]:
    """One sharded hourly run at `now`, its shards run in process."""
    used = dataclasses.replace(clients, securityhub=securityhub)
    return aggregator.run(
        now=now,
        clients=used,
        settings=sharded_settings(queue_url, len(ROSTER)),
        dispatcher=InProcessShards(SHARD_SETTINGS, used, clock=lambda: now + (COMPLETED_AT - NOW)),
    )


def stored_plan(clients) -> CompliancePlan:
    return CompliancePlan.from_item(partition(clients, "#aggregator")["compliance-plan"])


def snapshots_by_tenant(clients, tenants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The day's compliance snapshot of each of `tenants` that has one (one scan of the table)."""
    wanted = set(tenants)
    return {
        pk: item
        for (pk, sk), item in table(clients).items()
        if pk in wanted and sk == "S#2026-11-23"
    }


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def sharded() -> Any:
    with moto_clients() as clients:
        queue_url = clients.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        # Costs are not what these tests are about: refreshed "later" than every run here.
        set_state(clients, cost_refresh=NOW + 12 * HOUR)
        yield clients, queue_url


def test_six_hourly_runs_read_each_account_once_at_the_minimum_of_requests(sharded):
    clients, queue_url = sharded
    add_tenants(clients, [account_of(i) for i in range(len(ROSTER))])
    findings = roster_findings()
    securityhub = FilteringSecurityHub(findings)
    trusted = [f for f in findings if f["CompanyName"] == "AWS"]

    made, minimum = [], []
    for slot in range(6):
        now = NOW + slot * HOUR
        summary = hourly(clients, securityhub, queue_url, now)
        plan = stored_plan(clients)
        in_slot = [f for f in trusted if plan.slot_of(f["AwsAccountId"]) == slot]

        assert (summary["compliance_slots"], summary["run"]["status"]) == ([slot], "ok")
        assert partition(clients, "#aggregator")[f"compliance-refresh#{slot}"]["at"] == iso(now)
        made.append(summary["requests"]["securityhub.GetFindings"])
        minimum.append(max(1, math.ceil(len(in_slot) / compliance.PAGE_SIZE)))

    assert made == minimum
    assert max(made) == 2  # paging is exercised
    # Against one full read, staggering costs at most one partial page per slot.
    assert sum(made) <= math.ceil(len(trusted) / compliance.PAGE_SIZE) + 5
    assert len(securityhub.requests) == sum(made)

    stored = snapshots_by_tenant(clients, ROSTER)
    full = compliance.snapshots(
        findings, {account_of(i): t for i, t in enumerate(ROSTER)}, DAY, "t"
    )
    assert set(stored) == set(full) == set(ROSTER)
    for index, tenant in enumerate(ROSTER):
        item, snapshot = stored[tenant], full[tenant]
        assert (item["score"], item["passed_controls"], item["failed_controls"]) == (
            snapshot.score,
            snapshot.passed_controls,
            snapshot.failed_controls,
        )
        # Written once, by the run of its own slot.
        assert item["generated_at"] == iso(NOW + plan.slot_of(account_of(index)) * HOUR)


def test_a_roster_that_changes_between_slots_drops_and_repeats_nobody(sharded):
    clients, queue_url = sharded
    add_tenants(clients, [account_of(i) for i in range(len(ROSTER))])
    findings = roster_findings()
    securityhub = FilteringSecurityHub(findings)
    hourly(clients, securityhub, queue_url, NOW)
    plan = stored_plan(clients)
    # Accounts the plan never saw: one in slot 1 (read before it joins), one in slot 4 (after).
    candidates = [f"{n:012d}" for n in range(10**11, 10**12, 7_777_777_777)]
    early = next(account for account in candidates if plan.slot_of(account) == 1)
    late = next(account for account in candidates if plan.slot_of(account) == 4)
    leaving = next(i for i in range(len(ROSTER)) if plan.slot_of(account_of(i)) == 5)
    findings += [control_finding(a, "S3.1", "FAILED", "HIGH", "b") for a in (early, late)]

    for slot in (1, 2):
        hourly(clients, securityhub, queue_url, NOW + slot * HOUR)
    add_customers(
        clients,
        [
            {"customer_id": "newcomer-early", "status": "active", "aws_account_id": early},
            {"customer_id": "newcomer-late", "status": "active", "aws_account_id": late},
            {
                "customer_id": ROSTER[leaving],
                "status": "suspended",
                "aws_account_id": account_of(leaving),
            },
        ],
    )
    for slot in (3, 4, 5):
        assert hourly(clients, securityhub, queue_url, NOW + slot * HOUR)["compliance_slots"] == [
            slot
        ]

    # The plan is kept: the roster's changes move no account to another slot.
    assert stored_plan(clients) == plan
    everyone = [*ROSTER, "newcomer-early", "newcomer-late"]
    stored = snapshots_by_tenant(clients, everyone)
    assert stored["newcomer-late"]["generated_at"] == iso(NOW + 4 * HOUR)
    assert "newcomer-early" not in stored  # its slot was read before it joined
    assert ROSTER[leaving] not in stored  # suspended before its slot
    assert len(stored) == len(ROSTER)  # less the suspended one, plus the late newcomer
    assert all(
        item["generated_at"] == iso(NOW + plan.slot_of(account_of(ROSTER.index(t))) * HOUR)
        for t, item in stored.items()
        if t in ROSTER
    )

    # The next cycle: slot 0, then slot 1 again, and with it the early newcomer.
    assert hourly(clients, securityhub, queue_url, NOW + 6 * HOUR)["compliance_slots"] == [0]
    assert hourly(clients, securityhub, queue_url, NOW + 7 * HOUR)["compliance_slots"] == [1]
    newcomer = snapshots_by_tenant(clients, ["newcomer-early"])["newcomer-early"]
    assert (newcomer["failed_controls"], newcomer["generated_at"]) == (1, iso(NOW + 7 * HOUR))


class ThrottledSecurityHub(FilteringSecurityHub):
    def get_findings(self, **request: Any) -> dict[str, Any]:
        self.meta.events.emit("before-send.securityhub.GetFindings")
        raise ClientError({"Error": {"Code": "TooManyRequestsException"}}, "GetFindings")


def test_a_slot_whose_read_failed_is_read_with_the_next_one(sharded):
    clients, queue_url = sharded
    add_tenants(clients, [account_of(i) for i in range(len(ROSTER))])
    securityhub = FilteringSecurityHub(roster_findings())
    hourly(clients, securityhub, queue_url, NOW)

    failed = hourly(clients, ThrottledSecurityHub([]), queue_url, NOW + HOUR)

    assert (failed["compliance"], failed["run"]["status"]) == ("failed", "partial_failure")
    assert "compliance-refresh#1" not in partition(clients, "#aggregator")

    summary = hourly(clients, securityhub, queue_url, NOW + 2 * HOUR)

    plan = stored_plan(clients)
    assert summary["compliance_slots"] == [1, 2]
    # Slots 1 and 2 hold more than 20 prefixes together: two paged reads of up to 20.
    late_reads = securityhub.requests[-summary["requests"]["securityhub.GetFindings"] :]
    assert [len(r["Filters"]["AwsAccountId"]) for r in late_reads if "NextToken" not in r] == [
        len(chunk) for chunk in compliance_slots.chunks(sorted([*plan.slots[1], *plan.slots[2]]))
    ]
    stored = snapshots_by_tenant(clients, ROSTER)
    assert {plan.slot_of(account_of(ROSTER.index(t))) for t in stored} == {0, 1, 2}
    assert {
        item["generated_at"]
        for t, item in stored.items()
        if plan.slot_of(account_of(ROSTER.index(t))) > 0
    } == {iso(NOW + 2 * HOUR)}


def test_a_roster_too_crowded_to_stagger_is_read_whole_every_interval(sharded):
    clients, queue_url = sharded
    # Three clusters of 50 accounts sharing 10 digits: no plan fits 20 prefixes a slot.
    crowded = [
        f"{stem}{n:02d}" for stem in ("1234567890", "9876543210", "5555555555") for n in range(50)
    ]
    add_tenants(clients, crowded)
    findings = [control_finding(a, "S3.1", "PASSED", "INFORMATIONAL", "b") for a in crowded]
    securityhub = FilteringSecurityHub(findings)

    first = hourly(clients, securityhub, queue_url, NOW)
    second = hourly(clients, securityhub, queue_url, NOW + HOUR)

    assert "compliance-plan" not in partition(clients, "#aggregator")
    assert (first["compliance"], first["requests"]["securityhub.GetFindings"]) == ("fetched", 2)
    assert (second["compliance"], second["requests"].get("securityhub.GetFindings", 0)) == (
        "not_due",
        0,
    )
    assert partition(clients, "#aggregator")["compliance-refresh"]["at"] == iso(NOW)
    assert len(snapshots_by_tenant(clients, ROSTER)) == 150
