"""The aggregator against moto: what a run reads, writes and asks AWS for."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from handlers import aggregator
from handlers.shared import env
from handlers.shared.aggregation.cloudwatch_queries import DEFAULT_METRIC_NAMES, UsageSource
from handlers.shared.dynamo import deserialize
from handlers.shared.tables import METRICS, create_table_request
from handlers.shared.usage_metrics import GIB

METRICS_TABLE = "securebase-test-metrics"
CUSTOMERS_TABLE = "securebase-test-customers"
NAMESPACE = "SecureBase/Platform"
REGION = "us-east-1"
NOW = dt.datetime(2026, 11, 23, 14, 5, tzinfo=dt.UTC)  # last complete hour: 13:00
ACME_ACCOUNT = "111111111111"
GLOBEX_ACCOUNT = "222222222222"
INITECH_ACCOUNT = "333333333333"
SETTINGS = aggregator.Settings(
    metrics_table=METRICS_TABLE,
    customers_table=CUSTOMERS_TABLE,
    usage_source=UsageSource(NAMESPACE, "CustomerId", DEFAULT_METRIC_NAMES),
    cost_refresh_hours=6,
    hourly_retention_days=14,
)
CUSTOMERS = [
    {"customer_id": "acme", "status": "active", "aws_account_id": ACME_ACCOUNT, "name": "Acme"},
    {"customer_id": "globex", "status": "active", "aws_account_id": GLOBEX_ACCOUNT, "name": "G"},
    {"customer_id": "initech", "status": "suspended", "aws_account_id": INITECH_ACCOUNT},
    {"customer_id": "#not a tenant", "status": "active", "aws_account_id": "444444444444"},
]


def hour(day: int, at: int) -> dt.datetime:
    """An hour of November 2026, UTC."""
    return dt.datetime(2026, 11, day, at, tzinfo=dt.UTC)


@contextlib.contextmanager
def moto_clients() -> Iterator[aggregator.Clients]:
    """Every client a run uses, against moto, with the metrics and customers tables."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**create_table_request(METRICS, METRICS_TABLE))
        dynamodb.create_table(
            TableName=CUSTOMERS_TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
        )
        yield aggregator.Clients(
            dynamodb=dynamodb,
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
            cost_explorer=boto3.client("ce", region_name=REGION),
            securityhub=boto3.client("securityhub", region_name=REGION),
            sqs=boto3.client("sqs", region_name=REGION),
        )


@pytest.fixture
def clients() -> Iterator[aggregator.Clients]:
    with moto_clients() as moto:
        yield moto


def add_customers(clients: aggregator.Clients, rows: list[dict[str, str]]) -> None:
    for row in rows:
        clients.dynamodb.put_item(
            TableName=CUSTOMERS_TABLE, Item={k: {"S": v} for k, v in row.items()}
        )


def put_usage(
    clients: aggregator.Clients, tenant: str, at: dt.datetime, metric: str, *values: float
) -> None:
    """Datapoints the platform publishes, a few minutes into the hour `at`."""
    clients.cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "CustomerId", "Value": tenant}],
                "Timestamp": at + dt.timedelta(minutes=5 + index),
                "Value": value,
            }
            for index, value in enumerate(values)
        ],
    )


def table(clients: aggregator.Clients) -> dict[tuple[str, str], dict[str, Any]]:
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=METRICS_TABLE):
        for raw in page["Items"]:
            item = deserialize(raw)
            items[(item["pk"], item["sk"])] = item
    return items


def partition(clients: aggregator.Clients, pk: str) -> dict[str, dict[str, Any]]:
    """One partition's items by sort key: a Query, not a scan of the whole table."""
    pages = clients.dynamodb.get_paginator("query").paginate(
        TableName=METRICS_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    return {item["sk"]: item for page in pages for item in map(deserialize, page["Items"])}


def set_state(clients: aggregator.Clients, **moments: dt.datetime) -> None:
    for sk, moment in moments.items():
        clients.dynamodb.put_item(
            TableName=METRICS_TABLE,
            Item={
                "pk": {"S": "#aggregator"},
                "sk": {"S": sk.replace("_", "-")},
                "at": {"S": moment.strftime("%Y-%m-%dT%H:%M:%SZ")},
            },
        )


def not_due(clients: aggregator.Clients) -> None:
    """Costs and compliance refreshed an hour ago: this run must not pay for them."""
    set_state(clients, cost_refresh=NOW - dt.timedelta(hours=1))
    set_state(clients, compliance_refresh=NOW - dt.timedelta(hours=1))


def queue_cost_results(*results: dict[str, Any]) -> None:
    """moto answers GetCostAndUsage from this queue, one result per distinct request."""
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
        json={"results": list(results)},
        timeout=5,
    )
    assert response.status_code == 201


