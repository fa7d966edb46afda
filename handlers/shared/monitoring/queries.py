"""What the monitor reads from CloudWatch, as one GetMetricData request (pure).

Every metric of every Phase 2 resource becomes one query whose Period is the
whole lookback window, so each query answers with a single aggregate datapoint
and the run needs exactly one GetMetricData call (at most 500 queries and
100,800 datapoints per call; the largest valid config has 463 queries).
Percentile statistics are deliberately absent: Average and Maximum say enough
here, and moto cannot answer pNN.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from handlers.shared.monitoring.config import MonitorConfig

MAX_QUERIES_PER_CALL = 500
QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class MetricSpec:
    key: str  # stable name in the report and its JSON: "cpu_max"
    label: str  # column or row title: "CPU (max)"
    metric_name: str  # CloudWatch name: "CPUUtilization"
    stat: str  # "Sum" | "Average" | "Maximum"
    unit: str  # how the value is shown: "percent" | "count" | "ms" | "number"
    scale: float = 1.0  # CloudWatch unit -> shown unit (RDS latency: seconds -> ms)
    # CloudWatch routinely has no datapoints for it (throttle events are only
    # published when they happen, DBLoad only with Performance Insights), so
    # its absence is shown in the table but not called out in the no-data note.
    often_absent: bool = False


@dataclass(frozen=True)
class Component:
    key: str  # "lambda": JSON key and query id prefix
    title: str  # "Lambda"
    namespace: str
    dimension: str
    metrics: tuple[MetricSpec, ...]


AURORA = Component(
    key="aurora",
    title="Aurora",
    namespace="AWS/RDS",
    dimension="DBClusterIdentifier",
    metrics=(
        MetricSpec("cpu_avg", "CPU (avg)", "CPUUtilization", "Average", "percent"),
        MetricSpec("cpu_max", "CPU (max)", "CPUUtilization", "Maximum", "percent"),
        MetricSpec("connections_avg", "Connections (avg)", "DatabaseConnections", "Average", "number"),
        MetricSpec("connections_max", "Connections (max)", "DatabaseConnections", "Maximum", "number"),
        MetricSpec("db_load_avg", "DB load (avg sessions)", "DBLoad", "Average", "number", often_absent=True),
        MetricSpec("db_load_max", "DB load (max sessions)", "DBLoad", "Maximum", "number", often_absent=True),
        MetricSpec("read_latency_avg", "Read latency (avg)", "ReadLatency", "Average", "ms", 1000.0),
        MetricSpec("write_latency_avg", "Write latency (avg)", "WriteLatency", "Average", "ms", 1000.0),
    ),
)  # fmt: skip
LAMBDA = Component(
    key="lambda",
    title="Lambda",
    namespace="AWS/Lambda",
    dimension="FunctionName",
    metrics=(
        MetricSpec("invocations", "Invocations", "Invocations", "Sum", "count"),
        MetricSpec("errors", "Errors", "Errors", "Sum", "count"),
        MetricSpec("throttles", "Throttles", "Throttles", "Sum", "count"),
        MetricSpec("duration_avg", "Duration (avg)", "Duration", "Average", "ms"),
        MetricSpec("duration_max", "Duration (max)", "Duration", "Maximum", "ms"),
    ),
)  # fmt: skip


def _api_gateway(dimension: str, client_errors: str, server_errors: str) -> Component:
    """REST and HTTP APIs publish the same facts under different names and dimensions."""
    return Component(
        key="api_gateway",
        title="API Gateway",
        namespace="AWS/ApiGateway",
        dimension=dimension,
        metrics=(
            MetricSpec("requests", "Requests", "Count", "Sum", "count"),
            MetricSpec("errors_4xx", "4xx errors", client_errors, "Sum", "count"),
            MetricSpec("errors_5xx", "5xx errors", server_errors, "Sum", "count"),
            MetricSpec("latency_avg", "Latency (avg)", "Latency", "Average", "ms"),
            MetricSpec("latency_max", "Latency (max)", "Latency", "Maximum", "ms"),
        ),
    )


REST_API = _api_gateway(dimension="ApiName", client_errors="4XXError", server_errors="5XXError")
HTTP_API = _api_gateway(dimension="ApiId", client_errors="4xx", server_errors="5xx")
DYNAMODB = Component(
    key="dynamodb",
    title="DynamoDB",
    namespace="AWS/DynamoDB",
    dimension="TableName",
    metrics=(
        MetricSpec("read_units", "Read units", "ConsumedReadCapacityUnits", "Sum", "count"),
        MetricSpec("write_units", "Write units", "ConsumedWriteCapacityUnits", "Sum", "count"),
        MetricSpec("read_throttles", "Read throttles", "ReadThrottleEvents", "Sum", "count", often_absent=True),
        MetricSpec("write_throttles", "Write throttles", "WriteThrottleEvents", "Sum", "count", often_absent=True),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class MetricQuery:
    id: str  # "lambda2_errors": unique, matches QUERY_ID
    component: Component
    resource: str
    metric: MetricSpec

    @property
    def reading_key(self) -> ReadingKey:
        return (self.component.key, self.resource, self.metric.key)


# (component key, resource, metric key) -> the value in the shown unit, None for no data.
ReadingKey: TypeAlias = tuple[str, str, str]
Readings: TypeAlias = Mapping[ReadingKey, float | None]


def monitored_resources(config: MonitorConfig) -> list[tuple[Component, str]]:
    """Every (component, resource) pair, in report order."""
    api = REST_API if config.api.kind == "rest" else HTTP_API
    return [
        (AURORA, config.aurora_cluster_id),
        *((LAMBDA, name) for name in config.function_names),
        (api, config.api.identifier),
        *((DYNAMODB, name) for name in config.table_names),
    ]


def build_queries(config: MonitorConfig) -> tuple[MetricQuery, ...]:
    queries: list[MetricQuery] = []
    index_by_component: dict[str, int] = {}
    for component, resource in monitored_resources(config):
        # Ids carry a per-component position, not the name: names hold dashes.
        index = index_by_component.get(component.key, 0)
        index_by_component[component.key] = index + 1
        queries.extend(
            MetricQuery(f"{component.key}{index}_{metric.key}", component, resource, metric)
            for metric in component.metrics
        )
    if len(queries) > MAX_QUERIES_PER_CALL:
        raise ValueError(f"{len(queries)} queries exceed one GetMetricData call's 500")
    return tuple(queries)


def lookback_window(now: dt.datetime, hours: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) ending at the last whole minute, where CloudWatch rounds anyway."""
    end = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    return end - dt.timedelta(hours=hours), end


