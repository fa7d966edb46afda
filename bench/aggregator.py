"""Aggregator runs at 1,000, 10,000 and 100,000 tenants: requests against the minimum, modeled time.

At each size, six consecutive hourly runs of the real `handlers.aggregator.run`
(and, for a sharded run, of `handlers.aggregator_shard.process` for each shard
message it sends): at 01:05 UTC, the first run of the stack, costs and
compliance are due; from 02:05 to 06:05 costs are not. A one-invocation run
reads compliance whole in the first run; a sharded run staggers it (see
handlers.aggregator), one slot of accounts per run, so the six runs are one
whole refresh interval. The sharding settings are
production's (`Pulumi.production.yaml`). AWS is modeled (bench.aws_model):
clients that count every request and charge a cited per-request latency to
the invocation that made it, and DynamoDB bookkeeping (run records, markers)
in moto, so the ledger's conditional updates behave as DynamoDB's do.

The minimum a run could make with these APIs:
    GetMetricData    ceil(4 x tenants / 500) per UTC day of the processed hours
    BatchWriteItem   ceil(distinct items written / 25)
    GetCostAndUsage  the pages Cost Explorer has, when costs are due (else 0)
    GetFindings      ceil(findings read / 100), at least 1, per read of findings the run
                     makes (one a run: everything, or the slot due); over the six runs,
                     the total against ceil(all findings / 100) is reported too
The customers Scan, the bookkeeping Query, and a sharded run's SendMessageBatch,
PutItem and UpdateItem requests are overhead on top of it.

Modeled wall time of a run: the coordinator's own time, and each shard
scheduled as the shard queue's mapping runs it (maximum concurrency from
config, scaling up from 5, a cold start per new environment) from the moment
its message was sent; the run ends with the last of them. It is never less
than what the quotas allow (bench.aws_model.Traffic.floors).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws

from bench.aws import REGION, use_offline_environment
from bench.aws_model import (
    COLD_START_SECONDS,
    DYNAMODB_ITEM_OVERHEAD_BYTES,
    GET_METRIC_DATA_OLDER_DPS,
    GET_METRIC_DATA_RECENT_DPS,
    GET_METRIC_DATA_TPS,
    LATENCY_SECONDS,
    TABLE_WRITE_UNITS_PER_SECOND,
    ModeledClient,
    Timeline,
    Traffic,
    hours_between,
    invocations_schedule,
    lanes_on,
    scan_pages,
)
from bench.progress import Progress, say
from bench.results import AGGREGATOR_SIZES as SIZES
from components.functions import AGGREGATOR, AGGREGATOR_SHARD
from components.settings import AggregatorSettings
from handlers import aggregator, aggregator_shard
from handlers.shared.aggregation import compliance, costs
from handlers.shared.aggregation.cloudwatch_queries import (
    DEFAULT_METRIC_NAMES,
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT_DIMENSION,
    MAX_QUERIES_PER_REQUEST,
    UsageSource,
)
from handlers.shared.aggregator.runtime import Clients, Sharding, ShardSettings
from handlers.shared.dynamo import BATCH_WRITE_LIMIT
from handlers.shared.tables import METRICS, create_table_request
from handlers.shared.usage_metrics import BY_KEY, GIB, USAGE_METRICS
from ops.checks.expectations import load_stack_settings

SUSPENDED_PER_THOUSAND = 50
HOUR = dt.timedelta(hours=1)
METRICS_TABLE = "securebase-bench-metrics"
CUSTOMERS_TABLE = "securebase-bench-customers"
SHARD_QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/securebase-bench-shards"
# A run's GetMetricData window is its UTC day up to the last complete hour:
# just after midnight keeps the modeled CloudWatch answers small.
FIRST_RUN = dt.datetime(2026, 11, 23, 1, 5, tzinfo=dt.UTC)
HOURLY_RUNS = 6  # the compliance refresh interval (production's costRefreshHours)
SERVICES = ("AWS Lambda", "Amazon DynamoDB", "Amazon Simple Storage Service")
REGIONS = ("us-east-1", "eu-west-1")
# Cost Explorer does not document its page size: each series answers in two
# pages (two days each), so the runs must follow NextPageToken. The page count
# is in the minimum too, so it does not move the ratio.
COST_PAGES_PER_SERIES = 2

GET_METRIC_DATA = "cloudwatch.GetMetricData"
BATCH_WRITE_ITEM = "dynamodb.BatchWriteItem"
GET_COST_AND_USAGE = "cost-explorer.GetCostAndUsage"
GET_FINDINGS = "securityhub.GetFindings"
MINIMUM_FORMULA = (
    "ceil(4 x tenants / 500) GetMetricData per UTC day processed"
    " + ceil(distinct items written / 25) BatchWriteItem"
    " + Cost Explorer pages when costs are due"
    " + ceil(findings read / 100) GetFindings per read of findings"
)
_COST_METRICS = [{costs.COST_METRIC: {"Amount": f"{1 + n}.25", "Unit": "USD"}} for n in range(7)]


def tenant_id(index: int) -> str:
    return f"tenant-{index:06d}"


def account_id(index: int) -> str:
    """Spread over the 12-digit space, as AWS account ids are (a bijection: 7,919,000,003 is
    prime to 10^12)."""
    return f"{(index * 7_919_000_003 + 123_456_789_011) % 10**12:012d}"


def size_key(tenants: int) -> str:
    return f"t{tenants}"


@dataclass(frozen=True)
class Scenario:
    tenants: int  # active
    suspended: int
    findings: int  # Security Hub control findings, one per active tenant

    @classmethod
    def of(cls, tenants: int) -> Scenario:
        return cls(tenants, tenants * SUSPENDED_PER_THOUSAND // 1000, tenants)

    @property
    def findings_pages(self) -> int:
        return max(1, math.ceil(self.findings / compliance.PAGE_SIZE))

    @property
    def cost_pages(self) -> int:
        return COST_PAGES_PER_SERIES * len(costs.SERIES)


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


def cost_pages(tenants: int, days: list[dt.date], dimension: str) -> list[dict[str, Any]]:
    """Cost Explorer's answer for one series, split into pages by day."""
    per_page = math.ceil(len(days) / COST_PAGES_PER_SERIES)
    return [
        cost_page(tenants, days, dimension, number)
        for number in range(math.ceil(len(days) / per_page))
    ]