def cost_result(
    groups_by_day: dict[str, list[tuple[str, str, str]]], next_token: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ResultsByTime": [
            {
                "TimePeriod": {
                    "Start": day,
                    "End": (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": [
                    {
                        "Keys": [account, key],
                        "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
                    }
                    for account, key, amount in groups
                ],
                "Estimated": False,
            }
            for day, groups in groups_by_day.items()
        ],
        "DimensionValueAttributes": [],
    }
    if next_token:
        result["NextPageToken"] = next_token
    return result


class Proxy:
    """A real (moto) client with one operation replaced."""

    def __init__(self, client: Any, **operations: Any):
        self._client = client
        self._operations = operations

    def __getattr__(self, name: str) -> Any:
        return self._operations.get(name) or getattr(self._client, name)


def seed_acme_day(clients: aggregator.Clients) -> None:
    put_usage(clients, "acme", hour(23, 10), "ApiCalls", 10)
    put_usage(clients, "acme", hour(23, 11), "ApiCalls", 20)
    put_usage(clients, "acme", hour(23, 13), "ApiCalls", 100, 50)
    put_usage(clients, "acme", hour(23, 10), "StorageBytes", 1 * GIB)
    put_usage(clients, "acme", hour(23, 11), "StorageBytes", 5 * GIB)
    put_usage(clients, "acme", hour(23, 13), "StorageBytes", 2 * GIB, 4 * GIB)
    put_usage(clients, "acme", hour(23, 13), "ComputeSeconds", 3600, 1800)
    put_usage(clients, "acme", hour(23, 13), "DataTransferBytes", GIB / 2)


def test_hourly_run_writes_the_hour_and_the_days_rollups(clients):
    add_customers(clients, CUSTOMERS)
    seed_acme_day(clients)
    put_usage(clients, "initech", hour(23, 13), "ApiCalls", 999)  # suspended: ignored
    put_usage(clients, "acme", hour(23, 14), "ApiCalls", 7)  # the current, incomplete hour

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    ttl = int(hour(23, 13).timestamp()) + 14 * 86400
    assert partition(clients, "acme") == {
        "H#2026-11-23T13#api_calls": {
            "pk": "acme",
            "sk": "H#2026-11-23T13#api_calls",
            "metric": "api_calls",
            "value": Decimal(150),
            "ttl": ttl,
        },
        "H#2026-11-23T13#storage_gb": {
            "pk": "acme",
            "sk": "H#2026-11-23T13#storage_gb",
            "metric": "storage_gb",
            "value": Decimal(3),
            "ttl": ttl,
        },
        "H#2026-11-23T13#compute_hours": {
            "pk": "acme",
            "sk": "H#2026-11-23T13#compute_hours",
            "metric": "compute_hours",
            "value": Decimal("1.5"),
            "ttl": ttl,
        },
        "H#2026-11-23T13#data_transfer_gb": {
            "pk": "acme",
            "sk": "H#2026-11-23T13#data_transfer_gb",
            "metric": "data_transfer_gb",
            "value": Decimal("0.5"),
            "ttl": ttl,
        },
        # The day so far: counters add up the hours, storage averages them.
        "D#2026-11-23#api_calls": {
            "pk": "acme",
            "sk": "D#2026-11-23#api_calls",
            "metric": "api_calls",
            "value": Decimal(180),
            "samples": 3,
        },
        "D#2026-11-23#storage_gb": {
            "pk": "acme",
            "sk": "D#2026-11-23#storage_gb",
            "metric": "storage_gb",
            "value": Decimal(3),
            "samples": 3,
            "minimum": Decimal(1),
            "maximum": Decimal(5),
            "last": Decimal(3),
        },
        "D#2026-11-23#compute_hours": {
            "pk": "acme",
            "sk": "D#2026-11-23#compute_hours",
            "metric": "compute_hours",
            "value": Decimal("1.5"),
            "samples": 1,
        },
        "D#2026-11-23#data_transfer_gb": {
            "pk": "acme",
            "sk": "D#2026-11-23#data_transfer_gb",
            "metric": "data_transfer_gb",
            "value": Decimal("0.5"),
            "samples": 1,
        },
    }
    stored = table(clients)
    assert {pk for pk, _ in stored} == {"acme", "#aggregator"}  # globex had no data
    assert stored[("#aggregator", "last-hour")]["at"] == "2026-11-23T13:00:00Z"
    assert summary == {
        "mode": "hourly",
        "status": "ok",
        "first_hour": "2026-11-23T13:00:00Z",
        "last_hour": "2026-11-23T13:00:00Z",
        "hours": 1,
        "skipped_hours": 0,
        "tenants": 2,
        "failed_tenants": [],
        "items_written": 8,
        "costs": "fetched",
        "compliance": "fetched",
        "requests": {
            "cloudwatch.GetMetricData": 1,
            "cost-explorer.GetCostAndUsage": 2,
            "dynamodb.BatchWriteItem": 2,
            "dynamodb.Query": 1,
            "dynamodb.Scan": 1,
            "securityhub.GetFindings": 1,
        },
        "duration_ms": summary["duration_ms"],
    }


