import csv
import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.shared.reports.model import DETAILED, SUMMARY, DetailRow
from handlers.shared.reports.render import render
from handlers.shared.reports.render_csv import neutralise, restore
from handlers.shared.reports.synthetic import synthetic_report


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


def test_detailed_csv_has_a_header_and_one_row_per_day_metric_and_service(tmp_path):
    data = synthetic_report(days=3, services=2)
    rendered = render(data, "csv", tmp_path / "r.csv")

    rows = read_csv(tmp_path / "r.csv")
    assert rows[0] == ["date", "metric", "service", "value", "unit", "coverage"]
    assert len(rows) == 1 + 3 * (4 + 2) == 1 + rendered.rows
    assert rows[1][:3] == ["2026-11-21", "api_calls", "platform"]
    assert rows[1][4] == "calls"
    assert rows[5][1:3] == ["cost", "Amazon Elastic Compute Cloud - Compute"]
    assert rows[5][4] == "USD"
    assert {row[5] for row in rows[1:] if row[0] == "2026-11-23"} == {"partial"}
    assert {row[5] for row in rows[1:] if row[0] != "2026-11-23"} == {"complete"}
    # Exact decimals, no exponent notation.
    assert all("E" not in row[3] and Decimal(row[3]) >= 0 for row in rows[1:])


def test_summary_csv_holds_usage_costs_and_compliance(tmp_path):
    data = synthetic_report(days=7, services=3, report_type=SUMMARY)
    render(data, "csv", tmp_path / "r.csv")

    rows = read_csv(tmp_path / "r.csv")
    assert rows[0] == ["section", "item", "value", "unit", "change_percent", "change_basis"]
    by_item = {(row[0], row[1]): row for row in rows[1:]}
    assert by_item[("cost", "total")][2:4] == [str(data.costs.total), "USD"]
    assert by_item[("usage", "api_calls")][3] == "calls"
    assert ("cost by category", "compute") in by_item
    assert ("cost by service", "AWS Lambda") in by_item
    assert by_item[("compliance", "score")][2:4] == ["92.5", "percent"]
    assert by_item[("findings", "low")][2] == "7"
    assert ("top issues", "S3.1 S3 Block Public Access should be enabled (high)") in by_item


def test_formula_prefixes_are_neutralised_in_text_cells(tmp_path):
    day = dt.date(2026, 11, 23)
    hostile = ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=x", "ok"]
    data = dataclasses.replace(
        synthetic_report(days=1, services=0),
        rows=[DetailRow(day, "cost", name, Decimal("-1.5"), "USD") for name in hostile],
    )
    render(data, "csv", tmp_path / "r.csv")

    services = [row[2] for row in read_csv(tmp_path / "r.csv")[1:]]
    assert services == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "''=x",
        "ok",
    ]
    # Numbers are ours and stay numbers, negative ones included.
    assert {row[3] for row in read_csv(tmp_path / "r.csv")[1:]} == {"-1.5"}


text_cells = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"), st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", "'"])
    ),
    max_size=30,
)


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    cells=st.lists(
        st.tuples(text_cells, text_cells, st.decimals(allow_nan=False, allow_infinity=False)),
        max_size=8,
    )
)
def test_csv_round_trips_arbitrary_text(tmp_path, cells):
    day = dt.date(2026, 11, 23)
    rows = [DetailRow(day, metric, service, value, "USD") for metric, service, value in cells]
    data = dataclasses.replace(
        synthetic_report(days=1, services=0), report_type=DETAILED, rows=rows
    )
    path = tmp_path / "round-trip.csv"
    render(data, "csv", path)

    read = read_csv(path)[1:]
    assert len(read) == len(rows)
    for original, (date, metric, service, value, unit, _coverage) in zip(rows, read, strict=True):
        assert metric == neutralise(original.metric)
        assert restore(metric) == original.metric
        assert restore(service) == original.service
        assert not service.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert Decimal(value) == original.value
        assert (date, unit) == ("2026-11-23", "USD")
