import datetime as dt
from decimal import Decimal

import pytest

from handlers.shared import analytics
from handlers.shared.metrics_layout import (
    ComplianceIssue,
    ComplianceSnapshot,
    DailyCost,
    DailyUsage,
)
from handlers.shared.metrics_reader import MetricsReader
from handlers.shared.periods import parse_period
from handlers.shared.reports.builder import load_report_data, report_from_records
from handlers.shared.reports.model import DetailRow
from tests.test_report_support import NOW, moto_stack, seed_tenant

TODAY = NOW.date()


def day(offset: int) -> dt.date:
    return TODAY - dt.timedelta(days=offset)


USAGE = [
    DailyUsage(day(0), "api_calls", Decimal(100), 14),
    DailyUsage(day(0), "storage_gb", Decimal("10.5"), 14),
    DailyUsage(day(2), "api_calls", Decimal(40), 24),
    DailyUsage(day(5), "api_calls", Decimal(7), 24),  # the previous window of a 3-day period
]
COSTS = [
    DailyCost(day(0), "USD", {"AWS Lambda": Decimal("0.105")}, {}),
    DailyCost(
        day(1),
        "USD",
        {"Amazon Simple Storage Service": Decimal("2"), "AWS Lambda": Decimal("1.1")},
        {"us-east-1": Decimal("3.1")},
    ),
]
SNAPSHOTS = [
    ComplianceSnapshot(
        day(0),
        Decimal("88.88"),
        8,
        1,
        {"high": 2},
        (ComplianceIssue("IAM.1", "Root account MFA", "critical", 1),),
        "2026-11-23T13:00:00Z",
    )
]


def build(report_type: str, period: str = "3d"):
    return report_from_records(
        tenant="acme",
        report_type=report_type,
        period=parse_period(period),
        now=NOW,
        usage_records=USAGE,
        cost_days=COSTS,
        compliance_snapshots=SNAPSHOTS,
        daily_usage=USAGE,
    )


def test_headline_figures_are_the_analytics_bodies():
    data = build("summary")
    period = parse_period("3d")
    usage = analytics.usage_body("acme", period, USAGE, NOW)
    costs = analytics.costs_body("acme", period, "service", COSTS, NOW)

    assert {figure.metric: figure.total for figure in data.usage} == usage["metrics"]
    api_calls = next(figure for figure in data.usage if figure.metric == "api_calls")
    # 140 calls against the previous window's 7 (its last day, day 3, had none):
    # fewer days with data before than now, so no change (not +1900%).
    assert (api_calls.total, api_calls.previous, api_calls.change_percent) == (
        Decimal(140),
        Decimal(7),
        None,
    )
    assert api_calls.basis == usage["trends"]["api_calls"]["basis"] == "incomplete"
    assert data.costs.total == costs["total"] == Decimal("3.21")
    assert data.costs.by_service == costs["breakdown"]
    assert list(data.costs.by_service) == ["Amazon Simple Storage Service", "AWS Lambda"]
    assert data.costs.by_category == {
        "compute": Decimal("1.21"),
        "storage": Decimal("2.00"),
        "networking": Decimal("0.00"),
        "other": Decimal("0.00"),
    }
    assert data.compliance.score == Decimal("88.9")
    assert data.compliance.findings == {"critical": 0, "high": 2, "medium": 0, "low": 0}
    assert data.compliance.top_issues[0].control_id == "IAM.1"
    assert (data.first_day, data.last_day, data.period) == (day(2), day(0), "3d")


def test_daily_totals_cover_every_day_of_the_window():
    data = build("summary")

    assert [totals.day for totals in data.daily] == [day(2), day(1), day(0)]
    assert [totals.cost for totals in data.daily] == [0, Decimal("3.1"), Decimal("0.105")]
    assert [totals.usage["api_calls"] for totals in data.daily] == [40, 0, 100]
    assert data.rows == () and data.row_count == 0


def test_detailed_rows_are_one_per_day_metric_and_service():
    data = build("detailed")
    rows = list(data.rows)

    assert len(rows) == data.row_count == 3 * 4 + 2 + 1
    assert rows[0] == DetailRow(day(2), "api_calls", "platform", Decimal(40), "calls")
    assert rows[1] == DetailRow(day(2), "storage_gb", "platform", Decimal(0), "GB")
    assert [row for row in rows if row.metric == "cost"] == [
        DetailRow(day(1), "cost", "AWS Lambda", Decimal("1.1"), "USD"),
        DetailRow(day(1), "cost", "Amazon Simple Storage Service", Decimal("2"), "USD"),
        DetailRow(day(0), "cost", "AWS Lambda", Decimal("0.105"), "USD"),
    ]


@pytest.mark.parametrize("period", ["1d", "2d", "30d"])
def test_reading_from_the_table_gives_the_same_data_as_the_query_api(monkeypatch, period):
    with moto_stack(monkeypatch) as stack:
        seed_tenant(stack, "acme", days=65)
        reader = MetricsReader(stack.dynamodb, stack.tables["metrics"])

        data = load_report_data(reader, "acme", "detailed", parse_period(period), NOW)

        usage = analytics.usage_body(
            "acme",
            parse_period(period),
            reader.usage_for_period("acme", parse_period(period), NOW),
            NOW,
        )
        assert {figure.metric: figure.total for figure in data.usage} == usage["metrics"]
        days = parse_period(period).days
        assert len(list(data.rows)) == data.row_count == days * (4 + 2)
        assert data.daily[-1].usage["api_calls"] == 1000  # today's rollup, even for 1d