def test_rerunning_an_hour_leaves_the_table_unchanged(clients):
    add_customers(clients, CUSTOMERS)
    seed_acme_day(clients)
    put_usage(clients, "globex", hour(23, 13), "StorageBytes", 3 * GIB)
    aggregator.run(now=NOW, clients=clients, settings=SETTINGS)
    first = table(clients)

    aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert table(clients) == first
    assert len(first) == 8 + 2 + 3  # acme, globex (hour + day), bookkeeping


def test_the_next_hour_recomputes_the_day_from_all_its_hours(clients):
    add_customers(clients, CUSTOMERS)
    seed_acme_day(clients)
    aggregator.run(now=NOW, clients=clients, settings=SETTINGS)
    put_usage(clients, "acme", hour(23, 14), "ApiCalls", 20)
    put_usage(clients, "acme", hour(23, 14), "StorageBytes", 7 * GIB)

    aggregator.run(now=NOW + dt.timedelta(hours=1), clients=clients, settings=SETTINGS)

    acme = partition(clients, "acme")
    assert acme["H#2026-11-23T14#api_calls"]["value"] == 20
    assert acme["D#2026-11-23#api_calls"]["value"] == 200  # 10 + 20 + 150 + 20
    assert acme["D#2026-11-23#api_calls"]["samples"] == 4
    storage = acme["D#2026-11-23#storage_gb"]
    assert (storage["value"], storage["minimum"], storage["maximum"], storage["last"]) == (
        4,
        1,
        7,
        7,
    )
    assert acme["H#2026-11-23T13#api_calls"]["value"] == 150  # still there, unchanged


def test_missed_hours_are_caught_up_across_midnight(clients):
    add_customers(clients, CUSTOMERS)
    set_state(clients, last_hour=hour(22, 21))
    not_due(clients)
    put_usage(clients, "acme", hour(22, 3), "ApiCalls", 5)  # processed by an earlier run
    put_usage(clients, "acme", hour(22, 22), "ApiCalls", 1)
    put_usage(clients, "acme", hour(22, 23), "ApiCalls", 2)
    put_usage(clients, "acme", hour(23, 0), "ApiCalls", 4)

    summary = aggregator.run(
        now=hour(23, 1) + dt.timedelta(minutes=3), clients=clients, settings=SETTINGS
    )

    acme = partition(clients, "acme")
    assert {sk: item["value"] for sk, item in acme.items() if sk.startswith("H#")} == {
        "H#2026-11-22T22#api_calls": 1,
        "H#2026-11-22T23#api_calls": 2,
        "H#2026-11-23T00#api_calls": 4,
    }
    assert acme["D#2026-11-22#api_calls"]["value"] == 8  # every hour of the day, 03:00 included
    assert acme["D#2026-11-23#api_calls"]["value"] == 4
    assert (summary["first_hour"], summary["last_hour"], summary["hours"]) == (
        "2026-11-22T22:00:00Z",
        "2026-11-23T00:00:00Z",
        3,
    )
    # One GetMetricData window per UTC day touched.
    assert summary["requests"]["cloudwatch.GetMetricData"] == 2
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T00:00:00Z"


