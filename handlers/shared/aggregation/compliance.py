"""Security Hub control findings as a compliance snapshot per tenant (pure).

A control passes for a tenant when its active, unsuppressed findings are all
PASSED and fails when any of them FAILED; the score is passed / (passed +
failed) controls. Severity counts are the tenant's active failed findings by
severity label (informational ones are not counted). The top issues are the
failed controls ordered by severity, then by how many resources fail them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from handlers.shared.aggregation.rollups import plain
from handlers.shared.metrics_layout import SEVERITIES, ComplianceIssue, ComplianceSnapshot

PAGE_SIZE = 100  # GetFindings' maximum
# GetFindings accepts at most 20 values per filter attribute; with more
# tenant accounts the request asks for every account and the answer is
# narrowed to tenant accounts here.
MAX_ACCOUNT_FILTER_VALUES = 20
TOP_ISSUES = 5
PASSED = "PASSED"
FAILED = "FAILED"
_RANK = {severity: rank for rank, severity in enumerate(reversed(SEVERITIES), start=1)}
_SCORE_QUANTUM = Decimal("0.01")
_NORMALIZED_FLOORS = (("critical", 90), ("high", 70), ("medium", 40), ("low", 1))


def findings_request(account_ids: Iterable[str]) -> dict[str, Any]:
    """GetFindings for control findings (PASSED or FAILED) that are active and not suppressed."""
    filters: dict[str, list[dict[str, str]]] = {
        "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
        "WorkflowStatus": [{"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}],
        "ComplianceStatus": [
            {"Value": PASSED, "Comparison": "EQUALS"},
            {"Value": FAILED, "Comparison": "EQUALS"},
        ],
    }
    accounts = sorted(set(account_ids))
    if accounts and len(accounts) <= MAX_ACCOUNT_FILTER_VALUES:
        filters["AwsAccountId"] = [{"Value": a, "Comparison": "EQUALS"} for a in accounts]
    return {"Filters": filters, "MaxResults": PAGE_SIZE}


def severity_of(finding: Mapping[str, Any]) -> str | None:
    """critical/high/medium/low, or None for informational (or no severity)."""
    severity = finding.get("Severity") or {}
    label = str(severity.get("Label") or "").lower()
    if not label and "Normalized" in severity:
        # Findings from before Severity.Label existed: AWS's documented mapping.
        normalized = int(severity["Normalized"])
        label = next((name for name, floor in _NORMALIZED_FLOORS if normalized >= floor), "")
    return label if label in _RANK else None


def control_id_of(finding: Mapping[str, Any]) -> str:
    compliance = finding.get("Compliance") or {}
    product_fields = finding.get("ProductFields") or {}
    return str(
        compliance.get("SecurityControlId")
        or product_fields.get("ControlId")
        or finding.get("GeneratorId")
        or finding.get("Id")
    )


def counts(finding: Mapping[str, Any]) -> bool:
    """Active and not suppressed (checked here too, not only in the request filter)."""
    workflow = (finding.get("Workflow") or {}).get("Status") or finding.get("WorkflowState")
    return finding.get("RecordState", "ACTIVE") == "ACTIVE" and workflow != "SUPPRESSED"


@dataclass
class _Control:
    title: str
    failed: bool = False
    passed: bool = False
    severity: str | None = None  # worst severity among its failed findings
    failed_resources: set[str] = field(default_factory=set)


@dataclass
class _TenantFindings:
    controls: dict[str, _Control] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))

    def add(self, finding: Mapping[str, Any]) -> None:
        status = (finding.get("Compliance") or {}).get("Status")
        if status not in (PASSED, FAILED):
            return
        control_id = control_id_of(finding)
        control = self.controls.setdefault(
            control_id, _Control(title=str(finding.get("Title", "")))
        )
        if status == PASSED:
            control.passed = True
            return
        control.failed = True
        severity = severity_of(finding)
        if severity is not None:
            self.findings[severity] += 1
            if control.severity is None or _RANK[severity] > _RANK[control.severity]:
                control.severity = severity
        resources = finding.get("Resources") or [{}]
        control.failed_resources.add(str(resources[0].get("Id") or finding.get("Id")))

    def snapshot(self, day: dt.date, generated_at: str) -> ComplianceSnapshot | None:
        failed = [(cid, c) for cid, c in self.controls.items() if c.failed]
        passed = sum(1 for c in self.controls.values() if c.passed and not c.failed)
        if not failed and not passed:
            return None
        score = Decimal(100 * passed) / Decimal(passed + len(failed))
        ranked = sorted(
            ((cid, c) for cid, c in failed if c.severity is not None),
            key=lambda item: (
                -_RANK[str(item[1].severity)],
                -len(item[1].failed_resources),
                item[0],
            ),
        )
        return ComplianceSnapshot(
            day=day,
            score=plain(score.quantize(_SCORE_QUANTUM, rounding=ROUND_HALF_UP)),
            passed_controls=passed,
            failed_controls=len(failed),
            findings=dict(self.findings),
            top_issues=tuple(
                ComplianceIssue(
                    control_id=cid,
                    title=control.title,
                    severity=str(control.severity),
                    failed_resources=len(control.failed_resources),
                )
                for cid, control in ranked[:TOP_ISSUES]
            ),
            generated_at=generated_at,
        )


def snapshots(
    findings: Iterable[Mapping[str, Any]],
    tenant_by_account: Mapping[str, str],
    day: dt.date,
    generated_at: str,
) -> dict[str, ComplianceSnapshot]:
    """One snapshot per tenant with at least one PASSED or FAILED control finding.

    A tenant without control findings gets no snapshot: a score needs
    evidence, and "no data" must not read as 0% or 100%.
    """
    by_tenant: dict[str, _TenantFindings] = {}
    for finding in findings:
        tenant = tenant_by_account.get(str(finding.get("AwsAccountId")))
        if tenant is not None and counts(finding):
            by_tenant.setdefault(tenant, _TenantFindings()).add(finding)
    result = {}
    for tenant, tenant_findings in sorted(by_tenant.items()):
        snapshot = tenant_findings.snapshot(day, generated_at)
        if snapshot is not None:
            result[tenant] = snapshot
    return result
