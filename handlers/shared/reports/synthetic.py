"""Deterministic synthetic report data of any size, for tests and benchmarks (pure).

`synthetic_report(days=365, services=270)` yields 365 x (4 + 270) = 100,010
detailed rows lazily, exactly like a real report's rows stream from the
metrics table, so rendering can be measured without AWS.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal

from handlers.shared.cost_categories import CATEGORIES, category_of
from handlers.shared.reports.model import (
    COST_METRIC,
    DETAILED,
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

KNOWN_SERVICES = (
    "Amazon Elastic Compute Cloud - Compute",
    "Amazon Simple Storage Service",
    "AWS Lambda",
    "Amazon DynamoDB",
    "Amazon Virtual Private Cloud",
    "Amazon CloudFront",
    "Amazon Relational Database Service",
    "AWS Key Management Service",
    "Amazon CloudWatch",
    "Amazon API Gateway",
)
FIXED_NOW = dt.datetime(2026, 11, 23, 14, 5, 9, tzinfo=dt.UTC)


def service_names(count: int) -> tuple[str, ...]:
    extra = tuple(f"Service {index:03d}" for index in range(len(KNOWN_SERVICES), count))
    return (KNOWN_SERVICES + extra)[:count]


def _usage_value(rng: random.Random, metric: str) -> Decimal:
    scale = {"api_calls": 50_000, "storage_gb": 800, "compute_hours": 120}.get(metric, 40)
    if metric == "api_calls":
        return Decimal(rng.randint(scale // 2, scale))
    return Decimal(f"{rng.uniform(scale / 2, scale):.6f}")


def _cost(rng: random.Random) -> Decimal:
    return Decimal(f"{rng.uniform(0.01, 25):.4f}")


def synthetic_report(
    customer_id: str = "acme",
    report_type: str = DETAILED,
    days: int = 30,
    services: int = 10,
    now: dt.datetime = FIXED_NOW,
    seed: int = 7,
) -> ReportData:
    last_day = now.date()
    first_day = last_day - dt.timedelta(days=days - 1)
    names = service_names(services)

    def day_rows(day_index: int) -> Iterator[DetailRow]:
        rng = random.Random(seed * 1_000_003 + day_index)
        usage = {metric.key: _usage_value(rng, metric.key) for metric in USAGE_METRICS}
        costs = [(name, _cost(rng)) for name in names]
        return day_detail_rows(first_day + dt.timedelta(days=day_index), usage, costs, "USD")

    def rows() -> Iterator[DetailRow]:
        for day_index in range(days):
            yield from day_rows(day_index)

    # The summary needs per-day totals; one pass over the same deterministic values.
    daily: list[DailyTotals] = []
    by_service: dict[str, Decimal] = dict.fromkeys(names, Decimal(0))
    usage_totals: dict[str, Decimal] = {metric.key: Decimal(0) for metric in USAGE_METRICS}
    for day_index in range(days):
        usage: dict[str, Decimal] = {}
        cost = Decimal(0)
        for row in day_rows(day_index):
            if row.metric == COST_METRIC:
                cost += row.value
                by_service[row.service] += row.value
            else:
                usage[row.metric] = Decimal(row.value)
        for key, value in usage.items():
            usage_totals[key] += value
        daily.append(DailyTotals(first_day + dt.timedelta(days=day_index), cost, usage))
    by_category = dict.fromkeys(CATEGORIES, Decimal(0))
    for name, amount in by_service.items():
        by_category[category_of(name)] += amount
    total = sum(by_service.values(), Decimal(0))
    return ReportData(
        customer_id=customer_id,
        report_type=report_type,
        period=f"{days}d",
        first_day=first_day,
        last_day=last_day,
        generated_at=now,
        usage=tuple(
            UsageFigure(
                metric.key,
                metric.unit,
                usage_totals[metric.key] / days
                if metric.kind == "gauge"
                else usage_totals[metric.key],
                previous=Decimal(0),
                change_percent=None,
            )
            for metric in USAGE_METRICS
        ),
        costs=CostSummary(
            currency="USD",
            total=total,
            by_category=by_category,
            by_service=dict(sorted(by_service.items(), key=lambda item: -item[1])),
            forecast_next_month=total / days * 30,
        ),
        compliance=ComplianceSummary(
            score=Decimal("92.5"),
            previous_score=Decimal("90.0"),
            direction="up",
            findings={"critical": 0, "high": 1, "medium": 3, "low": 7},
            top_issues=(Issue("S3.1", "S3 Block Public Access should be enabled", "high", 2),),
        ),
        daily=tuple(daily),
        rows=rows() if report_type == DETAILED else (),
        row_count=days * (len(USAGE_METRICS) + services) if report_type == DETAILED else 0,
    )