def test_catch_up_is_capped_at_48_hours(clients):
    add_customers(clients, CUSTOMERS)
    set_state(clients, last_hour=NOW - dt.timedelta(days=5))
    not_due(clients)

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert summary["hours"] == 48
    assert summary["first_hour"] == "2026-11-21T14:00:00Z"
    assert summary["skipped_hours"] == 5 * 24 - 1 - 48


def test_backfill_covers_every_hour_of_the_range_and_fetches_its_costs(clients):
    add_customers(clients, CUSTOMERS)
    not_due(clients)
    for day in (20, 21, 22):
        put_usage(clients, "acme", hour(day, 6), "ApiCalls", day)
        put_usage(clients, "acme", hour(day, 18), "ApiCalls", 1)
        put_usage(clients, "acme", hour(day, 6), "StorageBytes", 2 * GIB)
        put_usage(clients, "acme", hour(day, 18), "StorageBytes", 4 * GIB)
    put_usage(clients, "acme", hour(23, 6), "ApiCalls", 1000)  # outside the range
    queue_cost_results(
        cost_result({"2026-11-21": [(ACME_ACCOUNT, "AWS Lambda", "1.25")]}),
        cost_result({"2026-11-21": [(ACME_ACCOUNT, "eu-west-1", "1.25")]}),
    )

    summary = aggregator.run(
        now=NOW, backfill=(hour(20, 0), hour(23, 0)), clients=clients, settings=SETTINGS
    )

    acme = partition(clients, "acme")
    assert sorted(sk for sk in acme if sk.startswith("D#")) == [
        f"D#2026-11-{day}#{metric}"
        for day in (20, 21, 22)
        for metric in ("api_calls", "storage_gb")
    ]
    assert [acme[f"D#2026-11-{day}#api_calls"]["value"] for day in (20, 21, 22)] == [21, 22, 23]
    assert acme["D#2026-11-21#storage_gb"]["value"] == 3
    assert len([sk for sk in acme if sk.startswith("H#")]) == 3 * 2 * 2
    assert "H#2026-11-23T06#api_calls" not in acme
    assert acme["C#2026-11-21"]["services"] == {"AWS Lambda": Decimal("1.25")}
    assert summary["mode"] == "backfill"
    assert summary["hours"] == 72
    assert summary["costs"] == "fetched"
    assert summary["requests"]["cloudwatch.GetMetricData"] == 3
    # Backfill leaves the hourly schedule's bookkeeping alone.
    assert set(partition(clients, "#aggregator")) == {"cost-refresh", "compliance-refresh"}


def test_hours_past_retention_are_not_written_but_still_roll_up(clients):
    add_customers(clients, CUSTOMERS)
    not_due(clients)
    put_usage(clients, "acme", hour(21, 12), "ApiCalls", 3)
    put_usage(clients, "acme", hour(22, 20), "ApiCalls", 4)
    settings = dataclasses.replace(SETTINGS, hourly_retention_days=1)

    aggregator.run(now=NOW, backfill=(hour(21, 0), hour(23, 0)), clients=clients, settings=settings)

    acme = partition(clients, "acme")
    assert acme["H#2026-11-22T20#api_calls"]["ttl"] == int(hour(23, 20).timestamp())
    assert "H#2026-11-21T12#api_calls" not in acme  # would expire the moment it is written
    assert acme["D#2026-11-21#api_calls"]["value"] == 3


def test_costs_are_not_requested_until_due(clients):
    add_customers(clients, CUSTOMERS)
    seed_acme_day(clients)
    set_state(clients, cost_refresh=NOW - dt.timedelta(hours=5))
    set_state(clients, compliance_refresh=NOW - dt.timedelta(hours=5))

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert (summary["costs"], summary["compliance"]) == ("not_due", "not_due")
    assert summary["requests"] == {
        "cloudwatch.GetMetricData": 1,
        "dynamodb.BatchWriteItem": math.ceil(8 / 25) + 1,  # data, then bookkeeping
        "dynamodb.Query": 1,
        "dynamodb.Scan": 1,
    }


