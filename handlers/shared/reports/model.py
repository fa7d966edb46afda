"""What a report contains, independent of its file format (pure).

A `ReportData` holds the small summary figures in memory and the detailed rows
as an iterable that renderers consume once, row by row, so a report of
100,000 rows streams from the data source to the file without being held.

Two tables come out of every report:

- the *summary table* (`summary_lines`): section, item, value, unit and the
  change against the previous period, for usage totals, cost breakdowns and
  compliance;
- the *data table* (`data_columns`/`data_rows`): for `detailed` reports one row
  per day, metric and service; for `summary` reports one row per day with the
  day's cost and usage totals.

Usage metrics measure the SecureBase platform itself, so their detailed rows
carry the service name `platform`; cost rows carry the Cost Explorer service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, NamedTuple

from handlers.shared import periods
from handlers.shared.http import bad_request
from handlers.shared.metrics_layout import SEVERITIES
from handlers.shared.reports.times import iso_utc
from handlers.shared.usage_metrics import USAGE_METRICS

SUMMARY = "summary"
DETAILED = "detailed"
REPORT_TYPES = (SUMMARY, DETAILED)

CSV = "csv"
JSON = "json"
PDF = "pdf"
XLSX = "xlsx"
FORMATS = (CSV, JSON, PDF, XLSX)
FORMAT_ALIASES = {"excel": XLSX}
ALLOWED_FORMATS = "one of csv, json, pdf, xlsx (excel is accepted as xlsx)"
ALLOWED_TYPES = "one of summary, detailed"

CONTENT_TYPES = {
    CSV: "text/csv; charset=utf-8",
    JSON: "application/json",
    PDF: "application/pdf",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

PLATFORM_SERVICE = "platform"
COST_METRIC = "cost"

Number = Decimal | float | int
ZERO = Decimal(0)


def reject_nulls(body: Mapping[str, Any], fields: Iterable[str]) -> None:
    """ApiError(400 invalid_body) for a field sent as JSON null, naming it: an optional
    field is left out for its default, as the OpenAPI schemas say (none is nullable)."""
    for name in sorted(fields):
        if name in body and body[name] is None:
            raise bad_request(
                "body", "without null fields (leave a field out for its default)", name
            )


def parse_format(raw: object, parameter: str = "format") -> str:
    """`csv|json|pdf|xlsx`, case-insensitive, `excel` as `xlsx`; else ApiError(400)."""
    value = raw.strip().lower() if isinstance(raw, str) else None
    value = FORMAT_ALIASES.get(value or "", value)
    if value not in FORMATS:
        raise bad_request(parameter, ALLOWED_FORMATS, raw)
    return value


def parse_period_label(raw: object, parameter: str = "period") -> str:
    """A valid period label ("30d" when absent); else ApiError(400)."""
    if raw is not None and not isinstance(raw, str):
        raise bad_request(parameter, periods.ALLOWED, raw)
    return periods.parse_period(raw, parameter).label


def parse_report_type(raw: object, parameter: str = "type") -> str:
    """`summary` (the default) or `detailed`; else ApiError(400)."""
    if raw is None:
        return SUMMARY
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value not in REPORT_TYPES:
        raise bad_request(parameter, ALLOWED_TYPES, raw)
    return value


class DetailRow(NamedTuple):
    """One row of a detailed report: a metric's value for one day and service."""

    day: dt.date
    metric: str  # a usage metric key, or "cost"
    service: str  # "platform" for usage metrics, the AWS service for costs
    value: Number
    unit: str  # calls, GB, hours, or the currency code


def day_detail_rows(
    day: dt.date,
    usage: Mapping[str, Number],
    costs: Iterable[tuple[str, Number]],
    currency: str,
) -> Iterator[DetailRow]:
    """One day of a detailed report: every usage metric (0 without a value), then each cost."""
    for metric in USAGE_METRICS:
        yield DetailRow(day, metric.key, PLATFORM_SERVICE, usage.get(metric.key, ZERO), metric.unit)
    for service, amount in costs:
        yield DetailRow(day, COST_METRIC, service, amount, currency)