def cost_page(tenants: int, days: list[dt.date], dimension: str, number: int) -> dict[str, Any]:
    """Page `number` (from 0) of a series; groups share their unchanging parts to stay small."""
    keys = SERVICES if dimension == costs.SERVICE else REGIONS
    per_page = math.ceil(len(days) / COST_PAGES_PER_SERIES)
    first = number * per_page
    group_keys = [[account_id(index), key] for index in range(tenants) for key in keys]
    page: dict[str, Any] = {
        "ResultsByTime": [
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + dt.timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": [
                    {"Keys": pair, "Metrics": _COST_METRICS[(position // len(keys)) % 7]}
                    for position, pair in enumerate(group_keys)
                ],
                "Estimated": False,
            }
            for day in days[first : first + per_page]
        ],
        "DimensionValueAttributes": [],
    }
    if first + per_page < len(days):
        page["NextPageToken"] = f"{dimension.lower()}-page-{number + 2}"
    return page


def finding(index: int) -> dict[str, Any]:
    """Active tenant `index`'s one control finding: every third one FAILED."""
    failed = index % 3 == 0
    return {
        "Id": f"{account_id(index)}/S3.1/finding",
        "AwsAccountId": account_id(index),
        "ProductArn": f"arn:aws:securityhub:{REGION}::product/aws/securityhub",
        "CompanyName": "AWS",
        "GeneratorId": "security-control/S3.1",
        "Severity": {"Label": "MEDIUM" if failed else "INFORMATIONAL"},
        "Title": "S3 Block Public Access should be enabled",
        "Resources": [{"Type": "Other", "Id": f"bucket-{index}"}],
        "Compliance": {"Status": "FAILED" if failed else "PASSED", "SecurityControlId": "S3.1"},
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }


class ModeledAws:
    """The scenario's AWS: what the modeled clients answer and what they were asked."""

    def __init__(self, scenario: Scenario, bookkeeping: Any):
        self.scenario = scenario
        # DynamoDB's own conditional writes for the run records and the markers (moto).
        self.bookkeeping = bookkeeping
        customers = scenario.tenants + scenario.suspended
        self.customers = [
            {
                "customer_id": {"S": tenant_id(index)},
                "aws_account_id": {"S": account_id(index)},
                "status": {"S": "active" if index < scenario.tenants else "suspended"},
            }
            for index in range(customers)
        ]
        # Phase 2 customer items carry more than the three projected attributes.
        self.scan_pages = scan_pages([DYNAMODB_ITEM_OVERHEAD_BYTES + 120] * customers)
        self.now = FIRST_RUN
        self.start_run(FIRST_RUN)

    def start_run(self, now: dt.datetime) -> None:
        self.now = now
        self.traffic = Traffic()
        self.written: set[int] = set()
        self.queue: list[tuple[float, str]] = []
        self.findings_reads: list[int] = []  # findings each read (first page on) matched

    def clients(self, timeline: Timeline) -> Clients:
        return Clients(
            dynamodb=ModeledDynamoDB(self, timeline),
            cloudwatch=ModeledCloudWatch(self, timeline),
            cost_explorer=ModeledCostExplorer(self, timeline),
            securityhub=ModeledSecurityHub(self, timeline),
            sqs=ModeledSqs(self, timeline),
        )


class _Modeled(ModeledClient):
    def __init__(self, aws: ModeledAws, timeline: Timeline):
        super().__init__(aws.traffic, timeline)
        self.aws = aws


class ModeledDynamoDB(_Modeled):
    service = "dynamodb"

    def scan(self, **request: Any) -> dict[str, Any]:
        self._request("Scan")
        number = int(request.get("ExclusiveStartKey", {}).get("page", {}).get("N", "0"))
        first, end = self.aws.scan_pages[number]
        page: dict[str, Any] = {
            "Items": [
                item for item in self.aws.customers[first:end] if item["status"]["S"] == "active"
            ]
        }
        if number + 1 < len(self.aws.scan_pages):
            page["LastEvaluatedKey"] = {"page": {"N": str(number + 1)}}
        return page

    def batch_write_item(self, RequestItems: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
        self._request("BatchWriteItem")
        for table, entries in RequestItems.items():
            for entry in entries:
                item = entry["PutRequest"]["Item"]
                self.aws.written.add(hash((table, item["pk"]["S"], item["sk"]["S"])))
            self.aws.traffic.items_written += len(entries)
            if entries[0]["PutRequest"]["Item"]["pk"]["S"].startswith("#"):
                self.aws.bookkeeping.batch_write_item(RequestItems={table: entries})
        return {"UnprocessedItems": {}}

    def query(self, **request: Any) -> dict[str, Any]:
        self._request("Query")
        return self.aws.bookkeeping.query(**request)

    def put_item(self, **request: Any) -> dict[str, Any]:
        self._request("PutItem")
        return self.aws.bookkeeping.put_item(**request)

    def update_item(self, **request: Any) -> dict[str, Any]:
        self._request("UpdateItem")
        return self.aws.bookkeeping.update_item(**request)


class ModeledCloudWatch(_Modeled):
    """One datapoint per active tenant, metric and hour of the window."""

    service = "cloudwatch"
    _units = {DEFAULT_METRIC_NAMES[key]: BY_KEY[key].unit for key in DEFAULT_METRIC_NAMES}

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self._request("GetMetricData")
        hours = list(hours_between(request["StartTime"], request["EndTime"]))
        queries = request["MetricDataQueries"]
        datapoints = len(queries) * len(hours)
        if self.aws.now - request["StartTime"] <= dt.timedelta(hours=3):
            self.aws.traffic.metric_datapoints_recent += datapoints
        else:
            self.aws.traffic.metric_datapoints_older += datapoints
        results = []
        for query in queries:
            metric = query["MetricStat"]["Metric"]
            index = int(metric["Dimensions"][0]["Value"].removeprefix("tenant-"))
            scale = GIB if self._units[metric["MetricName"]] == "GB" else 10
            results.append(
                {
                    "Id": query["Id"],
                    "StatusCode": "Complete",
                    "Timestamps": hours,
                    "Values": [float((index % 97 + 1) * scale)] * len(hours),
                }
            )
        return {"MetricDataResults": results}


class ModeledCostExplorer(_Modeled):
    service = "cost-explorer"

    def get_cost_and_usage(self, **request: Any) -> dict[str, Any]:
        self._request("GetCostAndUsage")
        period = request["TimePeriod"]
        first = dt.date.fromisoformat(period["Start"])
        count = (dt.date.fromisoformat(period["End"]) - first).days
        days = [first + dt.timedelta(days=n) for n in range(count)]
        token = request.get("NextPageToken")
        number = int(token.rsplit("-", 1)[1]) - 1 if token else 0
        dimension = request["GroupBy"][1]["Key"]
        return cost_page(self.aws.scenario.tenants, days, dimension, number)


class ModeledSecurityHub(_Modeled):
    """Findings filtered by AwsAccountId (EQUALS or PREFIX values, OR'ed) and CompanyName."""

    service = "securityhub"

    def __init__(self, aws: ModeledAws, timeline: Timeline):
        super().__init__(aws, timeline)
        self._matching: dict[tuple[Any, ...], list[int]] = {}

    def get_findings(self, **request: Any) -> dict[str, Any]:
        self._request("GetFindings")
        filters = request["Filters"]
        key = tuple((v["Comparison"], v["Value"]) for v in filters.get("AwsAccountId", [])) + tuple(
            v["Value"] for v in filters["CompanyName"]
        )
        if key not in self._matching:
            self._matching[key] = self._match(filters)
        matching = self._matching[key]
        first = int(request.get("NextToken", "0"))
        if first == 0:
            self.aws.findings_reads.append(len(matching))
        end = min(first + request["MaxResults"], len(matching))
        page: dict[str, Any] = {"Findings": [finding(index) for index in matching[first:end]]}
        if end < len(matching):
            page["NextToken"] = str(end)
        return page

    def _match(self, filters: Mapping[str, Any]) -> list[int]:
        if [v["Value"] for v in filters["CompanyName"]] != ["AWS"]:
            return []
        accounts = filters.get("AwsAccountId")
        if not accounts:
            return list(range(self.aws.scenario.findings))
        equals = {v["Value"] for v in accounts if v["Comparison"] == "EQUALS"}
        prefixes = tuple(v["Value"] for v in accounts if v["Comparison"] == "PREFIX")
        return [
            index
            for index in range(self.aws.scenario.findings)
            if account_id(index) in equals or account_id(index).startswith(prefixes or ("-",))
        ]


class ModeledSqs(_Modeled):
    service = "sqs"

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self._request("SendMessageBatch")
        self.aws.queue += [(self.timeline.now, entry["MessageBody"]) for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def bench_settings(scaling: AggregatorSettings) -> aggregator.Settings:
    return aggregator.Settings(
        metrics_table=METRICS_TABLE,
        customers_table=CUSTOMERS_TABLE,
        usage_source=UsageSource(DEFAULT_NAMESPACE, DEFAULT_TENANT_DIMENSION, DEFAULT_METRIC_NAMES),
        write_concurrency=scaling.write_concurrency,
        sharding=Sharding(
            queue_url=SHARD_QUEUE_URL,
            threshold=scaling.shard_threshold_tenants,
            tenants_per_shard=scaling.tenants_per_shard,
        ),
    )


def _modeled_run(
    aws: ModeledAws, now: dt.datetime, costs_due: bool, scaling: AggregatorSettings
) -> dict[str, Any]:
    """One run at `now`: the coordinator, then every shard it sent; counts, minimum, modeled time."""
    aws.start_run(now)
    settings = bench_settings(scaling)
    coordinator = Timeline()
    started = time.process_time()
    summary = aggregator.run(
        now=now,
        clients=aws.clients(coordinator),
        settings=settings,
        executor_factory=lanes_on(coordinator),
    )
    coordinator_cpu = time.process_time() - started
    shard_settings = ShardSettings(usage=settings.usage, max_attempts=scaling.shard_max_attempts)
    durations, shard_cpu, finished = [], [], summary.get("run")
    for number, (_, body) in enumerate(aws.queue):
        shard = Timeline()
        started = time.process_time()
        processed = aggregator_shard.process(
            [
                {
                    "messageId": str(number),
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"},
                }
            ],
            now=now,
            settings=shard_settings,
            clients=dataclasses.replace(
                aws.clients(shard), cost_explorer=None, securityhub=None, sqs=None
            ),
            executor_factory=lanes_on(shard),
        )
        if processed.retry:
            raise RuntimeError(f"shard {number} failed in the bench: {processed.response()}")
        finished = (processed.finished_runs or [finished])[0]
        durations.append(shard.now)
        shard_cpu.append(time.process_time() - started)
    spans = invocations_schedule(
        [sent for sent, _ in aws.queue], durations, scaling.shard_concurrency
    )
    wall = max([coordinator.now, *(end for _, end in spans)])
    floors = {name: round(seconds, 1) for name, seconds in aws.traffic.floors().items()}

    status = (finished or summary)["status"]
    first = dt.datetime.fromisoformat(summary["first_hour"]).date()
    last = dt.datetime.fromisoformat(summary["last_hour"]).date()
    tenants = aws.scenario.tenants
    minimum = minimum_requests(
        tenants=tenants,
        days_processed=(last - first).days + 1,
        items_written=len(aws.written),
        cost_pages=aws.scenario.cost_pages if costs_due else 0,
        findings_pages=sum(
            max(1, math.ceil(read / compliance.PAGE_SIZE)) for read in aws.findings_reads
        ),
    )
    made = dict(sorted(aws.traffic.requests.items()))
    usage_timeout = AGGREGATOR_SHARD.timeout_seconds if durations else AGGREGATOR.timeout_seconds
    usage_seconds = max(durations) if durations else coordinator.now
    return {
        "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "costs_due": costs_due,
        "compliance_slots": summary.get("compliance_slots", []),
        "findings_read": sum(aws.findings_reads),
        "status": status,
        "tenants": summary["tenants"],
        "shards": len(durations),
        "items_written": len(aws.written),
        "requests": made,
        "requests_total": sum(made.values()),
        "minimum": minimum,
        "minimum_total": sum(minimum.values()),
        "ratio": round(sum(made.values()) / sum(minimum.values()), 4),
        "modeled_seconds": {
            "coordinator": round(coordinator.now, 1),
            "slowest_shard": round(max(durations, default=0.0), 1),
            "coordinator_plus_slowest_shard": round(
                coordinator.now + max(durations, default=0.0), 1
            ),
            "shards_done": round(max((end for _, end in spans), default=0.0), 1),
            "wall": round(max(wall, *floors.values()), 1),
            "quota_floors": floors,
        },
        # Not modeled: the Python time the code itself took here (a Lambda at 1,024 MB
        # has about 0.6 of a vCPU), for scale against the modeled request time.
        "cpu_seconds_here": {
            "coordinator": round(coordinator_cpu, 2),
            "slowest_shard": round(max(shard_cpu, default=0.0), 2),
        },
        # The invocations that aggregate usage: the shards, or the one invocation.
        "largest_timeout_share": round(usage_seconds / usage_timeout, 3),
        "coordinator_timeout_share": round(coordinator.now / AGGREGATOR.timeout_seconds, 3),
    }


def measure_size(tenants: int, scaling: AggregatorSettings, progress: Progress) -> dict[str, Any]:
    scenario = Scenario.of(tenants)
    with mock_aws():
        bookkeeping = boto3.client("dynamodb", region_name=REGION)
        bookkeeping.create_table(**create_table_request(METRICS, METRICS_TABLE))
        aws = ModeledAws(scenario, bookkeeping)
        runs = [
            _modeled_run(aws, FIRST_RUN + number * HOUR, number == 0, scaling)
            for number in range(HOURLY_RUNS)
        ]
    due, not_due = runs[0], runs[1]
    for run in runs:
        modeled = run["modeled_seconds"]
        progress(
            f"  {tenants:,} tenants, {run['now'][11:16]}, costs "
            f"{'due' if run['costs_due'] else 'not due'}, compliance slots "
            f"{run['compliance_slots'] or '-'}: "
            f"{run['requests_total']:,} requests (minimum {run['minimum_total']:,}), "
            f"{run['shards']} shards, modeled {modeled['wall']:.0f} s"
        )
    findings_requests = [run["requests"].get(GET_FINDINGS, 0) for run in runs]
    return {
        "tenants": tenants,
        "suspended_tenants": scenario.suspended,
        "shards": max(run["shards"] for run in runs),
        "calls_vs_minimum": max(run["ratio"] for run in runs),
        "modeled_wall_seconds": max(run["modeled_seconds"]["wall"] for run in runs),
        "modeled_wall_seconds_costs_not_due": max(
            run["modeled_seconds"]["wall"] for run in runs[1:]
        ),
        "largest_timeout_share": max(run["largest_timeout_share"] for run in runs),
        "ce_calls_when_not_due": max(
            run["requests"].get(GET_COST_AND_USAGE, 0) for run in runs[1:]
        ),
        # One compliance refresh interval: every account's findings read once.
        "get_findings_per_interval": {
            "requests": sum(findings_requests),
            "one_whole_read": scenario.findings_pages,
            "per_run": findings_requests,
            "findings_read": sum(run["findings_read"] for run in runs),
            "findings": scenario.findings,
        },
        "hourly_runs": [
            {
                "now": run["now"],
                "compliance_slots": run["compliance_slots"],
                "get_findings": run["requests"].get(GET_FINDINGS, 0),
                "ratio": run["ratio"],
                "modeled_wall_seconds": run["modeled_seconds"]["wall"],
            }
            for run in runs
        ],
        "runs": {"costs_due": due, "costs_not_due": not_due},
    }


def production_scaling() -> AggregatorSettings:
    """The production stack's aggregator settings, from its committed config. Production
    requires its paging webhook, a secret a clone of this repository does not hold; the
    aggregator's settings do not depend on it."""
    webhook = "securebase-analytics:alertWebhookUrl"
    return load_stack_settings("production", secrets_set_elsewhere=(webhook,)).aggregator


def measure(
    sizes: tuple[int, ...] = SIZES,
    scaling: AggregatorSettings | None = None,
    progress: Progress = say,
) -> dict[str, Any]:
    """Every size: the `aggregator` section of the results."""
    use_offline_environment()
    scaling = scaling or production_scaling()
    results = {size_key(size): measure_size(size, scaling, progress) for size in sizes}
    return {
        "calls_vs_minimum": max(result["calls_vs_minimum"] for result in results.values()),
        "ce_calls_when_not_due": max(r["ce_calls_when_not_due"] for r in results.values()),
        **results,
        "minimum_formula": MINIMUM_FORMULA,
        "settings": dataclasses.asdict(scaling),
        "model": {
            "latency_seconds": dict(LATENCY_SECONDS),
            "cold_start_seconds": COLD_START_SECONDS,
            "get_metric_data_tps": GET_METRIC_DATA_TPS,
            "get_metric_data_dps": [GET_METRIC_DATA_RECENT_DPS, GET_METRIC_DATA_OLDER_DPS],
            "table_write_units_per_second": TABLE_WRITE_UNITS_PER_SECOND,
            "sources": "bench/aws_model.py",
        },
    }