def test_due_costs_map_accounts_to_tenants_and_follow_pages(clients):
    add_customers(clients, CUSTOMERS)
    set_state(clients, cost_refresh=NOW - dt.timedelta(hours=6))
    queue_cost_results(
        cost_result(
            {
                "2026-11-21": [
                    (ACME_ACCOUNT, "AWS Lambda", "1.2500000001"),
                    (ACME_ACCOUNT, "Amazon Simple Storage Service", "0.75"),
                    (INITECH_ACCOUNT, "AWS Lambda", "9"),  # suspended
                    ("999999999999", "AWS Lambda", "9"),  # not a tenant
                ]
            },
            next_token="page-2",
        ),
        cost_result(
            {
                "2026-11-22": [(ACME_ACCOUNT, "AWS Lambda", "2")],
                "2026-11-23": [(GLOBEX_ACCOUNT, "Amazon CloudFront", "0.1")],
            }
        ),
        cost_result(
            {
                "2026-11-21": [
                    (ACME_ACCOUNT, "us-east-1", "1.5"),
                    (ACME_ACCOUNT, "eu-west-1", "0.5000000001"),
                ],
                "2026-11-22": [(ACME_ACCOUNT, "us-east-1", "2")],
                "2026-11-23": [(GLOBEX_ACCOUNT, "NoRegion", "0.1")],
            }
        ),
    )

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert partition(clients, "acme") == {
        "C#2026-11-21": {
            "pk": "acme",
            "sk": "C#2026-11-21",
            "currency": "USD",
            "total": Decimal("2.0000000001"),
            "services": {
                "AWS Lambda": Decimal("1.2500000001"),
                "Amazon Simple Storage Service": Decimal("0.75"),
            },
            "regions": {"us-east-1": Decimal("1.5"), "eu-west-1": Decimal("0.5000000001")},
        },
        "C#2026-11-22": {
            "pk": "acme",
            "sk": "C#2026-11-22",
            "currency": "USD",
            "total": Decimal(2),
            "services": {"AWS Lambda": Decimal(2)},
            "regions": {"us-east-1": Decimal(2)},
        },
    }
    assert partition(clients, "globex")["C#2026-11-23"]["regions"] == {"NoRegion": Decimal("0.1")}
    assert {pk for pk, _ in table(clients)} == {"acme", "globex", "#aggregator"}
    assert summary["requests"]["cost-explorer.GetCostAndUsage"] == 3
    assert partition(clients, "#aggregator")["cost-refresh"]["at"] == "2026-11-23T14:05:00Z"


