"""DynamoDB requests behind `GET /analytics/usage?period=365d`, cold and warm cache.

The real query API (`QueryApi`, the routes `handlers.query.handler` serves)
over moto, with a tenant holding every daily rollup of this year and the
year before (what a 365-day answer and its trends read). The tenant id is the
longest one allowed, so the Query pages are as large as they get. Requests are
counted with a `before-send` hook on the client the API uses.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import boto3
from moto import mock_aws

from bench.aws import REGION, use_offline_environment
from bench.progress import Progress, say
from handlers.query import USAGE_PATH, QueryApi
from handlers.shared import metrics_layout as layout
from handlers.shared.dynamo import batch_write
from handlers.shared.http import handle
from handlers.shared.metrics_reader import MetricsReader
from handlers.shared.query_cache import QueryCache
from handlers.shared.tables import METRICS, REPORT_CACHE, create_table_request
from handlers.shared.telemetry import counting_requests
from handlers.shared.usage_metrics import USAGE_METRICS

NOW = dt.datetime(2026, 11, 23, 14, 20, 5, tzinfo=dt.UTC)
TENANT = "t" * 64  # the longest tenant id: the biggest items and pages
SEEDED_DAYS = 2 * 365  # the window and the previous one, for the trends
PERIOD = "365d"
METRICS_TABLE = "securebase-bench-metrics"
CACHE_TABLE = "securebase-bench-report-cache"
CACHE_TTL_SECONDS = 300


def daily_items(tenant: str, days: int, today: dt.date) -> list[dict[str, Any]]:
    """Every usage metric's rollup for each of the last `days` days, gauges with their extras."""
    items = []
    for offset in range(days):
        day = today - dt.timedelta(days=offset)
        for metric in USAGE_METRICS:
            gauge = metric.kind == "gauge"
            items.append(
                layout.daily_item(
                    tenant,
                    layout.DailyUsage(
                        day=day,
                        metric=metric.key,
                        value=Decimal("123456.789012"),
                        samples=24,
                        minimum=Decimal("1000.000001") if gauge else None,
                        maximum=Decimal("1100.999999") if gauge else None,
                        last=Decimal("1050.5") if gauge else None,
                    ),
                )
            )
    return items


def usage_event(tenant: str, period: str) -> dict[str, Any]:
    """What API Gateway hands the query function once the authorizer has passed."""
    return {
        "version": "2.0",
        "routeKey": f"GET {USAGE_PATH}",
        "rawPath": USAGE_PATH,
        "rawQueryString": f"period={period}",
        "headers": {"authorization": "Bearer <verified by the authorizer>"},
        "queryStringParameters": {"period": period},
        "requestContext": {
            "requestId": "bench",
            "http": {"method": "GET", "path": USAGE_PATH},
            "authorizer": {"lambda": {"customer_id": tenant}},
        },
        "isBase64Encoded": False,
    }


def _counted_request(api: QueryApi, client: Any) -> dict[str, int]:
    with counting_requests([client]) as sent:
        response = handle(usage_event(TENANT, PERIOD), api.routes)
    if response["statusCode"] != 200:
        raise RuntimeError(f"GET {USAGE_PATH}?period={PERIOD} answered {response}")
    return dict(sorted(sent.items()))


def measure(progress: Progress = say) -> dict[str, Any]:
    """The `query` section of the results."""
    use_offline_environment()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**create_table_request(METRICS, METRICS_TABLE))
        client.create_table(**create_table_request(REPORT_CACHE, CACHE_TABLE))
        items = daily_items(TENANT, SEEDED_DAYS, NOW.date())
        batch_write(client, METRICS_TABLE, items)
        progress(f"  seeded {len(items):,} daily items ({SEEDED_DAYS} days)")
        api = QueryApi(
            MetricsReader(client, METRICS_TABLE),
            QueryCache(client, CACHE_TABLE, CACHE_TTL_SECONDS),
            clock=lambda: NOW,
        )
        cold = _counted_request(api, client)
        warm = _counted_request(api, client)
    progress(f"  cold: {cold}; warm: {warm}")
    return {
        "dynamodb_requests_cold_365d": sum(cold.values()),
        "dynamodb_requests_warm": sum(warm.values()),
        "requests_cold_365d": cold,
        "requests_warm": warm,
        "seeded_items": len(items),
    }
