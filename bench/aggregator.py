"""AWS requests of aggregator runs over 1,000 tenants, against the minimum the APIs allow.

Two consecutive hourly runs of the real `handlers.aggregator.run` against
moto: at 01:05 UTC, the first run of the stack, costs and compliance are due;
at 02:05 they were refreshed an hour ago and are not. Each run's requests are
counted with our own `before-send` hook on every client it uses, and its
BatchWriteItem items with a `provide-client-params` hook, so nothing is taken
from the run's own summary.

The minimum a run could make with these APIs:
    GetMetricData    ceil(4 x tenants / 500) per UTC day of the processed hours
    BatchWriteItem   ceil(distinct items written / 25)
    GetCostAndUsage  the pages Cost Explorer has, when costs are due (else 0)
    GetFindings      ceil(findings / 100), at least 1, when compliance is due (else 0)
The customers Scan and the bookkeeping Query are overhead on top of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from moto import mock_aws

from bench.aws import REGION, use_offline_environment
from bench.progress import Progress, say
from handlers import aggregator
from handlers.shared.aggregation import compliance, costs
from handlers.shared.aggregation.cloudwatch_queries import (
    DEFAULT_METRIC_NAMES,
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT_DIMENSION,
    MAX_QUERIES_PER_REQUEST,
    UsageSource,
)
from handlers.shared.aggregation.hours import HOUR, floor_hour
from handlers.shared.dynamo import BATCH_WRITE_LIMIT, batch_write
from handlers.shared.tables import METRICS, create_table_request
from handlers.shared.telemetry import counting_requests
from handlers.shared.usage_metrics import GIB, USAGE_METRICS

TENANTS = 1000
SUSPENDED_TENANTS = 50
METRICS_TABLE = "securebase-bench-metrics"
CUSTOMERS_TABLE = "securebase-bench-customers"
# moto's GetMetricData slows down sharply as its window grows, and a run's
# window is its UTC day up to the last complete hour: just after midnight
# keeps it at one and two hours.
FIRST_RUN = dt.datetime(2026, 11, 23, 1, 5, tzinfo=dt.UTC)
SECOND_RUN = FIRST_RUN + dt.timedelta(hours=1)
SERVICES = ("AWS Lambda", "Amazon DynamoDB", "Amazon Simple Storage Service")
REGIONS = ("us-east-1", "eu-west-1")
# Each Cost Explorer series answers in two pages (two days each), so the runs
# must follow NextPageToken.
COST_PAGES_PER_SERIES = 2
PUT_METRIC_DATA_LIMIT = 1000
FINDINGS_PER_IMPORT = 100
CE_RESULTS_URL = "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results"

SETTINGS = aggregator.Settings(
    metrics_table=METRICS_TABLE,
    customers_table=CUSTOMERS_TABLE,
    usage_source=UsageSource(DEFAULT_NAMESPACE, DEFAULT_TENANT_DIMENSION, DEFAULT_METRIC_NAMES),
)

GET_METRIC_DATA = "cloudwatch.GetMetricData"
BATCH_WRITE_ITEM = "dynamodb.BatchWriteItem"
GET_COST_AND_USAGE = "cost-explorer.GetCostAndUsage"
GET_FINDINGS = "securityhub.GetFindings"
MINIMUM_FORMULA = (
    "ceil(4 x tenants / 500) GetMetricData per UTC day processed"
    " + ceil(distinct items written / 25) BatchWriteItem"
    " + Cost Explorer pages when costs are due"
    " + ceil(findings / 100) GetFindings when compliance is due"
)


def tenant_id(index: int) -> str:
    return f"tenant-{index:04d}"


def account_id(index: int) -> str:
    return f"{100_000_000_000 + index}"


@dataclass(frozen=True)
class Scenario:
    tenants: int  # active
    suspended: int
    findings: int  # Security Hub control findings, one per active tenant

    @property
    def findings_pages(self) -> int:
        return max(1, math.ceil(self.findings / compliance.PAGE_SIZE))


def minimum_requests(
    *, tenants: int, days_processed: int, items_written: int, cost_pages: int, findings_pages: int
) -> dict[str, int]:
    """The fewest requests per operation that could do a run's work (see the module doc).

    `cost_pages` and `findings_pages` are 0 for a run where costs and compliance are not due.
    """
    queries = tenants * len(USAGE_METRICS)
    return {
        GET_METRIC_DATA: days_processed * math.ceil(queries / MAX_QUERIES_PER_REQUEST),
        BATCH_WRITE_ITEM: math.ceil(items_written / BATCH_WRITE_LIMIT),
        GET_COST_AND_USAGE: cost_pages,
        GET_FINDINGS: findings_pages,
    }


@contextlib.contextmanager
def counting_items(dynamodb: Any) -> Iterator[set[tuple[str, str, str]]]:
    """(table, pk, sk) of every item put with BatchWriteItem while open; retries count once."""
    written: set[tuple[str, str, str]] = set()

    def record(params: Mapping[str, Any], **_: Any) -> None:
        for table, entries in params["RequestItems"].items():
            for entry in entries:
                item = entry["PutRequest"]["Item"]
                written.add((table, item[METRICS.hash_key]["S"], item[METRICS.range_key]["S"]))

    hook_id = f"bench-items-{id(written)}"
    event = "provide-client-params.dynamodb.BatchWriteItem"
    dynamodb.meta.events.register(event, record, unique_id=hook_id)
    try:
        yield written
    finally:
        dynamodb.meta.events.unregister(event, unique_id=hook_id)


def _clients() -> aggregator.Clients:
    return aggregator.Clients(
        dynamodb=boto3.client("dynamodb", region_name=REGION),
        cloudwatch=boto3.client("cloudwatch", region_name=REGION),
        cost_explorer=boto3.client("ce", region_name=REGION),
        securityhub=boto3.client("securityhub", region_name=REGION),
    )


def _seed_customers(clients: aggregator.Clients, scenario: Scenario) -> None:
    clients.dynamodb.create_table(**create_table_request(METRICS, METRICS_TABLE))
    clients.dynamodb.create_table(
        TableName=CUSTOMERS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
    )
    batch_write(
        clients.dynamodb,
        CUSTOMERS_TABLE,
        (
            {
                "customer_id": tenant_id(index),
                "status": "active" if index < scenario.tenants else "suspended",
                "aws_account_id": account_id(index),
                "name": f"Customer {index}",
            }
            for index in range(scenario.tenants + scenario.suspended)
        ),
    )


def _seed_usage(clients: aggregator.Clients, scenario: Scenario, hours: list[dt.datetime]) -> None:
    """One datapoint per active tenant, metric and hour, five minutes into the hour.

    Suspended tenants publish nothing: each datapoint in the window makes
    moto's GetMetricData slower for every query, whoever it belongs to.
    """
    names = DEFAULT_METRIC_NAMES
    datapoints = [
        {
            "MetricName": names[metric.key],
            "Dimensions": [{"Name": DEFAULT_TENANT_DIMENSION, "Value": tenant_id(index)}],
            "Timestamp": hour + dt.timedelta(minutes=5),
            "Value": float((index % 97 + 1) * (GIB if metric.unit == "GB" else 10)),
        }
        for hour in hours
        for index in range(scenario.tenants)
        for metric in USAGE_METRICS
    ]
    for start in range(0, len(datapoints), PUT_METRIC_DATA_LIMIT):
        clients.cloudwatch.put_metric_data(
            Namespace=DEFAULT_NAMESPACE,
            MetricData=datapoints[start : start + PUT_METRIC_DATA_LIMIT],
        )


def cost_pages(tenants: int, days: list[dt.date], dimension: str) -> list[dict[str, Any]]:
    """Cost Explorer's answer for one series, split into pages by day."""
    keys = SERVICES if dimension == costs.SERVICE else REGIONS
    per_page = math.ceil(len(days) / COST_PAGES_PER_SERIES)
    pages = []
    for page_index, first in enumerate(range(0, len(days), per_page)):
        page: dict[str, Any] = {
            "ResultsByTime": [
                {
                    "TimePeriod": {
                        "Start": day.isoformat(),
                        "End": (day + dt.timedelta(days=1)).isoformat(),
                    },
                    "Total": {},
                    "Groups": [
                        {
                            "Keys": [account_id(index), key],
                            "Metrics": {
                                costs.COST_METRIC: {"Amount": f"{1 + index % 7}.25", "Unit": "USD"}
                            },
                        }
                        for index in range(tenants)
                        for key in keys
                    ],
                    "Estimated": False,
                }
                for day in days[first : first + per_page]
            ],
            "DimensionValueAttributes": [],
        }
        if first + per_page < len(days):
            page["NextPageToken"] = f"{dimension.lower()}-page-{page_index + 2}"
        pages.append(page)
    return pages