def test_cost_explorer_requests_ask_for_both_series_of_the_recent_days(clients):
    add_customers(clients, CUSTOMERS)
    sent: list[dict[str, Any]] = []
    clients.cost_explorer.meta.events.register(
        "provide-client-params.ce.GetCostAndUsage", lambda params, **_: sent.append(params)
    )

    aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert sent == [
        {
            "TimePeriod": {"Start": "2026-11-20", "End": "2026-11-24"},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"],
            "GroupBy": [
                {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                {"Type": "DIMENSION", "Key": key},
            ],
        }
        for key in ("SERVICE", "REGION")
    ]


def test_a_failed_cost_refresh_is_retried_the_next_hour(clients):
    add_customers(clients, CUSTOMERS)

    def unavailable(**_: Any) -> dict:
        raise ClientError({"Error": {"Code": "LimitExceededException"}}, "GetCostAndUsage")

    failing = aggregator.Clients(
        dynamodb=clients.dynamodb,
        cloudwatch=clients.cloudwatch,
        cost_explorer=Proxy(clients.cost_explorer, get_cost_and_usage=unavailable),
        securityhub=clients.securityhub,
    )
    summary = aggregator.run(now=NOW, clients=failing, settings=SETTINGS)

    assert (summary["status"], summary["costs"], summary["failed_tenants"]) == (
        "partial_failure",
        "failed",
        [],
    )
    assert set(partition(clients, "#aggregator")) == {"last-hour", "compliance-refresh"}

    later = aggregator.run(now=NOW + dt.timedelta(hours=1), clients=clients, settings=SETTINGS)

    assert later["costs"] == "fetched"
    assert later["requests"]["cost-explorer.GetCostAndUsage"] == 2


def asff(account: str, control: str, status: str, severity: str, resource: str, **extra: Any):
    finding = {
        "SchemaVersion": "2018-10-08",
        "Id": f"{account}/{control}/{resource}/{status}/{len(extra)}",
        "ProductArn": f"arn:aws:securityhub:{REGION}::product/aws/securityhub",
        "CompanyName": "AWS",
        "GeneratorId": f"security-control/{control}",
        "AwsAccountId": account,
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
        "CreatedAt": "2026-11-23T10:00:00.000Z",
        "UpdatedAt": "2026-11-23T10:00:00.000Z",
        "Severity": {"Label": severity},
        "Title": f"{control} title",
        "Description": f"{control} description",
        "Resources": [{"Type": "Other", "Id": resource}],
        "Compliance": {"Status": status, "SecurityControlId": control},
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }
    return {**finding, **extra}


def test_compliance_snapshot_scores_controls_and_ranks_top_issues(clients):
    add_customers(clients, CUSTOMERS)
    findings = [
        asff(ACME_ACCOUNT, "S3.5", "PASSED", "INFORMATIONAL", "bucket-a"),
        asff(ACME_ACCOUNT, "S3.5", "PASSED", "INFORMATIONAL", "bucket-b"),
        asff(ACME_ACCOUNT, "EC2.8", "FAILED", "HIGH", "i-1"),
        asff(ACME_ACCOUNT, "EC2.8", "FAILED", "HIGH", "i-2"),
        asff(ACME_ACCOUNT, "EC2.8", "PASSED", "INFORMATIONAL", "i-3"),
        asff(ACME_ACCOUNT, "IAM.6", "FAILED", "CRITICAL", "root"),
        asff(ACME_ACCOUNT, "KMS.4", "FAILED", "MEDIUM", "key-1"),
        asff(ACME_ACCOUNT, "KMS.4", "FAILED", "MEDIUM", "key-2"),
        asff(ACME_ACCOUNT, "KMS.4", "FAILED", "MEDIUM", "key-3"),
        asff(ACME_ACCOUNT, "SQS.1", "FAILED", "MEDIUM", "queue-1"),
        asff(ACME_ACCOUNT, "IAM.18", "FAILED", "LOW", "account"),
        asff(ACME_ACCOUNT, "CloudWatch.1", "FAILED", "LOW", "account"),
        # Suppressed and archived findings do not count, so EC2.6 passes.
        asff(ACME_ACCOUNT, "EC2.6", "FAILED", "HIGH", "vpc-1", Workflow={"Status": "SUPPRESSED"}),
        asff(ACME_ACCOUNT, "EC2.6", "FAILED", "HIGH", "vpc-2", RecordState="ARCHIVED"),
        asff(ACME_ACCOUNT, "EC2.6", "PASSED", "INFORMATIONAL", "vpc-3"),
        asff(INITECH_ACCOUNT, "IAM.6", "FAILED", "CRITICAL", "root"),  # suspended tenant
        asff("999999999999", "IAM.6", "FAILED", "CRITICAL", "root"),  # not a tenant
    ]
    clients.securityhub.batch_import_findings(Findings=findings)

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert partition(clients, "acme") == {
        "S#2026-11-23": {
            "pk": "acme",
            "sk": "S#2026-11-23",
            "score": Decimal("25"),  # S3.5 and EC2.6 pass; 6 controls fail
            "passed_controls": 2,
            "failed_controls": 6,
            "findings": {"critical": 1, "high": 2, "medium": 4, "low": 2},
            "top_issues": [
                {
                    "control_id": "IAM.6",
                    "title": "IAM.6 title",
                    "severity": "critical",
                    "failed_resources": 1,
                },
                {
                    "control_id": "EC2.8",
                    "title": "EC2.8 title",
                    "severity": "high",
                    "failed_resources": 2,
                },
                {
                    "control_id": "KMS.4",
                    "title": "KMS.4 title",
                    "severity": "medium",
                    "failed_resources": 3,
                },
                {
                    "control_id": "SQS.1",
                    "title": "SQS.1 title",
                    "severity": "medium",
                    "failed_resources": 1,
                },
                {
                    "control_id": "CloudWatch.1",
                    "title": "CloudWatch.1 title",
                    "severity": "low",
                    "failed_resources": 1,
                },
            ],
            "generated_at": "2026-11-23T14:05:00Z",
        }
    }
    assert {pk for pk, _ in table(clients)} == {"acme", "#aggregator"}
    assert summary["compliance"] == "fetched"
    assert partition(clients, "#aggregator")["compliance-refresh"]["at"] == "2026-11-23T14:05:00Z"


def test_findings_are_read_page_by_page(clients):
    add_customers(clients, CUSTOMERS)
    clients.securityhub.batch_import_findings(
        Findings=[
            asff(GLOBEX_ACCOUNT, f"Config.{index}", "PASSED", "INFORMATIONAL", f"r-{index}")
            for index in range(100)
        ]
    )
    clients.securityhub.batch_import_findings(
        Findings=[asff(GLOBEX_ACCOUNT, "IAM.4", "FAILED", "CRITICAL", "root")]
    )

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    snapshot = partition(clients, "globex")["S#2026-11-23"]
    assert (snapshot["passed_controls"], snapshot["failed_controls"]) == (100, 1)
    assert snapshot["score"] == Decimal("99.01")
    assert summary["requests"]["securityhub.GetFindings"] == 2


def test_one_tenants_failure_is_reported_and_the_others_are_written(clients, caplog):
    add_customers(clients, CUSTOMERS)
    put_usage(clients, "acme", hour(23, 13), "ApiCalls", 1)
    put_usage(clients, "globex", hour(23, 13), "ApiCalls", 2)
    not_due(clients)

    def globex_fails(**request: Any) -> dict:
        response = clients.cloudwatch.get_metric_data(**request)
        ids = {
            query["Id"]
            for query in request["MetricDataQueries"]
            if query["MetricStat"]["Metric"]["Dimensions"][0]["Value"] == "globex"
        }
        for result in response["MetricDataResults"]:
            if result["Id"] in ids:
                result.update(StatusCode="InternalError", Values=[], Timestamps=[])
        return response

    failing = aggregator.Clients(
        dynamodb=clients.dynamodb,
        cloudwatch=Proxy(clients.cloudwatch, get_metric_data=globex_fails),
        cost_explorer=clients.cost_explorer,
        securityhub=clients.securityhub,
    )
    summary = aggregator.run(now=NOW, clients=failing, settings=SETTINGS)

    assert (summary["status"], summary["failed_tenants"]) == ("partial_failure", ["globex"])
    assert partition(clients, "acme")["H#2026-11-23T13#api_calls"]["value"] == 1
    assert partition(clients, "globex") == {}
    assert partition(clients, "#aggregator")["last-hour"]["at"] == "2026-11-23T13:00:00Z"
    logged = [r for r in caplog.records if getattr(r, "tenant", None) == "globex"]
    assert logged and logged[0].levelname == "ERROR"


def test_a_run_where_every_tenant_fails_raises_and_keeps_its_bookkeeping(clients):
    add_customers(clients, CUSTOMERS)
    not_due(clients)

    def throttled(**_: Any) -> dict:
        raise ClientError({"Error": {"Code": "Throttling"}}, "GetMetricData")

    failing = aggregator.Clients(
        dynamodb=clients.dynamodb,
        cloudwatch=Proxy(clients.cloudwatch, get_metric_data=throttled),
        cost_explorer=clients.cost_explorer,
        securityhub=clients.securityhub,
    )
    with pytest.raises(aggregator.AggregationFailed) as raised:
        aggregator.run(now=NOW, clients=failing, settings=SETTINGS)

    assert raised.value.summary["failed_tenants"] == ["acme", "globex"]
    assert "last-hour" not in partition(clients, "#aggregator")


def test_a_failed_write_fails_only_the_tenants_in_that_request(clients):
    tenants = [f"t{index:02d}" for index in range(30)]
    add_customers(clients, [{"customer_id": t, "status": "active"} for t in tenants])
    for tenant in tenants:
        put_usage(clients, tenant, hour(23, 13), "ApiCalls", 1)
    not_due(clients)

    def rejects_t05(**request: Any) -> dict:
        items = request["RequestItems"][METRICS_TABLE]
        if any(item["PutRequest"]["Item"]["pk"]["S"] == "t05" for item in items):
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "BatchWriteItem")
        return clients.dynamodb.batch_write_item(**request)

    failing = aggregator.Clients(
        dynamodb=Proxy(clients.dynamodb, batch_write_item=rejects_t05),
        cloudwatch=clients.cloudwatch,
        cost_explorer=clients.cost_explorer,
        securityhub=clients.securityhub,
    )
    summary = aggregator.run(now=NOW, clients=failing, settings=SETTINGS)

    failed = summary["failed_tenants"]
    assert "t05" in failed and len(failed) <= 13  # one request carries 25 of the 60 items
    assert summary["status"] == "partial_failure"
    for tenant in set(tenants) - set(failed):
        assert partition(clients, tenant)["D#2026-11-23#api_calls"]["value"] == 1


