"""A tenant's report data, read from the metrics table.

The headline figures come from the very bodies the analytics API serves
(`handlers.shared.analytics`): usage totals and trends from `usage_body`, the
cost total, category and service breakdowns and forecast from `costs_body`,
compliance from `compliance_body`. A report therefore always agrees with the
API for the same period and moment.

The per-day table and the detailed rows come from the reader's daily records
(usage rollups and daily costs) for the window: a usage row for every day
and metric (zero for a day without data, like the API's series) and a cost
row for every service that cost something that day. Rows are generated
lazily from those records while a renderer writes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from handlers.shared import analytics
from handlers.shared.metrics_layout import DailyCost, DailyUsage
from handlers.shared.metrics_reader import MetricsReader
from handlers.shared.periods import Period
from handlers.shared.reports.model import (
    DETAILED,
    ZERO,
    ComplianceSummary,
    CostSummary,
    DailyTotals,
    DetailRow,
    Issue,
    ReportData,
    UsageFigure,
    day_detail_rows,
)
from handlers.shared.usage_metrics import USAGE_METRICS


def _usage_figures(body: Mapping[str, Any]) -> tuple[UsageFigure, ...]:
    return tuple(
        UsageFigure(
            metric=metric.key,
            unit=metric.unit,
            total=body["metrics"][metric.key],
            previous=body["trends"][metric.key]["previous"],
            change_percent=body["trends"][metric.key]["change_percent"],
            basis=body["trends"][metric.key]["basis"],
        )
        for metric in USAGE_METRICS
    )


def _compliance(body: Mapping[str, Any]) -> ComplianceSummary:
    return ComplianceSummary(
        score=body["current_score"],
        previous_score=body["trend"]["previous_score"],
        direction=body["trend"]["direction"],
        findings=dict(body["findings"]),
        top_issues=tuple(
            Issue(
                control_id=issue["control_id"],
                title=issue["title"],
                severity=issue["severity"],
                failed_resources=int(issue["failed_resources"]),
            )
            for issue in body["top_issues"]
        ),
    )


def report_from_records(
    tenant: str,
    report_type: str,
    period: Period,
    now: dt.datetime,
    usage_records: Sequence[Any],
    cost_days: Sequence[DailyCost],
    compliance_snapshots: Sequence[Any],
    daily_usage: Sequence[DailyUsage],
) -> ReportData:
    """Report data from the records `MetricsReader` returns (pure).

    `usage_records`, `cost_days` and `compliance_snapshots` are what the
    analytics bodies need (`usage_for_period`, `costs_for_period`,
    `recent_compliance`); `daily_usage` holds the window's daily rollups.
    """
    first_day, last_day = period.window(now.astimezone(dt.UTC).date())
    usage = analytics.usage_body(tenant, period, usage_records, now)
    by_category = analytics.costs_body(tenant, period, "category", cost_days, now)
    by_service = analytics.costs_body(tenant, period, "service", cost_days, now)
    compliance = analytics.compliance_body(tenant, compliance_snapshots, now)

    usage_by_day: dict[dt.date, dict[str, Decimal]] = {}
    for record in daily_usage:
        if first_day <= record.day <= last_day:
            usage_by_day.setdefault(record.day, {})[record.metric] = record.value
    cost_by_day = {cost.day: cost for cost in cost_days if first_day <= cost.day <= last_day}
    days = [first_day + dt.timedelta(days=offset) for offset in range(period.days)]
    currency = str(by_category["currency"])

    def rows() -> Iterator[DetailRow]:
        for day in days:
            cost = cost_by_day.get(day)
            yield from day_detail_rows(
                day,
                usage_by_day.get(day, {}),
                sorted(cost.services.items()) if cost else (),
                currency,
            )

    detailed = report_type == DETAILED
    return ReportData(
        customer_id=tenant,
        report_type=report_type,
        period=period.label,
        first_day=first_day,
        last_day=last_day,
        generated_at=now,
        usage=_usage_figures(usage),
        costs=CostSummary(
            currency=currency,
            total=by_category["total"],
            by_category=dict(by_category["breakdown"]),
            by_service=dict(by_service["breakdown"]),
            forecast_next_month=by_category["forecast_next_month"],
        ),
        compliance=_compliance(compliance),
        daily=tuple(
            DailyTotals(
                day=day,
                cost=cost_by_day[day].total if day in cost_by_day else ZERO,
                usage={
                    metric.key: usage_by_day.get(day, {}).get(metric.key, ZERO)
                    for metric in USAGE_METRICS
                },
            )
            for day in days
        ),
        rows=rows() if detailed else (),
        row_count=(
            len(days) * len(USAGE_METRICS)
            + sum(len(cost.services) for cost in cost_by_day.values())
            if detailed
            else 0
        ),
    )


def load_report_data(
    reader: MetricsReader, tenant: str, report_type: str, period: Period, now: dt.datetime
) -> ReportData:
    """Reads what a report needs (four Queries at most) and builds its data."""
    usage_records = reader.usage_for_period(tenant, period, now)
    if analytics.usage_windows(period, now).hourly:
        # Short windows' figures come from hourly samples; the table needs the days.
        daily_usage = reader.usage_days(tenant, *period.window(now.astimezone(dt.UTC).date()))
    else:
        daily_usage = [record for record in usage_records if isinstance(record, DailyUsage)]
    return report_from_records(
        tenant=tenant,
        report_type=report_type,
        period=period,
        now=now,
        usage_records=usage_records,
        cost_days=reader.costs_for_period(tenant, period, now),
        compliance_snapshots=reader.recent_compliance(tenant, now),
        daily_usage=daily_usage,
    )