@dataclass(frozen=True)
class UsageFigure:
    metric: str
    unit: str
    total: Number  # counters: the window's sum; storage (a gauge): its average
    # The API's trend (handlers.shared.analytics): the figure over the compared
    # span one period earlier, and the change to it over the window's compared
    # span (daily windows leave today's partial day out of both).
    previous: Number
    # None when the previous figure is zero or the comparison's basis is
    # incomplete (the previous window has fewer days with data).
    change_percent: Number | None
    basis: str = "complete"  # complete | incomplete (handlers.shared.analytics.trend)


@dataclass(frozen=True)
class CostSummary:
    currency: str
    total: Number
    by_category: Mapping[str, Number]
    by_service: Mapping[str, Number]  # largest first
    forecast_next_month: Number | None


@dataclass(frozen=True)
class Issue:
    control_id: str
    title: str
    severity: str
    failed_resources: int


@dataclass(frozen=True)
class ComplianceSummary:
    score: Number  # 0-100, from the latest snapshot
    previous_score: Number | None  # the latest snapshot at least a week older
    direction: str  # up | down | flat
    findings: Mapping[str, int]  # severity -> active findings
    top_issues: tuple[Issue, ...] = ()


@dataclass(frozen=True)
class DailyTotals:
    day: dt.date
    cost: Number
    usage: Mapping[str, Number]  # usage metric key -> the day's value


class SummaryLine(NamedTuple):
    section: str
    item: str  # a raw key in data exports ("api_calls"); `item_label` for readers
    value: Number | None
    unit: str
    change_percent: Number | None
    change_basis: str | None = None  # usage lines: complete | incomplete


# What readers see for the summary's raw items (PDF, spreadsheet summary).
_ITEM_LABELS = {
    **{metric.key: metric.label for metric in USAGE_METRICS},
    "total": "Total",
    "forecast_next_month": "Forecast next month",
    "score": "Score",
    "score a week earlier": "Score a week earlier",
}


def item_label(line: SummaryLine) -> str:
    """The summary item as a reader sees it: "API calls", "Compute", "Critical"."""
    if line.section in ("cost by service", "top issues"):
        return line.item  # AWS service names and issue titles are already prose
    return metric_label(line.item)


def metric_label(metric: str) -> str:
    """A detail row's metric as a reader sees it: "API calls", "Cost"."""
    return _ITEM_LABELS.get(metric) or section_label(metric)


def section_label(section: str) -> str:
    return section[:1].upper() + section[1:]


PARTIAL = "partial"
COMPLETE = "complete"


ColumnKind = Literal["date", "text", "number"]


@dataclass(frozen=True)
class Column:
    key: str  # CSV/JSON name
    title: str  # spreadsheet and PDF heading
    kind: ColumnKind
    # Unit of a number column; None when each row names it in its `unit` column.
    unit: str | None = None


SUMMARY_COLUMNS = (
    Column("section", "Section", "text"),
    Column("item", "Item", "text"),
    Column("value", "Value", "number"),
    Column("unit", "Unit", "text"),
    Column("change_percent", "Change %", "number", unit="percent"),
    Column("change_basis", "Change basis", "text"),
)
# `coverage` marks today's day, still being aggregated, as partial.
COVERAGE_COLUMN = Column("coverage", "Coverage", "text")
DETAIL_COLUMNS = (
    Column("date", "Date", "date"),
    Column("metric", "Metric", "text"),
    Column("service", "Service", "text"),
    Column("value", "Value", "number"),
    Column("unit", "Unit", "text"),
    COVERAGE_COLUMN,
)

# Decimal places a value is shown with, by unit (files keep full precision).
UNIT_DECIMALS = {"calls": 0, "findings": 0, "resources": 0, "GB": 3, "hours": 2, "percent": 1}
DEFAULT_DECIMALS = 2  # currencies