def _seed_costs(scenario: Scenario, today: dt.date) -> int:
    """Queues the pages in the order the run asks for them; returns how many there are."""
    first_day, last_day = costs.recent_days(today)
    days = [first_day + dt.timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    pages = [
        page for dimension in costs.SERIES for page in cost_pages(scenario.tenants, days, dimension)
    ]
    response = requests.post(CE_RESULTS_URL, json={"results": pages}, timeout=30)
    response.raise_for_status()
    return len(pages)


def _seed_findings(clients: aggregator.Clients, scenario: Scenario, at: dt.datetime) -> None:
    """One control finding per active tenant: every third one FAILED."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    findings = [
        {
            "SchemaVersion": "2018-10-08",
            "Id": f"{account_id(index)}/S3.1/finding",
            "ProductArn": f"arn:aws:securityhub:{REGION}::product/aws/securityhub",
            "GeneratorId": "security-control/S3.1",
            "AwsAccountId": account_id(index),
            "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
            "CreatedAt": stamp,
            "UpdatedAt": stamp,
            "Severity": {"Label": "MEDIUM" if index % 3 == 0 else "INFORMATIONAL"},
            "Title": "S3 Block Public Access should be enabled",
            "Description": "S3 Block Public Access should be enabled",
            "Resources": [{"Type": "Other", "Id": f"bucket-{index}"}],
            "Compliance": {
                "Status": "FAILED" if index % 3 == 0 else "PASSED",
                "SecurityControlId": "S3.1",
            },
            "RecordState": "ACTIVE",
            "Workflow": {"Status": "NEW"},
        }
        for index in range(scenario.findings)
    ]
    for start in range(0, len(findings), FINDINGS_PER_IMPORT):
        clients.securityhub.batch_import_findings(
            Findings=findings[start : start + FINDINGS_PER_IMPORT]
        )


def _observed_run(
    clients: aggregator.Clients,
    scenario: Scenario,
    now: dt.datetime,
    cost_pages: int | None,
) -> dict[str, Any]:
    """One run; `cost_pages` is what Cost Explorer holds when costs are due, None when not."""
    with counting_requests(clients.each()) as sent, counting_items(clients.dynamodb) as items:
        summary = aggregator.run(now=now, clients=clients, settings=SETTINGS)
    first = dt.datetime.fromisoformat(summary["first_hour"]).date()
    last = dt.datetime.fromisoformat(summary["last_hour"]).date()
    due = cost_pages is not None
    minimum = minimum_requests(
        tenants=scenario.tenants,
        days_processed=(last - first).days + 1,
        items_written=len(items),
        cost_pages=cost_pages or 0,
        findings_pages=scenario.findings_pages if due else 0,
    )
    made = dict(sorted(sent.items()))
    return {
        "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "costs_due": due,
        "status": summary["status"],
        "tenants": summary["tenants"],
        "items_written": len(items),
        "requests": made,
        "requests_total": sum(made.values()),
        "minimum": minimum,
        "minimum_total": sum(minimum.values()),
        "ratio": round(sum(made.values()) / sum(minimum.values()), 4),
    }


def measure(
    tenants: int = TENANTS, suspended: int = SUSPENDED_TENANTS, progress: Progress = say
) -> dict[str, Any]:
    """Both runs against a fresh moto: the `aggregator` section of the results."""
    use_offline_environment()
    scenario = Scenario(tenants=tenants, suspended=suspended, findings=tenants)
    with mock_aws():
        clients = _clients()
        _seed_customers(clients, scenario)
        _seed_usage(clients, scenario, [floor_hour(run) - HOUR for run in (FIRST_RUN, SECOND_RUN)])
        cost_pages = _seed_costs(scenario, FIRST_RUN.date())
        _seed_findings(clients, scenario, FIRST_RUN)
        progress(f"  seeded {tenants:,} active and {suspended:,} suspended tenants")
        due = _observed_run(clients, scenario, FIRST_RUN, cost_pages)
        progress(f"  costs due: {due['requests_total']} requests, minimum {due['minimum_total']}")
        not_due = _observed_run(clients, scenario, SECOND_RUN, None)
        progress(
            f"  costs not due: {not_due['requests_total']} requests,"
            f" minimum {not_due['minimum_total']}"
        )
    return {
        "tenants": due["tenants"],
        "suspended_tenants": suspended,
        "calls_vs_minimum": max(due["ratio"], not_due["ratio"]),
        "ce_calls_when_not_due": not_due["requests"].get(GET_COST_AND_USAGE, 0),
        "minimum_formula": MINIMUM_FORMULA,
        "runs": {"costs_due": due, "costs_not_due": not_due},
    }
