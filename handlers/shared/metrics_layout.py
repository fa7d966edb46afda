"""Item layout of the metrics table (pure: no AWS).

One partition per tenant (`pk` = tenant id). Sort keys start with a record
kind and then a UTC time, so every window a query needs is one key range:

    H#2026-11-23T14#api_calls   hourly usage sample       (expires via `ttl`)
    D#2026-11-23#api_calls      daily usage rollup        (kept)
    C#2026-11-23                daily costs of the tenant (kept)
    S#2026-11-23                compliance snapshot, last run of the day wins

Keys are a pure function of (tenant, kind, time, metric), so re-running an
hour overwrites the same items and never duplicates them. A year of daily
usage plus the year before it (for trends) is 2,920 small items, well inside
one 1 MB Query page.

Aggregator bookkeeping lives under `pk = "#aggregator"` and the progress of
sharded runs under `pk = "#aggregator-runs"` (one item per run, one per shard
that recorded failures, both expiring); tenant ids start with a letter or
digit (see `is_valid_tenant_id`), so they can never collide.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

HOURLY = "H"
DAILY = "D"
COSTS = "C"
COMPLIANCE = "S"

AGGREGATOR_PARTITION = "#aggregator"
AGGREGATOR_RUNS_PARTITION = "#aggregator-runs"
# The bookkeeping items: the last hour an hourly run completed, and when costs
# and compliance were last refreshed.
LAST_HOUR_SK = "last-hour"
COST_REFRESH_STATE_SK = "cost-refresh"
COMPLIANCE_REFRESH_SK = "compliance-refresh"
# A staggered compliance refresh: its plan of account slots, and each slot's last read.
COMPLIANCE_PLAN_SK = "compliance-plan"


def compliance_slot_sk(slot: int) -> str:
    return f"{COMPLIANCE_REFRESH_SK}#{slot}"


# The highest character sort keys use: "D#2026-11-23#~" sorts after every
# metric of that day, so BETWEEN bounds include whole days.
_AFTER_ALL = "~"

_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def is_valid_tenant_id(value: object) -> bool:
    """Tenant ids: 1-64 characters, letters, digits, `_ . -`, starting alphanumeric.

    Matched whole: with `match` and `$`, "acme\n" would pass (`$` also matches
    before a final newline) and become a tenant of its own.
    """
    return isinstance(value, str) and _TENANT_ID.fullmatch(value) is not None


def hour_label(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


def day_label(day: dt.date) -> str:
    return day.isoformat()


def hourly_sk(hour_start: dt.datetime, metric: str) -> str:
    return f"{HOURLY}#{hour_label(hour_start)}#{metric}"


def daily_sk(day: dt.date, metric: str) -> str:
    return f"{DAILY}#{day_label(day)}#{metric}"


def cost_sk(day: dt.date) -> str:
    return f"{COSTS}#{day_label(day)}"


def compliance_sk(day: dt.date) -> str:
    return f"{COMPLIANCE}#{day_label(day)}"


def hourly_range(first_hour: dt.datetime, last_hour: dt.datetime) -> tuple[str, str]:
    """BETWEEN bounds covering every metric of every hour in [first, last]."""
    return (f"{HOURLY}#{hour_label(first_hour)}", f"{HOURLY}#{hour_label(last_hour)}#{_AFTER_ALL}")


def daily_range(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    """BETWEEN bounds covering every metric of every day in [first, last]."""
    return (f"{DAILY}#{day_label(first_day)}", f"{DAILY}#{day_label(last_day)}#{_AFTER_ALL}")


def cost_range(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    return (cost_sk(first_day), cost_sk(last_day))


def compliance_range(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    return (compliance_sk(first_day), compliance_sk(last_day))


def parse_sk(sk: str) -> tuple[str, str, str | None]:
    """`D#2026-11-23#api_calls` -> ("D", "2026-11-23", "api_calls")."""
    kind, _, rest = sk.partition("#")
    moment, _, metric = rest.partition("#")
    return kind, moment, metric or None


# Records: what the items mean, independent of DynamoDB's attribute format.
# Numbers are Decimal so that what is written is exactly what is read back.


@dataclass(frozen=True)
class HourlySample:
    hour: dt.datetime  # start of the hour, UTC
    metric: str
    value: Decimal


@dataclass(frozen=True)
class DailyUsage:
    day: dt.date
    metric: str
    value: Decimal  # counters: the day's total; gauges: the average of its hourly samples
    samples: int  # hourly samples behind the value
    minimum: Decimal | None = None  # gauges only
    maximum: Decimal | None = None
    last: Decimal | None = None


@dataclass(frozen=True)
class DailyCost:
    day: dt.date
    currency: str
    services: Mapping[str, Decimal]  # Cost Explorer service name -> amount
    regions: Mapping[str, Decimal]  # region -> amount (sums to the same total)

    @property
    def total(self) -> Decimal:
        return sum(self.services.values(), Decimal(0))


@dataclass(frozen=True)
class ComplianceIssue:
    control_id: str
    title: str
    severity: str  # critical, high, medium, low
    failed_resources: int


@dataclass(frozen=True)
class ComplianceSnapshot:
    day: dt.date
    score: Decimal  # 0-100: passed / (passed + failed) controls
    passed_controls: int
    failed_controls: int
    findings: Mapping[str, int]  # severity -> active findings
    top_issues: tuple[ComplianceIssue, ...]
    generated_at: str  # ISO-8601 UTC of the run that wrote it


SEVERITIES = ("critical", "high", "medium", "low")


def hourly_item(tenant: str, sample: HourlySample, expires_at: int) -> dict[str, Any]:
    return {
        "pk": tenant,
        "sk": hourly_sk(sample.hour, sample.metric),
        "metric": sample.metric,
        "value": sample.value,
        "ttl": expires_at,
    }


def daily_item(tenant: str, usage: DailyUsage) -> dict[str, Any]:
    item = {
        "pk": tenant,
        "sk": daily_sk(usage.day, usage.metric),
        "metric": usage.metric,
        "value": usage.value,
        "samples": usage.samples,
    }
    for name in ("minimum", "maximum", "last"):
        if getattr(usage, name) is not None:
            item[name] = getattr(usage, name)
    return item


def cost_item(tenant: str, cost: DailyCost) -> dict[str, Any]:
    return {
        "pk": tenant,
        "sk": cost_sk(cost.day),
        "currency": cost.currency,
        "total": cost.total,
        "services": dict(cost.services),
        "regions": dict(cost.regions),
    }


def compliance_item(tenant: str, snapshot: ComplianceSnapshot) -> dict[str, Any]:
    return {
        "pk": tenant,
        "sk": compliance_sk(snapshot.day),
        "score": snapshot.score,
        "passed_controls": snapshot.passed_controls,
        "failed_controls": snapshot.failed_controls,
        "findings": {severity: snapshot.findings.get(severity, 0) for severity in SEVERITIES},
        "top_issues": [
            {
                "control_id": issue.control_id,
                "title": issue.title,
                "severity": issue.severity,
                "failed_resources": issue.failed_resources,
            }
            for issue in snapshot.top_issues
        ],
        "generated_at": snapshot.generated_at,
    }


Record = HourlySample | DailyUsage | DailyCost | ComplianceSnapshot


def parse_item(item: Mapping[str, Any]) -> Record:
    """The record an item (deserialised, numbers as Decimal) stands for."""
    kind, moment, metric = parse_sk(item["sk"])
    if kind == HOURLY:
        hour = dt.datetime.strptime(moment, "%Y-%m-%dT%H").replace(tzinfo=dt.UTC)
        return HourlySample(hour=hour, metric=str(metric), value=Decimal(item["value"]))
    day = dt.date.fromisoformat(moment)
    if kind == DAILY:
        return DailyUsage(
            day=day,
            metric=str(metric),
            value=Decimal(item["value"]),
            samples=int(item.get("samples", 0)),
            minimum=item.get("minimum"),
            maximum=item.get("maximum"),
            last=item.get("last"),
        )
    if kind == COSTS:
        return DailyCost(
            day=day,
            currency=str(item.get("currency", "USD")),
            services={k: Decimal(v) for k, v in (item.get("services") or {}).items()},
            regions={k: Decimal(v) for k, v in (item.get("regions") or {}).items()},
        )
    if kind == COMPLIANCE:
        return ComplianceSnapshot(
            day=day,
            score=Decimal(item["score"]),
            passed_controls=int(item.get("passed_controls", 0)),
            failed_controls=int(item.get("failed_controls", 0)),
            findings={k: int(v) for k, v in (item.get("findings") or {}).items()},
            top_issues=tuple(
                ComplianceIssue(
                    control_id=str(i["control_id"]),
                    title=str(i["title"]),
                    severity=str(i["severity"]),
                    failed_resources=int(i["failed_resources"]),
                )
                for i in item.get("top_issues") or []
            ),
            generated_at=str(item.get("generated_at", "")),
        )
    raise ValueError(f"not a metrics record: {item['sk']!r}")
