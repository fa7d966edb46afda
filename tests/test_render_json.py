import dataclasses
import datetime as dt
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.shared.reports.model import SUMMARY, DetailRow
from handlers.shared.reports.render import render
from handlers.shared.reports.synthetic import synthetic_report


def test_json_report_follows_the_documented_schema(tmp_path):
    data = synthetic_report(days=2, services=1)
    rendered = render(data, "json", tmp_path / "r.json")

    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert list(report) == [
        "schema_version",
        "customer_id",
        "type",
        "period",
        "window",
        "generated_at",
        "currency",
        "usage",
        "costs",
        "compliance",
        "daily",
        "rows",
    ]
    assert report["schema_version"] == 1
    assert report["customer_id"] == "acme"
    assert report["type"] == "detailed"
    assert report["period"] == "2d"
    assert report["window"] == {"first_day": "2026-11-22", "last_day": "2026-11-23", "days": 2}
    assert report["generated_at"] == "2026-11-23T14:05:09Z"
    assert set(report["usage"]) == {"api_calls", "storage_gb", "compute_hours", "data_transfer_gb"}
    assert report["usage"]["api_calls"]["unit"] == "calls"
    assert report["costs"]["total"] == float(data.costs.total)
    assert report["costs"]["by_category"].keys() == {"compute", "storage", "networking", "other"}
    assert report["compliance"]["findings"] == {"critical": 0, "high": 1, "medium": 3, "low": 7}
    assert report["compliance"]["top_issues"][0]["control_id"] == "S3.1"
    assert [day["date"] for day in report["daily"]] == ["2026-11-22", "2026-11-23"]
    assert len(report["rows"]) == rendered.rows == 2 * (4 + 1)
    assert report["rows"][0] == {
        "date": "2026-11-22",
        "metric": "api_calls",
        "service": "platform",
        "value": report["rows"][0]["value"],
        "unit": "calls",
        "coverage": "complete",
    }
    assert isinstance(report["rows"][0]["value"], int)
    # Today, still being aggregated, is partial wherever a day is shown.
    assert report["rows"][-1]["coverage"] == "partial"
    assert [day["coverage"] for day in report["daily"]] == ["complete", "partial"]
    assert report["usage"]["api_calls"]["basis"] == "complete"


def test_summary_json_has_no_rows_but_daily_totals(tmp_path):
    data = synthetic_report(days=5, services=2, report_type=SUMMARY)
    rendered = render(data, "json", tmp_path / "r.json")

    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert "rows" not in report
    assert rendered.rows == len(report["daily"]) == 5
    assert sum(Decimal(str(day["cost"])) for day in report["daily"]) == data.costs.total


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    cells=st.lists(
        st.tuples(
            st.text(max_size=20),
            st.text(max_size=20),
            st.decimals(allow_nan=False, allow_infinity=False, places=4, max_value=10**9),
        ),
        max_size=8,
    ),
    tenant=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
)
def test_json_round_trips_arbitrary_text_and_numbers(tmp_path, cells, tenant):
    day = dt.date(2026, 11, 23)
    rows = [DetailRow(day, metric, service, value, "USD") for metric, service, value in cells]
    data = dataclasses.replace(synthetic_report(days=1, services=0), customer_id=tenant, rows=rows)
    path = tmp_path / "round-trip.json"
    render(data, "json", path)

    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["customer_id"] == tenant
    assert [(r["metric"], r["service"], r["value"]) for r in report["rows"]] == [
        (metric, service, float(value) if value != value.to_integral_value() else int(value))
        for metric, service, value in cells
    ]