def decimals_for(unit: str) -> int:
    return UNIT_DECIMALS.get(unit, DEFAULT_DECIMALS)


def unit_column(columns: Sequence[Column]) -> int | None:
    """Index of the `unit` column, which gives the unit of number columns without one."""
    return next((index for index, column in enumerate(columns) if column.key == "unit"), None)


@dataclass(frozen=True)
class ReportData:
    customer_id: str
    report_type: str  # summary | detailed
    period: str  # the period label the client asked for: "30d"
    first_day: dt.date
    last_day: dt.date
    generated_at: dt.datetime  # UTC
    usage: tuple[UsageFigure, ...]
    costs: CostSummary
    compliance: ComplianceSummary
    daily: tuple[DailyTotals, ...]  # one per day of the window, oldest first
    # Detailed reports only; consumed once by the renderer.
    rows: Iterable[DetailRow] = field(default=())
    # How many detail rows `rows` yields, known before rendering (for estimates).
    row_count: int = 0

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def currency(self) -> str:
        return self.costs.currency

    @property
    def generated_at_label(self) -> str:
        return iso_utc(self.generated_at)

    @property
    def window_label(self) -> str:
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()}"

    @cached_property  # read once per data row while rendering
    def partial_day(self) -> dt.date | None:
        """The window's day still being aggregated (the report's own UTC day), if any."""
        today = self.generated_at.astimezone(dt.UTC).date()
        return today if self.first_day <= today <= self.last_day else None

    def coverage(self, day: dt.date) -> str:
        return PARTIAL if day == self.partial_day else COMPLETE

    def summary_lines(self) -> list[SummaryLine]:
        lines = [
            SummaryLine(
                "usage",
                figure.metric,
                figure.total,
                figure.unit,
                figure.change_percent,
                figure.basis,
            )
            for figure in self.usage
        ]
        costs = self.costs
        lines.append(SummaryLine("cost", "total", costs.total, costs.currency, None))
        if costs.forecast_next_month is not None:
            lines.append(
                SummaryLine(
                    "cost", "forecast_next_month", costs.forecast_next_month, costs.currency, None
                )
            )
        lines.extend(
            SummaryLine("cost by category", name, amount, costs.currency, None)
            for name, amount in costs.by_category.items()
        )
        lines.extend(
            SummaryLine("cost by service", name, amount, costs.currency, None)
            for name, amount in costs.by_service.items()
        )
        compliance = self.compliance
        lines.append(SummaryLine("compliance", "score", compliance.score, "percent", None))
        if compliance.previous_score is not None:
            lines.append(
                SummaryLine(
                    "compliance", "score a week earlier", compliance.previous_score, "percent", None
                )
            )
        lines.extend(
            SummaryLine(
                "findings", severity, compliance.findings.get(severity, 0), "findings", None
            )
            for severity in SEVERITIES
        )
        lines.extend(
            SummaryLine(
                "top issues",
                f"{issue.control_id} {issue.title} ({issue.severity})",
                issue.failed_resources,
                "resources",
                None,
            )
            for issue in compliance.top_issues
        )
        return lines

    def data_columns(self) -> tuple[Column, ...]:
        if self.report_type == DETAILED:
            return DETAIL_COLUMNS
        return (
            Column("date", "Date", "date"),
            Column("cost", f"Cost ({self.currency})", "number", unit=self.currency),
            *(
                Column(metric.key, metric.label, "number", unit=metric.unit)
                for metric in USAGE_METRICS
            ),
            COVERAGE_COLUMN,
        )

    def data_rows(self) -> Iterator[tuple[object, ...]]:
        """The data table's rows as plain tuples matching `data_columns`."""
        if self.report_type == DETAILED:
            return ((*row, self.coverage(row.day)) for row in self.rows)
        return (
            (
                totals.day,
                totals.cost,
                *(totals.usage.get(metric.key, 0) for metric in USAGE_METRICS),
                self.coverage(totals.day),
            )
            for totals in self.daily
        )
