"""GET /analytics/usage, /compliance and /costs against moto's DynamoDB.

Responses are compared in full where it matters; DynamoDB requests are
counted with a botocore hook on the very client the API uses.
"""

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from handlers import query
from handlers.query import QueryApi
from handlers.shared import metrics_layout as layout
from handlers.shared.dynamo import batch_write, serialize
from handlers.shared.http import handle
from handlers.shared.metrics_reader import MetricsReader
from handlers.shared.query_cache import QueryCache
from handlers.shared.tables import METRICS, REPORT_CACHE, create_table_request

NOW = dt.datetime(2026, 11, 23, 14, 20, 5, tzinfo=dt.UTC)
TODAY = NOW.date()
ORIGIN = "https://portal.securebase.example"
CACHE_TTL = 300


def day(offset: int) -> dt.date:
    """`offset` days before today."""
    return TODAY - dt.timedelta(days=offset)


class DynamoRequests:
    """Every DynamoDB API call the client makes, by operation name."""

    def __init__(self, client: Any):
        self.operations: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def take(self) -> list[str]:
        taken, self.operations = self.operations, []
        return taken


class Stack:
    """Fresh metrics and cache tables plus a QueryApi over them."""

    def __init__(self, client: Any, requests: DynamoRequests, cache_ttl: int = CACHE_TTL):
        suffix = uuid.uuid4().hex[:8]
        self.client = client
        self.requests = requests
        self.metrics_table = f"securebase-test-metrics-{suffix}"
        self.cache_table = f"securebase-test-report-cache-{suffix}"
        client.create_table(**create_table_request(METRICS, self.metrics_table))
        client.create_table(**create_table_request(REPORT_CACHE, self.cache_table))
        self.now = NOW
        self.api = self.make_api(cache_ttl)

    def make_api(self, cache_ttl: int = CACHE_TTL, cache_table: str | None = None) -> QueryApi:
        return QueryApi(
            MetricsReader(self.client, self.metrics_table),
            QueryCache(self.client, cache_table or self.cache_table, cache_ttl),
            clock=lambda: self.now,
        )

    def seed(self, items: list[dict[str, Any]]) -> None:
        batch_write(self.client, self.metrics_table, items)

    def get(
        self,
        path: str,
        tenant: str = "acme",
        params: Mapping[str, str] | None = None,
        origin: str | None = None,
        api: QueryApi | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.requests.take()
        response = handle(event(path, tenant, params, origin), (api or self.api).routes)
        return response["statusCode"], json.loads(response["body"]), response["headers"]


def event(
    path: str, tenant: str, params: Mapping[str, str] | None = None, origin: str | None = None
) -> dict[str, Any]:
    headers = {"authorization": "Bearer <verified by the authorizer>"}
    if origin:
        headers["origin"] = origin
    return {
        "version": "2.0",
        "routeKey": f"GET {path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (params or {}).items()),
        "headers": headers,
        "queryStringParameters": dict(params) if params else None,
        "requestContext": {
            "requestId": "req-1",
            "http": {"method": "GET", "path": path},
            "authorizer": {"lambda": {"customer_id": tenant, "sub": "user-42"}},
        },
        "isBase64Encoded": False,
    }


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[tuple[Any, DynamoRequests]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        yield client, DynamoRequests(client)


@pytest.fixture
def stack(dynamodb: tuple[Any, DynamoRequests], monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"{ORIGIN},https://admin.securebase.example")
    return Stack(*dynamodb)


def daily(tenant: str, offset: int, metric: str, value: str, samples: int = 24) -> dict[str, Any]:
    return layout.daily_item(
        tenant,
        layout.DailyUsage(day=day(offset), metric=metric, value=Decimal(value), samples=samples),
    )


def hourly(
    tenant: str, offset: int, hour: int, metric: str, value: str, ttl: int
) -> dict[str, Any]:
    start = dt.datetime.combine(day(offset), dt.time(hour), tzinfo=dt.UTC)
    return layout.hourly_item(
        tenant, layout.HourlySample(hour=start, metric=metric, value=Decimal(value)), ttl
    )


def cost(
    tenant: str, offset: int, services: Mapping[str, str], regions: Mapping[str, str]
) -> dict[str, Any]:
    return layout.cost_item(
        tenant,
        layout.DailyCost(
            day=day(offset),
            currency="USD",
            services={k: Decimal(v) for k, v in services.items()},
            regions={k: Decimal(v) for k, v in regions.items()},
        ),
    )


def snapshot(
    tenant: str, offset: int, score: str, issues: tuple[layout.ComplianceIssue, ...] = ()
) -> dict[str, Any]:
    return layout.compliance_item(
        tenant,
        layout.ComplianceSnapshot(
            day=day(offset),
            score=Decimal(score),
            passed_controls=35,
            failed_controls=5,
            findings={"critical": 1, "high": 2, "medium": 3, "low": 4},
            top_issues=issues,
            generated_at=f"{day(offset).isoformat()}T13:05:00Z",
        ),
    )


# Usage


def seed_three_days(stack: Stack) -> None:
    stack.seed(
        [
            # current window: 2026-11-21 .. 2026-11-23 (today, partial)
            daily("acme", 2, "api_calls", "1000"),
            daily("acme", 2, "storage_gb", "10", samples=24),
            daily("acme", 2, "compute_hours", "2.5"),
            daily("acme", 2, "data_transfer_gb", "1.25"),
            daily("acme", 1, "api_calls", "1500"),
            daily("acme", 1, "storage_gb", "12", samples=24),
            daily("acme", 1, "compute_hours", "3.5"),
            daily("acme", 1, "data_transfer_gb", "0.75"),
            daily("acme", 0, "api_calls", "500"),
            daily("acme", 0, "storage_gb", "14", samples=14),
            daily("acme", 0, "compute_hours", "1"),
            # previous window: 2026-11-18 .. 2026-11-20, cut at the same time of
            # day: 11-20 counts for the 14 hours today has had so far
            daily("acme", 5, "api_calls", "1000"),
            daily("acme", 4, "api_calls", "1000"),
            daily("acme", 3, "api_calls", "1000"),
            daily("acme", 4, "storage_gb", "8"),
            daily("acme", 4, "data_transfer_gb", "2"),
            # outside both windows, and another tenant
            daily("acme", 9, "api_calls", "777777"),
            daily("globex", 1, "api_calls", "999999"),
        ]
    )


def test_usage_body_for_three_days(stack: Stack) -> None:
    seed_three_days(stack)
    status, body, _ = stack.get("/analytics/usage", params={"period": "3d"})
    assert status == 200
    assert body == {
        "customer_id": "acme",
        "period": "3d",
        "metrics": {
            "api_calls": 3000,
            # a gauge: the mean over the 62 sampled hours, never a sum
            "storage_gb": 11.677,
            "compute_hours": 7,
            "data_transfer_gb": 2,
        },
        # 3000 calls against 1000 + 1000 + 1000 x 14/24; storage is a level, not prorated.
        # Only api_calls has data for as many days before (3) as now (3): the
        # others' changes would measure the missing days.
        "trends": {
            "api_calls": {
                "previous": 2583,
                "change_percent": 16.1,
                "direction": "up",
                "basis": "complete",
            },
            "storage_gb": {
                "previous": 8,
                "change_percent": None,
                "direction": "up",
                "basis": "incomplete",  # 1 day against 3
            },
            "compute_hours": {
                "previous": 0,
                "change_percent": None,
                "direction": "up",
                "basis": "incomplete",  # 0 days against 3
            },
            "data_transfer_gb": {
                "previous": 2,
                "change_percent": None,
                "direction": "flat",
                "basis": "incomplete",  # 1 day against 2
            },
        },
        "series": [
            {
                "date": "2026-11-21",
                "api_calls": 1000,
                "storage_gb": 10,
                "compute_hours": 2.5,
                "data_transfer_gb": 1.25,
                "partial": False,
            },
            {
                "date": "2026-11-22",
                "api_calls": 1500,
                "storage_gb": 12,
                "compute_hours": 3.5,
                "data_transfer_gb": 0.75,
                "partial": False,
            },
            {
                "date": "2026-11-23",
                "api_calls": 500,
                "storage_gb": 14,
                "compute_hours": 1,
                "data_transfer_gb": 0,
                "partial": True,  # today, still being aggregated
            },
        ],
        "generated_at": "2026-11-23T14:20:05Z",
    }


def test_usage_for_one_day_uses_unexpired_hourly_samples(stack: Stack) -> None:
    live, expired = int(NOW.timestamp()) + 86400, int(NOW.timestamp()) - 1
    stack.seed(
        [
            hourly("acme", 0, 9, "api_calls", "100", live),
            hourly("acme", 0, 10, "api_calls", "50", live),
            hourly("acme", 0, 9, "storage_gb", "5", live),
            hourly("acme", 0, 10, "storage_gb", "7", live),
            # DynamoDB has not deleted it yet, but it has expired
            hourly("acme", 0, 11, "api_calls", "999", expired),
            # yesterday up to the same hour is the previous window; 20:00 is not
            hourly("acme", 1, 9, "api_calls", "100", live),
            hourly("acme", 1, 20, "api_calls", "1000", live),
            # daily rollups are not read for short windows
            daily("acme", 0, "api_calls", "123456"),
        ]
    )
    status, body, _ = stack.get("/analytics/usage", params={"period": "1d"})
    assert status == 200
    assert body["metrics"] == {
        "api_calls": 150,
        "storage_gb": 6,
        "compute_hours": 0,
        "data_transfer_gb": 0,
    }
    assert body["trends"]["api_calls"] == {
        "previous": 100,
        "change_percent": 50,
        "direction": "up",
        "basis": "complete",
    }
    assert [point["hour"] for point in body["series"]] == [
        f"2026-11-23T{hour:02d}:00:00Z" for hour in range(15)
    ]
    assert body["series"][9] == {
        "hour": "2026-11-23T09:00:00Z",
        "api_calls": 100,
        "storage_gb": 5,
        "compute_hours": 0,
        "data_transfer_gb": 0,
        "partial": False,
    }
    assert body["series"][11]["api_calls"] == 0
    assert body["series"][-1]["partial"] is True  # the current hour


def test_usage_period_defaults_to_30_days(stack: Stack) -> None:
    stack.seed([daily("acme", 29, "api_calls", "10"), daily("acme", 31, "api_calls", "1")])
    _, body, _ = stack.get("/analytics/usage")
    assert body["period"] == "30d"
    assert len(body["series"]) == 30
    assert body["series"][0]["date"] == "2026-10-25"
    assert body["metrics"]["api_calls"] == 10
    assert body["trends"]["api_calls"]["previous"] == 1


def test_a_customer_id_parameter_is_ignored(stack: Stack) -> None:
    seed_three_days(stack)
    _, body, _ = stack.get("/analytics/usage", params={"period": "3d", "customer_id": "globex"})
    assert body["customer_id"] == "acme"
    assert body["metrics"]["api_calls"] == 3000
    _, costs, _ = stack.get("/analytics/costs", params={"customer_id": "globex"})
    assert costs["customer_id"] == "acme"


# Costs

COST_SERVICES = {
    "Amazon Elastic Compute Cloud - Compute": "3.333",
    "Amazon Simple Storage Service": "1.111",
    "Amazon CloudFront": "0.5555",
    "AWS Support (Business)": "0.25",
}
COST_REGIONS = {"us-east-1": "4.0", "eu-west-1": "0.999"}  # 0.2505 a day unattributed


def seed_costs(stack: Stack) -> None:
    stack.seed(
        [cost("acme", offset, COST_SERVICES, COST_REGIONS) for offset in range(9)]
        + [cost("globex", 1, {"AWS Lambda": "5000"}, {"us-east-1": "5000"})]
    )


def test_costs_by_category_sum_to_the_total(stack: Stack) -> None:
    seed_costs(stack)
    status, body, _ = stack.get("/analytics/costs", params={"period": "1w"})
    assert status == 200
    assert body == {
        "customer_id": "acme",
        "period": "1w",
        "total": 36.75,  # 7 x 5.2495 = 36.7465
        "currency": "USD",
        "breakdown": {"compute": 23.33, "storage": 7.78, "networking": 3.89, "other": 1.75},
        # mean of 2026-11-16..22 (5.2495) x 31 days of December
        "forecast_next_month": 162.73,
        "generated_at": "2026-11-23T14:20:05Z",
    }


def test_costs_by_service_and_region(stack: Stack) -> None:
    seed_costs(stack)
    _, by_service, _ = stack.get(
        "/analytics/costs", params={"period": "7d", "breakdown": "service"}
    )
    assert by_service["breakdown"] == {
        "Amazon Elastic Compute Cloud - Compute": 23.33,
        "Amazon Simple Storage Service": 7.78,
        "Amazon CloudFront": 3.89,
        "AWS Support (Business)": 1.75,
    }
    _, by_region, _ = stack.get("/analytics/costs", params={"period": "7d", "breakdown": "region"})
    assert by_region["breakdown"] == {"us-east-1": 28, "eu-west-1": 6.99, "unattributed": 1.76}
    for body in (by_service, by_region):
        assert body["total"] == 36.75
        assert sum(Decimal(str(v)) for v in body["breakdown"].values()) == Decimal("36.75")


# Compliance


def test_compliance_body(stack: Stack) -> None:
    issues = (
        layout.ComplianceIssue("CloudTrail.1", "CloudTrail should be enabled", "low", 1),
        layout.ComplianceIssue("S3.8", "S3 buckets should block public access", "critical", 2),
        layout.ComplianceIssue("IAM.6", "Hardware MFA for root", "high", 1),
        layout.ComplianceIssue("EC2.19", "Security groups allow unrestricted ports", "critical", 7),
    )
    stack.seed(
        [
            snapshot("acme", 0, "87.5", issues),
            snapshot("acme", 3, "85"),
            snapshot("acme", 7, "80"),
            snapshot("acme", 12, "50"),
            snapshot("globex", 0, "10"),
        ]
    )
    status, body, _ = stack.get("/analytics/compliance")
    assert status == 200
    assert body == {
        "customer_id": "acme",
        "current_score": 87.5,
        "trend": {"previous_score": 80, "change": 7.5, "direction": "up"},
        "findings": {"critical": 1, "high": 2, "medium": 3, "low": 4},
        "top_issues": [
            {
                "control_id": "EC2.19",
                "title": "Security groups allow unrestricted ports",
                "severity": "critical",
                "failed_resources": 7,
            },
            {
                "control_id": "S3.8",
                "title": "S3 buckets should block public access",
                "severity": "critical",
                "failed_resources": 2,
            },
            {
                "control_id": "IAM.6",
                "title": "Hardware MFA for root",
                "severity": "high",
                "failed_resources": 1,
            },
            {
                "control_id": "CloudTrail.1",
                "title": "CloudTrail should be enabled",
                "severity": "low",
                "failed_resources": 1,
            },
        ],
        "generated_at": "2026-11-23T14:20:05Z",
    }


# A tenant without data


def test_unknown_tenant_gets_zeros(stack: Stack) -> None:
    seed_three_days(stack)
    seed_costs(stack)
    _, usage, _ = stack.get("/analytics/usage", tenant="initech", params={"period": "2w"})
    assert usage["metrics"] == {
        "api_calls": 0,
        "storage_gb": 0,
        "compute_hours": 0,
        "data_transfer_gb": 0,
    }
    assert usage["trends"]["api_calls"] == {
        "previous": 0,
        "change_percent": None,
        "direction": "flat",
        "basis": "complete",  # no day with data in either window
    }
    assert len(usage["series"]) == 14
    assert all(point["api_calls"] == 0 for point in usage["series"])

    _, costs, _ = stack.get("/analytics/costs", tenant="initech")
    assert costs == {
        "customer_id": "initech",
        "period": "30d",
        "total": 0,
        "currency": "USD",
        "breakdown": {"compute": 0, "storage": 0, "networking": 0, "other": 0},
        "forecast_next_month": 0,
        "generated_at": "2026-11-23T14:20:05Z",
    }
    _, by_service, _ = stack.get(
        "/analytics/costs", tenant="initech", params={"breakdown": "service"}
    )
    assert by_service["breakdown"] == {}

    _, compliance, _ = stack.get("/analytics/compliance", tenant="initech")
    assert compliance == {
        "customer_id": "initech",
        "current_score": 0,
        "trend": {"previous_score": None, "change": None, "direction": "flat"},
        "findings": {"critical": 0, "high": 0, "medium": 0, "low": 0},
        "top_issues": [],
        "generated_at": "2026-11-23T14:20:05Z",
    }


# Bad input


@pytest.mark.parametrize(
    ("path", "params", "code", "message"),
    [
        (
            "/analytics/usage",
            {"period": "13m"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got '13m'",
        ),
        (
            "/analytics/usage",
            {"period": "366d"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got '366d'",
        ),
        (
            "/analytics/usage",
            {"period": "0d"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got '0d'",
        ),
        (
            "/analytics/costs",
            {"period": "7y"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got '7y'",
        ),
        (
            "/analytics/costs",
            {"breakdown": "x"},
            "invalid_breakdown",
            "breakdown must be one of category, service, region; got 'x'",
        ),
        (
            "/analytics/costs",
            {"period": "7d", "breakdown": "account"},
            "invalid_breakdown",
            "breakdown must be one of category, service, region; got 'account'",
        ),
        # A parameter that is sent must be valid, as the document says: an empty
        # or padded value is not the default, and enum values are exact.
        (
            "/analytics/usage",
            {"period": ""},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got ''",
        ),
        (
            "/analytics/costs",
            {"period": " 7d"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days;"
            " got ' 7d'",
        ),
        (
            "/analytics/usage",
            {"period": "7d\n"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days;"
            " got '7d\\n'",
        ),
        (
            "/analytics/costs",
            {"breakdown": ""},
            "invalid_breakdown",
            "breakdown must be one of category, service, region; got ''",
        ),
        (
            "/analytics/costs",
            {"breakdown": "Region"},
            "invalid_breakdown",
            "breakdown must be one of category, service, region; got 'Region'",
        ),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(
    stack: Stack, path: str, params: dict[str, str], code: str, message: str
) -> None:
    status, body, headers = stack.get(path, params=params, origin=ORIGIN)
    assert (status, body) == (400, {"error": message, "code": code})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert stack.requests.take() == []  # rejected before any DynamoDB request


def test_unknown_routes_are_a_json_404(stack: Stack) -> None:
    status, body, _ = stack.get("/analytics/nothing")
    assert (status, body["code"]) == (404, "route_not_found")
    # API Gateway's authorized catch-all route also lands here.
    catch_all = {**event("/analytics/nothing", "acme"), "routeKey": "$default"}
    response = handle(catch_all, stack.api.routes)
    assert (response["statusCode"], json.loads(response["body"])["code"]) == (
        404,
        "route_not_found",
    )


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    path=st.sampled_from(["/analytics/usage", "/analytics/costs", "/analytics/compliance"]),
    params=st.dictionaries(
        st.sampled_from(["period", "breakdown", "customer_id"]) | st.text(max_size=10),
        st.text(max_size=20) | st.from_regex(r"[0-9]{1,4}[dwmDWMy]", fullmatch=True),
        max_size=4,
    ),
)
def test_client_input_never_causes_a_500(stack: Stack, path: str, params: dict[str, str]) -> None:
    status, body, _ = stack.get(path, params=params)
    assert status in (200, 400)
    if status == 400:
        assert set(body) == {"error", "code"}
        assert body["code"] in ("invalid_period", "invalid_breakdown")


# CORS


def test_cors_headers_only_for_configured_origins(stack: Stack) -> None:
    _, _, allowed = stack.get("/analytics/usage", origin=ORIGIN)
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed["Vary"] == "Origin"
    _, _, other = stack.get("/analytics/usage", origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other


# DynamoDB requests and the cache


def seed_two_years(stack: Stack, tenant: str) -> None:
    """Every metric for every day of this year and the year before, with gauge extras."""
    items = []
    for offset in range(730):
        for metric in ("api_calls", "compute_hours", "data_transfer_gb"):
            items.append(daily(tenant, offset, metric, "123456.789"))
        items.append(
            layout.daily_item(
                tenant,
                layout.DailyUsage(
                    day=day(offset),
                    metric="storage_gb",
                    value=Decimal("1024.123456"),
                    samples=24,
                    minimum=Decimal("1000.000001"),
                    maximum=Decimal("1100.999999"),
                    last=Decimal("1050.5"),
                ),
            )
        )
    stack.seed(items)


LONGEST_TENANT = "t" * 64  # the longest keys make the biggest pages


def test_a_year_of_usage_is_one_query_cold_and_one_read_warm(stack: Stack) -> None:
    seed_two_years(stack, LONGEST_TENANT)
    status, cold, _ = stack.get(
        "/analytics/usage", tenant=LONGEST_TENANT, params={"period": "365d"}
    )
    assert status == 200
    assert stack.requests.take() == ["GetItem", "Query", "PutItem"]
    assert len(cold["series"]) == 365
    assert cold["metrics"]["api_calls"] == 45061728  # 365 x 123456.789, rounded
    # Every seeded day is whole, today included; the previous year is cut at 14:20.
    assert cold["trends"]["api_calls"]["previous"] == 45010288  # (364 + 14/24) x 123456.789

    status, warm, _ = stack.get(
        "/analytics/usage", tenant=LONGEST_TENANT, params={"period": "365d"}
    )
    assert status == 200
    assert stack.requests.take() == ["GetItem"]
    assert warm == cold


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/analytics/usage", {"period": "1d"}),
        ("/analytics/usage", {"period": "2d"}),
        ("/analytics/usage", {"period": "52w"}),
        ("/analytics/costs", {"period": "365d", "breakdown": "service"}),
        ("/analytics/compliance", {}),
    ],
)
def test_every_route_costs_three_requests_cold_and_one_warm(
    stack: Stack, path: str, params: dict[str, str]
) -> None:
    seed_costs(stack)
    stack.get(path, params=params)
    assert stack.requests.take() == ["GetItem", "Query", "PutItem"]
    stack.get(path, params=params)
    assert stack.requests.take() == ["GetItem"]


def test_equivalent_periods_share_a_cache_entry_but_echo_their_label(stack: Stack) -> None:
    seed_three_days(stack)
    _, first, _ = stack.get("/analytics/usage", params={"period": "4w"})
    _, second, _ = stack.get("/analytics/usage", params={"period": "28D"})
    assert stack.requests.take() == ["GetItem"]
    assert (first["period"], second["period"]) == ("4w", "28d")
    assert {**first, "period": None} == {**second, "period": None}
    item = stack.client.get_item(
        TableName=stack.cache_table,
        Key=serialize({"cache_key": "acme#/analytics/usage#period=28d"}),
    )["Item"]
    assert int(item["ttl"]["N"]) == int(NOW.timestamp()) + CACHE_TTL


def test_expired_cache_entries_are_not_served(stack: Stack) -> None:
    stack.seed([daily("acme", 0, "api_calls", "1")])
    _, before, _ = stack.get("/analytics/usage", params={"period": "7d"})
    stack.seed([daily("acme", 0, "api_calls", "2")])

    stack.now = NOW + dt.timedelta(seconds=CACHE_TTL - 1)
    _, cached, _ = stack.get("/analytics/usage", params={"period": "7d"})
    assert cached["metrics"]["api_calls"] == before["metrics"]["api_calls"] == 1

    # moto (like DynamoDB, for a while) still holds the expired item
    stack.now = NOW + dt.timedelta(seconds=CACHE_TTL)
    _, fresh, _ = stack.get("/analytics/usage", params={"period": "7d"})
    assert stack.requests.take() == ["GetItem", "Query", "PutItem"]
    assert fresh["metrics"]["api_calls"] == 2


def test_cache_failures_do_not_fail_the_request(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    seed_three_days(stack)
    broken = stack.make_api(cache_table="securebase-test-no-such-table")
    status, body, _ = stack.get("/analytics/usage", params={"period": "3d"}, api=broken)
    assert (status, body["metrics"]["api_calls"]) == (200, 3000)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "query cache read failed",
        "query cache write failed",
    ]


def test_zero_ttl_disables_the_cache(stack: Stack) -> None:
    uncached = stack.make_api(cache_ttl=0)
    for _ in range(2):
        assert stack.get("/analytics/costs", api=uncached)[0] == 200
        assert stack.requests.take() == ["Query"]
    assert stack.client.scan(TableName=stack.cache_table)["Count"] == 0


# Tenant isolation

tenant_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)
day_values = st.dictionaries(st.integers(0, 13), st.integers(0, 10**9), max_size=14)
day_costs = st.dictionaries(
    st.integers(0, 13),
    st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False),
    max_size=14,
)


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(
        st.tuples(tenant_ids, day_values, day_costs, st.integers(0, 100)),
        min_size=2,
        max_size=4,
        unique_by=lambda entry: entry[0],
    ),
    labels=st.sampled_from([("7d", "1w"), ("1w", "7d")]),
    extra=st.dictionaries(st.sampled_from(["customer_id", "tenant", "pk"]), tenant_ids, max_size=3),
)
def test_a_tenant_only_ever_sees_its_own_numbers(
    dynamodb: tuple[Any, DynamoRequests], data, labels, extra
) -> None:
    stack = Stack(*dynamodb)
    items = []
    for tenant, calls, costs, score in data:
        items += [daily(tenant, offset, "api_calls", str(value)) for offset, value in calls.items()]
        items += [
            cost(tenant, offset, {"AWS Lambda": str(v)}, {"us-east-1": str(v)})
            for offset, v in costs.items()
        ]
        items.append(snapshot(tenant, 0, str(score)))
    stack.seed(items)

    for label in labels:  # the second label is served from the first one's cache entry
        for tenant, calls, costs, score in data:
            # A query string naming any other tenant changes nothing.
            params = {**dict.fromkeys(extra, data[0][0]), "period": label}
            _, usage, _ = stack.get("/analytics/usage", tenant=tenant, params=params)
            assert usage["customer_id"] == tenant
            assert usage["period"] == label
            assert usage["metrics"]["api_calls"] == sum(v for o, v in calls.items() if o < 7)
            # The previous week is cut at 14:20 too: day 7 counts for 14/24 of its calls.
            previous = (
                sum(v for o, v in calls.items() if o >= 8) + Decimal(calls.get(7, 0)) * 14 / 24
            )
            assert usage["trends"]["api_calls"]["previous"] == previous.quantize(
                Decimal(1), "ROUND_HALF_UP"
            )

            _, spend, _ = stack.get("/analytics/costs", tenant=tenant, params=params)
            expected = sum((v for o, v in costs.items() if o < 7), Decimal(0)).quantize(
                Decimal("0.01"), "ROUND_HALF_UP"
            )
            assert spend["customer_id"] == tenant
            assert Decimal(str(spend["total"])) == expected
            assert Decimal(str(spend["breakdown"]["compute"])) == expected

            _, compliance, _ = stack.get("/analytics/compliance", tenant=tenant, params=params)
            assert (compliance["customer_id"], compliance["current_score"]) == (tenant, score)


# The Lambda entry point, configured from the environment


def test_handler_reads_its_tables_from_the_environment(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = layout.DailyUsage(day=TODAY, metric="api_calls", value=Decimal(42), samples=1)
    stack.seed([layout.daily_item("acme", usage)])
    monkeypatch.setattr(query, "_api", None)  # built from the environment on first use
    monkeypatch.setattr(query, "utc_now", lambda: NOW)
    monkeypatch.setenv("METRICS_TABLE", stack.metrics_table)
    monkeypatch.setenv("CACHE_TABLE", stack.cache_table)
    monkeypatch.setenv("CACHE_TTL_SECONDS", "60")
    response = query.handler(event("/analytics/usage", "acme", {"period": "7d"}, ORIGIN), None)
    assert response["statusCode"] == 200
    assert response["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert json.loads(response["body"])["metrics"]["api_calls"] == 42
    assert stack.client.scan(TableName=stack.cache_table)["Count"] == 1


def default_route_event(method: str, path: str) -> dict[str, Any]:
    """What API Gateway sends the `$default` route's integration."""
    caught = event(path, "acme", origin=ORIGIN)
    caught["routeKey"] = "$default"
    caught["requestContext"]["http"]["method"] = method
    return caught


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/analytics/usage", "GET, OPTIONS"),
        ("QUERY", "/analytics/compliance", "GET, OPTIONS"),
        ("PUT", "/analytics/reports", "GET, OPTIONS, POST"),
        ("DELETE", "/analytics/reports/01M84G0H74RPGX32QJQ4608KD4", "GET, OPTIONS"),
        ("PATCH", "/analytics/schedules/anything", "DELETE, GET, OPTIONS"),
        # A GET route does not serve HEAD (API Gateway routes by method), so neither lists it.
        ("HEAD", "/analytics/costs", "GET, OPTIONS"),
        # The signed-link routes' paths too (found by schemathesis: they were 404s).
        ("TRACE", "/email/confirm", "GET, OPTIONS, POST"),
        ("PUT", "/email/unsubscribe", "GET, OPTIONS, POST"),
    ],
)
def test_a_method_a_path_does_not_serve_is_a_405_with_allow(
    stack: Stack, method: str, path: str, allow: str
) -> None:
    stack.requests.take()
    response = handle(default_route_event(method, path), stack.api.routes)
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == allow
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    assert response["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert json.loads(response["body"]) == {
        "error": f"{path} does not serve {method}; it serves {allow}",
        "code": "method_not_allowed",
    }
    assert stack.requests.take() == []


@pytest.mark.parametrize("path", ["/analytics/nothing", "/", "/analytics/reports/1/2"])
def test_a_path_the_api_does_not_serve_is_a_404_for_every_method(stack: Stack, path: str) -> None:
    for method in ("GET", "TRACE", "POST"):
        response = handle(default_route_event(method, path), stack.api.routes)
        assert (response["statusCode"], json.loads(response["body"])) == (
            404,
            {"error": f"no route {method} {path}", "code": "route_not_found"},
        )
        assert "Allow" not in response["headers"]


def test_a_request_without_an_authorized_tenant_is_401(stack: Stack) -> None:
    unauthorized = event("/analytics/usage", "acme")
    unauthorized["requestContext"]["authorizer"] = {}
    response = handle(unauthorized, stack.api.routes)
    assert response["statusCode"] == 401


def test_a_browsers_preflight_is_204_without_a_tenant_or_a_dynamodb_request(stack: Stack) -> None:
    preflight = event("/analytics/usage", "acme", origin=ORIGIN)
    preflight["routeKey"] = "OPTIONS /{proxy+}"
    preflight["requestContext"].pop("authorizer")  # the route has no authorizer
    preflight["headers"] = {"origin": ORIGIN, "access-control-request-method": "GET"}
    stack.requests.take()
    response = handle(preflight, stack.api.routes)
    assert (response["statusCode"], response["body"]) == (204, "")
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    assert stack.requests.take() == []