def test_unprocessed_items_are_retried_until_written(clients):
    add_customers(clients, CUSTOMERS)
    seed_acme_day(clients)
    not_due(clients)
    calls = []

    def throttles_once(**request: Any) -> dict:
        calls.append(request)
        items = request["RequestItems"][METRICS_TABLE]
        if len(calls) == 1:
            written, held_back = items[:3], items[3:]
            clients.dynamodb.batch_write_item(RequestItems={METRICS_TABLE: written})
            return {"UnprocessedItems": {METRICS_TABLE: held_back}}
        return clients.dynamodb.batch_write_item(**request)

    flaky = aggregator.Clients(
        dynamodb=Proxy(clients.dynamodb, batch_write_item=throttles_once),
        cloudwatch=clients.cloudwatch,
        cost_explorer=clients.cost_explorer,
        securityhub=clients.securityhub,
    )
    summary = aggregator.run(now=NOW, clients=flaky, settings=SETTINGS)

    assert summary["status"] == "ok"
    assert summary["items_written"] == 8
    assert len(partition(clients, "acme")) == 8
    assert [len(call["RequestItems"][METRICS_TABLE]) for call in calls] == [8, 5, 1]


def test_tenants_come_from_a_projected_scan_of_active_customers(clients, caplog):
    add_customers(clients, CUSTOMERS)
    not_due(clients)
    sent: list[dict[str, Any]] = []
    clients.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Scan", lambda params, **_: sent.append(params)
    )

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert summary["tenants"] == 2
    (skipped,) = [r for r in caplog.records if "not a valid tenant id" in r.getMessage()]
    assert skipped.customer_ids == ["#not a tenant"]
    assert sent == [
        {
            "TableName": CUSTOMERS_TABLE,
            "ProjectionExpression": "customer_id, aws_account_id, #status",
            "FilterExpression": "#status = :active",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":active": {"S": "active"}},
        }
    ]


