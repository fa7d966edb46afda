"""JSON rendering with a stable, versioned schema (pure).

    {
      "schema_version": 1,
      "customer_id": "acme",
      "type": "summary" | "detailed",
      "period": "30d",
      "window": {"first_day": "2026-10-25", "last_day": "2026-11-23", "days": 30},
      "generated_at": "2026-11-23T14:05:09Z",
      "currency": "USD",
      "usage": {"api_calls": {"total": 1200, "previous": 1066, "unit": "calls",
                              "change_percent": 12.6, "basis": "complete"}, ...},
      "costs": {"total": 81.2, "currency": "USD", "by_category": {...},
                "by_service": {...}, "forecast_next_month": 84.0},
      "compliance": {"score": 92.5, "previous_score": 90.0, "direction": "up",
                     "findings": {"critical": 0, "high": 1, "medium": 3, "low": 7},
                     "top_issues": [{"control_id", "title", "severity", "failed_resources"}]},
      "daily": [{"date": "2026-10-25", "cost": 2.71, "api_calls": 40, ...,
                 "coverage": "complete"}, ...],            (today: "partial")
      "rows": [{"date", "metric", "service", "value", "unit", "coverage"}, ...]
                                                           (detailed only)
    }

Numbers are JSON numbers (integers where exact), dates ISO-8601. A usage
figure's `change_percent` is null when its `basis` is `incomplete` (the
previous window has fewer days with data). Fields are
only ever added under the same `schema_version`. Rows are written one at a
time, so large reports stream to the file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from handlers.shared.reports.model import DETAILED, ReportData
from handlers.shared.usage_metrics import USAGE_METRICS

SCHEMA_VERSION = 1


def json_number(value: Decimal | float | int | None) -> float | int | None:
    if value is None or isinstance(value, int | float):
        return value
    return int(value) if value == value.to_integral_value() else float(value)


def _amounts(amounts: Mapping[str, Any]) -> dict[str, float | int | None]:
    return {name: json_number(amount) for name, amount in amounts.items()}


def report_head(data: ReportData) -> dict[str, Any]:
    """Everything but the detailed rows."""
    costs, compliance = data.costs, data.compliance
    return {
        "schema_version": SCHEMA_VERSION,
        "customer_id": data.customer_id,
        "type": data.report_type,
        "period": data.period,
        "window": {
            "first_day": data.first_day.isoformat(),
            "last_day": data.last_day.isoformat(),
            "days": data.days,
        },
        "generated_at": data.generated_at_label,
        "currency": data.currency,
        "usage": {
            figure.metric: {
                "total": json_number(figure.total),
                "previous": json_number(figure.previous),
                "unit": figure.unit,
                "change_percent": json_number(figure.change_percent),
                "basis": figure.basis,
            }
            for figure in data.usage
        },
        "costs": {
            "total": json_number(costs.total),
            "currency": costs.currency,
            "by_category": _amounts(costs.by_category),
            "by_service": _amounts(costs.by_service),
            "forecast_next_month": json_number(costs.forecast_next_month),
        },
        "compliance": {
            "score": json_number(compliance.score),
            "previous_score": json_number(compliance.previous_score),
            "direction": compliance.direction,
            "findings": dict(compliance.findings),
            "top_issues": [
                {
                    "control_id": issue.control_id,
                    "title": issue.title,
                    "severity": issue.severity,
                    "failed_resources": issue.failed_resources,
                }
                for issue in compliance.top_issues
            ],
        },
        "daily": [
            {
                "date": totals.day.isoformat(),
                "cost": json_number(totals.cost),
                **{
                    metric.key: json_number(totals.usage.get(metric.key, 0))
                    for metric in USAGE_METRICS
                },
                "coverage": data.coverage(totals.day),
            }
            for totals in data.daily
        ],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _row_json(day: dt.date, metric: str, service: str, value: Any, unit: str, coverage: str) -> str:
    return _dumps(
        {
            "date": day.isoformat(),
            "metric": metric,
            "service": service,
            "value": json_number(value),
            "unit": unit,
            "coverage": coverage,
        }
    )


def render(data: ReportData, path: Path) -> int:
    """Writes the report to `path`; returns the number of data rows."""
    head = report_head(data)
    written = 0
    with path.open("w", encoding="utf-8") as stream:
        stream.write(_dumps(head)[:-1])  # without the closing brace: rows follow
        if data.report_type == DETAILED:
            stream.write(',"rows":[')
            for row in data.data_rows():
                stream.write(("," if written else "") + "\n" + _row_json(*row))
                written += 1
            stream.write("\n]")
        else:
            written = len(data.daily)
        stream.write("}\n")
    return written