def metric_data_queries(queries: Iterable[MetricQuery], hours: int) -> list[dict]:
    """The MetricDataQueries parameter: one aggregate datapoint per query."""
    period = hours * 3600
    return [
        {
            "Id": query.id,
            "MetricStat": {
                "Metric": {
                    "Namespace": query.component.namespace,
                    "MetricName": query.metric.metric_name,
                    "Dimensions": [{"Name": query.component.dimension, "Value": query.resource}],
                },
                "Period": period,
                "Stat": query.metric.stat,
            },
            "ReturnData": True,
        }
        for query in queries
    ]


def collect_values(pages: Iterable[Mapping]) -> dict[str, list[float]]:
    """Datapoints by query id across GetMetricData pages (a query may span pages)."""
    values: dict[str, list[float]] = {}
    for page in pages:
        for result in page.get("MetricDataResults", []):
            values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
    return values


def readings(queries: Iterable[MetricQuery], values: Mapping[str, list[float]]) -> Readings:
    """One value per query in its shown unit; no datapoints is None, never 0."""
    result: dict[ReadingKey, float | None] = {}
    for query in queries:
        datapoints = values.get(query.id)
        result[query.reading_key] = (
            _combine(query.metric.stat, datapoints) * query.metric.scale if datapoints else None
        )
    return result


def _combine(stat: str, datapoints: list[float]) -> float:
    """One value from the datapoints of a query.

    With Period = the window there is one datapoint; CloudWatch may still split
    a window that does not line up with its period boundaries into two. Sums
    add, maxima take the largest, and averages take the mean (exact for one).
    """
    if stat == "Sum":
        return sum(datapoints)
    if stat == "Maximum":
        return max(datapoints)
    return sum(datapoints) / len(datapoints)