def test_metric_queries_are_sent_500_per_request(clients):
    tenants = [f"tenant-{index:03d}" for index in range(130)]
    add_customers(clients, [{"customer_id": t, "status": "active"} for t in tenants])
    for offset in range(0, len(tenants), 50):
        clients.cloudwatch.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": "ApiCalls",
                    "Dimensions": [{"Name": "CustomerId", "Value": tenant}],
                    "Timestamp": hour(23, 13),
                    "Value": index,
                }
                for index, tenant in enumerate(tenants[offset : offset + 50], start=offset)
            ],
        )
    not_due(clients)
    sizes: list[int] = []
    clients.cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: sizes.append(len(params["MetricDataQueries"])),
    )

    summary = aggregator.run(now=NOW, clients=clients, settings=SETTINGS)

    assert sizes == [500, 20]  # 130 tenants x 4 metrics
    assert summary["requests"]["cloudwatch.GetMetricData"] == 2
    assert summary["requests"]["dynamodb.BatchWriteItem"] == math.ceil(260 / 25) + 1
    assert partition(clients, "tenant-129")["D#2026-11-23#api_calls"]["value"] == 129


def test_handler_runs_the_hour_and_reports_to_cloudwatch(clients, monkeypatch, capsys):
    add_customers(clients, CUSTOMERS)
    monkeypatch.setenv(env.METRICS_TABLE, METRICS_TABLE)
    monkeypatch.setenv(env.CUSTOMERS_TABLE, CUSTOMERS_TABLE)
    monkeypatch.setenv(env.ENVIRONMENT, "staging")
    monkeypatch.setattr(aggregator, "default_clients", lambda: clients)

    summary = aggregator.handler({"source": "aws.scheduler"}, None)

    assert summary["mode"] == "hourly"
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    assert {
        name: doc[name]
        for doc in emitted
        for name in ("AggregatorRunsCompleted", "AggregatorTenantFailures")
        if name in doc
    } == {"AggregatorRunsCompleted": 1, "AggregatorTenantFailures": 0}


def test_handler_runs_a_backfill_event(clients, monkeypatch):
    add_customers(clients, CUSTOMERS)
    monkeypatch.setenv(env.METRICS_TABLE, METRICS_TABLE)
    monkeypatch.setenv(env.CUSTOMERS_TABLE, CUSTOMERS_TABLE)
    monkeypatch.setattr(aggregator, "default_clients", lambda: clients)

    summary = aggregator.handler(
        {"backfill": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}}, None
    )

    assert (summary["mode"], summary["hours"], summary["first_hour"]) == (
        "backfill",
        24,
        "2026-01-01T00:00:00Z",
    )
