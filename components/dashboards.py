"""CloudWatch dashboard widgets shared by the analytics and Phase 2 dashboards."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

from components.alarms import FIVE_MINUTES, ApiMetrics

Widget = dict[str, Any]


def metric_widget(
    title: str,
    metrics: list[list[Any]],
    region: str,
    *,
    stat: str = "Sum",
    period: int = FIVE_MINUTES,
    width: int = 12,
) -> Widget:
    """A time series widget; `metrics` rows are [namespace, name, dim, value, ..., {options}]."""
    return {
        "type": "metric",
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stat": stat,
            "period": period,
            "metrics": metrics,
        },
    }


def lambda_widgets(function_names: Sequence[pulumi.Input[str]], region: str) -> list[Widget]:
    """Invocations, errors, throttles and p95 duration of each function, one widget each."""

    def per_function(metric: str) -> list[list[Any]]:
        return [["AWS/Lambda", metric, "FunctionName", name] for name in function_names]

    return [
        metric_widget("Lambda invocations", per_function("Invocations"), region),
        metric_widget("Lambda errors", per_function("Errors"), region),
        metric_widget("Lambda throttles", per_function("Throttles"), region),
        metric_widget("Lambda duration p95 (ms)", per_function("Duration"), region, stat="p95"),
    ]


def api_requests_widget(api: ApiMetrics, region: str) -> Widget:
    return metric_widget(
        "API requests and errors",
        [
            ["AWS/ApiGateway", metric, *api.dimension_row]
            for metric in ("Count", api.client_errors, api.server_errors)
        ],
        region,
    )


def _per_table(
    title: str, metrics: tuple[str, str], table_names: Sequence[pulumi.Input[str]], region: str
) -> Widget:
    return metric_widget(
        title,
        [
            ["AWS/DynamoDB", metric, "TableName", table]
            for table in table_names
            for metric in metrics
        ],
        region,
    )


def dynamodb_capacity_widget(table_names: Sequence[pulumi.Input[str]], region: str) -> Widget:
    return _per_table(
        "DynamoDB consumed capacity",
        ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"),
        table_names,
        region,
    )


def dynamodb_throttles_widget(table_names: Sequence[pulumi.Input[str]], region: str) -> Widget:
    return _per_table(
        "DynamoDB throttle events",
        ("ReadThrottleEvents", "WriteThrottleEvents"),
        table_names,
        region,
    )


def dashboard_body(widgets: list[Widget]) -> pulumi.Output[str]:
    """The dashboard JSON once every name and id inside the widgets is known."""
    return pulumi.Output.from_input({"widgets": widgets}).apply(
        lambda body: json.dumps(body, separators=(",", ":"))
    )
