"""GetMetricData requests for per-tenant usage, and reading their results (pure).

One MetricDataQuery per (tenant, metric), 500 per request (the API's limit),
so N tenants cost ceil(4N / 500) requests per window however many hours the
window holds. Query ids are positional ("q0".."q499") and map back to the
(tenant, metric) they ask for; tenant ids never appear in an id, which keeps
ids valid whatever characters a tenant id uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from handlers.shared.usage_metrics import USAGE_METRICS, UsageMetric

DEFAULT_NAMESPACE = "SecureBase/Platform"
DEFAULT_TENANT_DIMENSION = "CustomerId"
DEFAULT_METRIC_NAMES = {
    "api_calls": "ApiCalls",
    "storage_gb": "StorageBytes",
    "compute_hours": "ComputeSeconds",
    "data_transfer_gb": "DataTransferBytes",
}

MAX_QUERIES_PER_REQUEST = 500
PERIOD_SECONDS = 3600
# A query whose result has one of these states returned nothing usable.
# (PartialData only means "more on the next page", which is followed.)
FAILED_STATUSES = frozenset({"InternalError", "Forbidden"})


@dataclass(frozen=True)
class UsageSource:
    """Where the platform publishes usage: namespace, tenant dimension, metric names."""

    namespace: str
    tenant_dimension: str
    metric_names: Mapping[str, str]  # usage metric key -> CloudWatch metric name


@dataclass(frozen=True)
class SeriesKey:
    tenant: str
    metric: str  # usage metric key, e.g. "storage_gb"


@dataclass(frozen=True)
class QueryBatch:
    """One GetMetricData request's queries, and what each query id stands for."""

    queries: tuple[dict[str, Any], ...]
    series: Mapping[str, SeriesKey]  # query id -> (tenant, metric)

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(key.tenant for key in self.series.values())


def metric_query(query_id: str, tenant: str, metric: UsageMetric, source: UsageSource) -> dict:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": source.namespace,
                "MetricName": source.metric_names[metric.key],
                "Dimensions": [{"Name": source.tenant_dimension, "Value": tenant}],
            },
            "Period": PERIOD_SECONDS,
            # Counters: the hour's total; storage: the hour's average level.
            "Stat": metric.statistic,
        },
        "ReturnData": True,
    }


def query_batches(
    tenants: Sequence[str],
    source: UsageSource,
    metrics: Sequence[UsageMetric] = USAGE_METRICS,
    batch_size: int = MAX_QUERIES_PER_REQUEST,
) -> list[QueryBatch]:
    """Every (tenant, metric) exactly once, at most `batch_size` queries per batch."""
    pairs = [(tenant, metric) for tenant in tenants for metric in metrics]
    batches = []
    for offset in range(0, len(pairs), batch_size):
        chunk = pairs[offset : offset + batch_size]
        ids = [f"q{index}" for index in range(len(chunk))]
        batches.append(
            QueryBatch(
                queries=tuple(
                    metric_query(query_id, tenant, metric, source)
                    for query_id, (tenant, metric) in zip(ids, chunk, strict=True)
                ),
                series={
                    query_id: SeriesKey(tenant, metric.key)
                    for query_id, (tenant, metric) in zip(ids, chunk, strict=True)
                },
            )
        )
    return batches


@dataclass(frozen=True)
class BatchResult:
    values: Mapping[SeriesKey, Mapping[dt.datetime, float]]  # hour start (UTC) -> raw value
    failed: Mapping[SeriesKey, str]  # series that returned an error status -> status


def read_results(batch: QueryBatch, results: Iterable[Mapping[str, Any]]) -> BatchResult:
    """Raw hourly values per series from the `MetricDataResults` of every page.

    A series with no datapoint for an hour simply has no value for it: no
    data is not the same as zero, and the rollups must not count it.
    """
    values: dict[SeriesKey, dict[dt.datetime, float]] = {}
    failed: dict[SeriesKey, str] = {}
    for result in results:
        key = batch.series.get(result.get("Id", ""))
        if key is None:
            continue
        status = result.get("StatusCode", "Complete")
        if status in FAILED_STATUSES:
            failed[key] = status
            continue
        series = values.setdefault(key, {})
        for timestamp, value in zip(
            result.get("Timestamps", []), result.get("Values", []), strict=False
        ):
            hour = timestamp.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
            series[hour] = value
    return BatchResult(
        values={key: series for key, series in values.items() if key not in failed},
        failed=failed,
    )
