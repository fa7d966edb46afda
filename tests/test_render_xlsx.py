import dataclasses
import datetime as dt
from decimal import Decimal

from openpyxl import load_workbook

from handlers.shared.reports.model import SUMMARY, DetailRow
from handlers.shared.reports.render import render
from handlers.shared.reports.synthetic import synthetic_report


def test_detailed_workbook_has_summary_and_data_sheets(tmp_path):
    data = synthetic_report(days=3, services=2)
    rendered = render(data, "xlsx", tmp_path / "r.xlsx")

    workbook = load_workbook(tmp_path / "r.xlsx")
    assert workbook.sheetnames == ["Summary", "Data"]
    sheet = workbook["Data"]
    assert [cell.value for cell in sheet[1]] == [
        "Date",
        "Metric",
        "Service",
        "Value",
        "Unit",
        "Coverage",
    ]
    assert sheet.max_row == 1 + rendered.rows == 1 + 3 * 6
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:F19"
    header = sheet["A1"]
    assert header.font.bold
    assert header.fill.fgColor.rgb.endswith("1F3864")

    date, metric, service, value, unit, coverage = sheet[2]
    assert coverage.value == "complete"
    assert sheet[19][5].value == "partial"  # today
    assert date.is_date and date.value == dt.datetime(2026, 11, 21)
    assert date.number_format == "yyyy-mm-dd"
    assert (metric.value, service.value, unit.value) == ("api_calls", "platform", "calls")
    assert value.data_type == "n" and isinstance(value.value, int | float)
    assert value.number_format == "#,##0"  # calls: whole numbers
    cost = sheet[6]
    assert cost[1].value == "cost" and cost[4].value == "USD"
    assert cost[3].number_format == "#,##0.00"
    assert sheet[3][3].number_format == "#,##0.000"  # storage_gb


def test_summary_sheet_shows_the_tenant_totals_and_a_daily_cost_chart(tmp_path):
    data = synthetic_report(days=10, services=3)
    render(data, "xlsx", tmp_path / "r.xlsx")

    sheet = load_workbook(tmp_path / "r.xlsx")["Summary"]
    values = {row[0]: row[1:] for row in sheet.iter_rows(values_only=True) if row[0]}
    assert values["Tenant"][0] == "acme"
    assert values["Period"][0] == "10d"
    assert values["From"][0] == dt.datetime(2026, 11, 14)
    assert values["Generated (UTC)"][0] == dt.datetime(2026, 11, 23, 14, 5, 9)
    totals = [row for row in sheet.iter_rows(values_only=True) if row[:2] == ("Cost", "Total")]
    assert totals == [("Cost", "Total", float(data.costs.total), "USD", None, None)]
    items = [row[1] for row in sheet.iter_rows(values_only=True) if row[0] == "Usage"]
    assert items == ["API calls", "Storage (GB)", "Compute hours", "Data transfer (GB)"]
    daily = [
        row[:3] for row in sheet.iter_rows(values_only=True) if isinstance(row[0], dt.datetime)
    ]
    assert [coverage for *_, coverage in daily] == ["complete"] * 9 + ["partial"]
    daily = [(day, cost) for day, cost, _ in daily]
    assert [day for day, _ in daily] == [dt.datetime(2026, 11, 14 + offset) for offset in range(10)]
    assert sum(Decimal(str(cost)) for _, cost in daily) == data.costs.total
    (chart,) = sheet._charts
    assert chart.tagname == "lineChart"
    assert len(chart.series) == 1


def test_summary_report_data_sheet_has_one_row_per_day(tmp_path):
    data = synthetic_report(days=4, services=2, report_type=SUMMARY)
    rendered = render(data, "xlsx", tmp_path / "r.xlsx")

    sheet = load_workbook(tmp_path / "r.xlsx")["Data"]
    assert [cell.value for cell in sheet[1]] == [
        "Date",
        "Cost (USD)",
        "API calls",
        "Storage (GB)",
        "Compute hours",
        "Data transfer (GB)",
        "Coverage",
    ]
    assert rendered.rows == sheet.max_row - 1 == 4
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:G5"
    assert sheet["B2"].number_format == "#,##0.00"


def test_text_that_looks_like_a_formula_stays_text(tmp_path):
    day = dt.date(2026, 11, 23)
    data = dataclasses.replace(
        synthetic_report(days=1, services=0),
        rows=[DetailRow(day, "cost", '=HYPERLINK("http://x","y")\x07', Decimal("1.25"), "USD")],
    )
    render(data, "xlsx", tmp_path / "r.xlsx")

    cell = load_workbook(tmp_path / "r.xlsx")["Data"]["C2"]
    assert cell.data_type == "s"
    assert cell.value == '=HYPERLINK("http://x","y")'  # control character dropped
