"""Hourly aggregator: platform signals -> per-tenant time series in the metrics table.

Triggered hourly by EventBridge Scheduler (processes the last complete UTC
hour, catching up hours missed since the last run) or with a backfill event
`{"backfill": {"start": ISO, "end": ISO}}` (every hour in [start, end), plus
the costs of those days). `run()` is the same thing in-process.

Requests per run stay at the minimum the APIs allow plus a small constant:
    Scan of active customers        1 page per MB (projected to 3 attributes)
    Query of the bookkeeping items  1
    GetMetricData                   ceil(4 x tenants / 500) per UTC day touched, + NextToken pages
    BatchWriteItem                  ceil(items / 25), + retries of unprocessed items
    GetCostAndUsage                 only when costs are due: the pages of 2 series
    GetFindings                     only when compliance is due: its pages
    BatchWriteItem (bookkeeping)    1
Daily rollups are recomputed from all of the day's hourly datapoints, so a
run never reads the table to update them, and re-running an hour rewrites
exactly the same items.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from handlers.shared import env, telemetry
from handlers.shared import metrics_layout as layout
from handlers.shared.aggregation import compliance, costs, tenants
from handlers.shared.aggregation.cloudwatch_queries import (
    DEFAULT_METRIC_NAMES,
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT_DIMENSION,
    QueryBatch,
    SeriesKey,
    UsageSource,
    query_batches,
    read_results,
)
from handlers.shared.aggregation.hours import (
    CATCH_UP_LIMIT_HOURS,
    DAY,
    backfill_hours,
    by_day,
    catch_up_hours,
    day_start,
    expires_at,
    floor_hour,
    is_retained,
    refresh_due,
)
from handlers.shared.aggregation.rollups import daily_rollup, hourly_samples, samples_for
from handlers.shared.dynamo import (
    BATCH_WRITE_LIMIT,
    UnprocessedItemsError,
    batch_write,
    deserialize,
    query_all,
)
from handlers.shared.usage_metrics import BY_KEY

logger = logging.getLogger(__name__)

LAST_HOUR_SK = "last-hour"
COST_REFRESH_SK = layout.COST_REFRESH_STATE_SK
COMPLIANCE_REFRESH_SK = "compliance-refresh"

DEFAULT_COST_REFRESH_HOURS = 6
DEFAULT_HOURLY_RETENTION_DAYS = 14

# Standard mode retries throttling and transient errors with backoff and
# adapts to the quotas of CloudWatch, Cost Explorer and Security Hub.
_CLIENT_CONFIG = Config(retries={"mode": "standard"})
_AWS_ERRORS = (ClientError, BotoCoreError)

# What the run reports for its cost and compliance refreshes.
FETCHED = "fetched"
NOT_DUE = "not_due"
FAILED = "failed"
SKIPPED = "skipped"  # no tenant has an AWS account to attribute anything to


class AggregationFailed(RuntimeError):
    """The run as a whole failed; raised so the async on-failure destination gets it."""

    def __init__(self, message: str, summary: Mapping[str, Any]):
        super().__init__(message)
        self.summary = dict(summary)


@dataclass(frozen=True)
class Settings:
    metrics_table: str
    customers_table: str
    usage_source: UsageSource
    cost_refresh_hours: int = DEFAULT_COST_REFRESH_HOURS
    hourly_retention_days: int = DEFAULT_HOURLY_RETENTION_DAYS
    catch_up_limit_hours: int = CATCH_UP_LIMIT_HOURS

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            metrics_table=env.require(env.METRICS_TABLE),
            customers_table=env.require(env.CUSTOMERS_TABLE),
            usage_source=UsageSource(
                namespace=env.optional(env.USAGE_NAMESPACE, DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
                tenant_dimension=env.optional(env.USAGE_TENANT_DIMENSION, DEFAULT_TENANT_DIMENSION)
                or DEFAULT_TENANT_DIMENSION,
                metric_names=_metric_names(env.optional(env.USAGE_METRIC_NAMES)),
            ),
            cost_refresh_hours=_positive_int(env.COST_REFRESH_HOURS, DEFAULT_COST_REFRESH_HOURS),
            hourly_retention_days=_positive_int(
                env.HOURLY_RETENTION_DAYS, DEFAULT_HOURLY_RETENTION_DAYS
            ),
        )


def _metric_names(raw: str | None) -> dict[str, str]:
    """USAGE_METRIC_NAMES overrides some or all of the CloudWatch metric names."""
    names = dict(DEFAULT_METRIC_NAMES)
    if not raw:
        return names
    try:
        configured = json.loads(raw)
    except json.JSONDecodeError:
        configured = None
    if (
        not isinstance(configured, dict)
        or not set(configured) <= set(BY_KEY)
        or not all(isinstance(name, str) and name for name in configured.values())
    ):
        raise env.MissingEnvironment(
            f"environment variable {env.USAGE_METRIC_NAMES} must be a JSON object mapping "
            f"{', '.join(BY_KEY)} to CloudWatch metric names; got {raw!r}"
        )
    names.update(configured)
    return names


def _positive_int(name: str, default: int) -> int:
    raw = env.optional(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise env.MissingEnvironment(
            f"environment variable {name} must be a positive integer; got {raw!r}"
        )
    return int(raw)


@dataclass(frozen=True)
class Clients:
    dynamodb: Any
    cloudwatch: Any
    cost_explorer: Any
    securityhub: Any

    def each(self) -> tuple[Any, ...]:
        return (self.dynamodb, self.cloudwatch, self.cost_explorer, self.securityhub)


@functools.cache
def default_clients() -> Clients:
    """Created on first use and kept for the container's life (cold start pays once)."""
    return Clients(
        dynamodb=boto3.client("dynamodb", config=_CLIENT_CONFIG),
        cloudwatch=boto3.client("cloudwatch", config=_CLIENT_CONFIG),
        # Cost Explorer has a single endpoint, in us-east-1.
        cost_explorer=boto3.client("ce", region_name="us-east-1", config=_CLIENT_CONFIG),
        # The region the function runs in is the Security Hub aggregation region.
        securityhub=boto3.client("securityhub", config=_CLIENT_CONFIG),
    )


def _pages(
    operation: Callable[..., dict],
    request: Mapping[str, Any],
    token: str,
    response_token: str | None = None,
) -> Iterator[dict]:
    """Every page of a paginated call, one request per page.

    `token` is the request field that continues; the response carries it
    under the same name unless `response_token` says otherwise.
    """
    request = dict(request)
    while True:
        page = operation(**request)
        yield page
        next_token = page.get(response_token or token)
        if not next_token:
            return
        request[token] = next_token


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


class _ItemWriter:
    """Puts items 25 per BatchWriteItem as they are produced.

    Items are keyed by (pk, sk) while pending, so one request never holds two
    items with the same key. A request that still fails after the retries
    fails the tenants whose items it carried; the run goes on for the others.
    """

    def __init__(
        self, client: Any, table_name: str, on_failure: Callable[[Iterable[str], str], None]
    ):
        self._client = client
        self._table_name = table_name
        self._on_failure = on_failure
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.items_written = 0

    def put(self, item: dict[str, Any]) -> None:
        self._pending[(item["pk"], item["sk"])] = item
        if len(self._pending) == BATCH_WRITE_LIMIT:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        items = list(self._pending.values())
        self._pending = {}
        try:
            batch_write(self._client, self._table_name, items)
        except (UnprocessedItemsError, *_AWS_ERRORS) as error:
            self._on_failure({item["pk"] for item in items}, f"write failed: {_error_code(error)}")
            return
        self.items_written += len(items)


class _Run:
    def __init__(self, settings: Settings, clients: Clients, now: dt.datetime):
        self.settings = settings
        self.clients = clients
        self.now = now
        self.failed: dict[str, str] = {}
        self.writer = _ItemWriter(clients.dynamodb, settings.metrics_table, self.fail)

    def fail(self, tenant_ids: Iterable[str], reason: str) -> None:
        for tenant in sorted(tenant_ids):
            if tenant not in self.failed:
                self.failed[tenant] = reason
                logger.error("tenant not aggregated", extra={"tenant": tenant, "reason": reason})

    # -- reading ---------------------------------------------------------------

    def read_roster(self) -> tenants.TenantRoster:
        pages = _pages(
            self.clients.dynamodb.scan,
            tenants.scan_request(self.settings.customers_table),
            "ExclusiveStartKey",
            "LastEvaluatedKey",
        )
        roster = tenants.roster(deserialize(row) for page in pages for row in page.get("Items", []))
        if roster.rejected_ids:
            logger.warning(
                "customers skipped: id is not a valid tenant id",
                extra={"customer_ids": [value[:80] for value in roster.rejected_ids]},
            )
        if roster.unattributable_accounts:
            logger.warning(
                "accounts shared by several tenants: their costs and findings are not attributed",
                extra={"accounts": list(roster.unattributable_accounts)},
            )
        return roster

    def read_state(self) -> dict[str, dt.datetime]:
        """The bookkeeping items (one Query): sk -> the time they record."""
        items = query_all(
            self.clients.dynamodb,
            TableName=self.settings.metrics_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": layout.AGGREGATOR_PARTITION}},
            ConsistentRead=True,
        )
        return {item["sk"]: dt.datetime.fromisoformat(item["at"]) for item in items if "at" in item}

    # -- usage -----------------------------------------------------------------

    def aggregate_day(
        self, day: dt.date, hours: list[dt.datetime], batches: list[QueryBatch]
    ) -> None:
        """Hourly samples of `hours` and the day's rollups, from one GetMetricData window.

        The window is the whole day up to the last complete hour, whatever
        hours are being processed, so a rollup always covers every complete
        hour of its day (a backfill of the morning cannot shrink it).
        """
        start = day_start(day)
        end = min(start + DAY, floor_hour(self.now))
        wanted = set(hours)
        for batch in batches:
            request = {
                "MetricDataQueries": list(batch.queries),
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            try:
                results = [
                    result
                    for page in _pages(
                        self.clients.cloudwatch.get_metric_data, request, "NextToken"
                    )
                    for result in page.get("MetricDataResults", [])
                ]
            except _AWS_ERRORS as error:
                self.fail(batch.tenants, f"GetMetricData failed for {day}: {_error_code(error)}")
                continue
            read = read_results(batch, results)
            for key, status in read.failed.items():
                self.fail([key.tenant], f"{key.metric} for {day}: {status}")
            for key, raw in read.values.items():
                self.write_usage(day, key, raw, wanted)

    def write_usage(
        self,
        day: dt.date,
        key: SeriesKey,
        raw: Mapping[dt.datetime, float],
        wanted: set[dt.datetime],
    ) -> None:
        metric = BY_KEY[key.metric]
        values = hourly_samples(metric, raw)
        retention = self.settings.hourly_retention_days
        for sample in samples_for(metric, values, wanted):
            if is_retained(sample.hour, self.now, retention):
                self.writer.put(
                    layout.hourly_item(key.tenant, sample, expires_at(sample.hour, retention))
                )
        rollup = daily_rollup(day, metric, values)
        if rollup is not None:
            self.writer.put(layout.daily_item(key.tenant, rollup))

    # -- costs and compliance --------------------------------------------------

    def refresh_costs(
        self, first_day: dt.date, last_day: dt.date, tenant_by_account: Mapping[str, str]
    ) -> bool:
        try:
            pages = {
                dimension: list(
                    _pages(
                        self.clients.cost_explorer.get_cost_and_usage,
                        costs.cost_request(first_day, last_day, dimension),
                        "NextPageToken",
                    )
                )
                for dimension in costs.SERIES
            }
        except _AWS_ERRORS as error:
            logger.error("cost explorer read failed", extra={"error": _error_code(error)})
            return False
        result = costs.tenant_costs(pages, tenant_by_account, first_day, last_day)
        for tenant, reason in result.failed.items():
            self.fail([tenant], reason)
        for tenant, days in result.costs.items():
            for cost in days:
                self.writer.put(layout.cost_item(tenant, cost))
        return True

    def refresh_compliance(self, tenant_by_account: Mapping[str, str]) -> bool:
        findings = (
            finding
            for page in _pages(
                self.clients.securityhub.get_findings,
                compliance.findings_request(tenant_by_account),
                "NextToken",
            )
            for finding in page.get("Findings", [])
        )
        try:
            # Streamed: an organisation's findings need not fit in memory at once.
            snapshots = compliance.snapshots(
                findings, tenant_by_account, self.now.date(), _iso(self.now)
            )
        except _AWS_ERRORS as error:
            logger.error("security hub read failed", extra={"error": _error_code(error)})
            return False
        for tenant, snapshot in snapshots.items():
            self.writer.put(layout.compliance_item(tenant, snapshot))
        return True

    # -- the run -----------------------------------------------------------------

    def execute(self, backfill: tuple[dt.datetime, dt.datetime] | None) -> dict[str, Any]:
        roster = self.read_roster()
        state = self.read_state()
        if backfill is None:
            hours, skipped = catch_up_hours(
                self.now, state.get(LAST_HOUR_SK), self.settings.catch_up_limit_hours
            )
            if skipped:
                logger.warning(
                    "aggregator was down longer than the catch-up limit; backfill the gap",
                    extra={"skipped_hours": skipped, "first_processed_hour": _iso(hours[0])},
                )
        else:
            hours, skipped = backfill_hours(*backfill, self.now), 0

        if roster.tenants and hours:
            batches = query_batches(roster.ids, self.settings.usage_source)
            for day, day_hours in by_day(hours).items():
                self.aggregate_day(day, day_hours, batches)

        tenant_by_account = roster.tenant_by_account()
        cost_status = self.costs_if_due(backfill, hours, state, tenant_by_account)
        compliance_status = self.compliance_if_due(backfill, state, tenant_by_account)
        self.writer.flush()

        partial = bool(self.failed) or FAILED in (cost_status, compliance_status)
        summary = {
            "mode": "hourly" if backfill is None else "backfill",
            "status": "partial_failure" if partial else "ok",
            "first_hour": _iso(hours[0]) if hours else None,
            "last_hour": _iso(hours[-1]) if hours else None,
            "hours": len(hours),
            "skipped_hours": skipped,
            "tenants": len(roster.tenants),
            "failed_tenants": sorted(self.failed),
            "items_written": self.writer.items_written,
            "costs": cost_status,
            "compliance": compliance_status,
        }
        if roster.tenants and len(self.failed) == len(roster.tenants):
            # Bookkeeping stays put, so the next run does these hours again.
            raise AggregationFailed("no tenant could be aggregated", summary)
        if backfill is None:
            self.save_state(hours[-1], cost_status, compliance_status)
        return summary

    def costs_if_due(
        self,
        backfill: tuple[dt.datetime, dt.datetime] | None,
        hours: list[dt.datetime],
        state: Mapping[str, dt.datetime],
        tenant_by_account: Mapping[str, str],
    ) -> str:
        if backfill is None:
            if not refresh_due(
                state.get(COST_REFRESH_SK), self.now, self.settings.cost_refresh_hours
            ):
                return NOT_DUE
            first_day, last_day = costs.recent_days(self.now.date())
        elif hours:
            first_day, last_day = hours[0].date(), hours[-1].date()
        else:
            return SKIPPED
        if not tenant_by_account:
            return SKIPPED
        return FETCHED if self.refresh_costs(first_day, last_day, tenant_by_account) else FAILED

    def compliance_if_due(
        self,
        backfill: tuple[dt.datetime, dt.datetime] | None,
        state: Mapping[str, dt.datetime],
        tenant_by_account: Mapping[str, str],
    ) -> str:
        # Findings pages grow with the organisation, not with the hour, so
        # compliance refreshes on the cost cadence rather than every hour.
        if backfill is None and not refresh_due(
            state.get(COMPLIANCE_REFRESH_SK), self.now, self.settings.cost_refresh_hours
        ):
            return NOT_DUE
        if not tenant_by_account:
            return SKIPPED
        return FETCHED if self.refresh_compliance(tenant_by_account) else FAILED

    def save_state(self, last_hour: dt.datetime, cost_status: str, compliance_status: str) -> None:
        """One BatchWriteItem, after the data: a refresh that failed is retried next hour."""
        moments = {LAST_HOUR_SK: last_hour}
        if cost_status == FETCHED:
            moments[COST_REFRESH_SK] = self.now
        if compliance_status == FETCHED:
            moments[COMPLIANCE_REFRESH_SK] = self.now
        batch_write(
            self.clients.dynamodb,
            self.settings.metrics_table,
            [
                {"pk": layout.AGGREGATOR_PARTITION, "sk": sk, "at": _iso(moment)}
                for sk, moment in moments.items()
            ],
        )


def run(
    now: dt.datetime | None = None,
    backfill: tuple[dt.datetime, dt.datetime] | None = None,
    clients: Clients | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One aggregator run; returns its summary (raises AggregationFailed if it failed as a whole)."""
    now = _utc(now or dt.datetime.now(dt.UTC))
    settings = settings or Settings.from_env()
    clients = clients or default_clients()
    started = time.monotonic()
    if backfill is not None:
        backfill = (_utc(backfill[0]), _utc(backfill[1]))
        if backfill[0] >= backfill[1]:
            raise ValueError("backfill start must be before its end")
    with telemetry.counting_requests(clients.each()) as requests:
        try:
            summary = _Run(settings, clients, now).execute(backfill)
        except AggregationFailed as error:
            error.summary["requests"] = dict(sorted(requests.items()))
            raise
    summary["requests"] = dict(sorted(requests.items()))
    summary["duration_ms"] = round((time.monotonic() - started) * 1000)
    logger.info("aggregator run finished", extra={"summary": summary})
    return summary


def _utc(moment: dt.datetime) -> dt.datetime:
    """Naive times are taken as UTC; everything inside the run is aware UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def parse_backfill(event: Any) -> tuple[dt.datetime, dt.datetime] | None:
    """`{"backfill": {"start": ISO, "end": ISO}}` -> (start, end); any other event -> None."""
    if not isinstance(event, Mapping) or "backfill" not in event:
        return None
    window = event["backfill"]
    try:
        start = _utc(dt.datetime.fromisoformat(window["start"]))
        end = _utc(dt.datetime.fromisoformat(window["end"]))
    except (TypeError, KeyError, ValueError):
        raise ValueError(
            'backfill must be {"start": ISO-8601 time, "end": ISO-8601 time}; '
            f"got {json.dumps(window, default=str)[:200]}"
        ) from None
    if start >= end:
        raise ValueError(f"backfill start {window['start']} must be before end {window['end']}")
    return start, end


def handler(event: Any, context: Any) -> dict[str, Any]:
    telemetry.configure_logging()
    backfill = parse_backfill(event)
    try:
        summary = run(now=dt.datetime.now(dt.UTC), backfill=backfill)
    except AggregationFailed as error:
        telemetry.emit_metric(
            telemetry.AGGREGATOR_TENANT_FAILURES, len(error.summary["failed_tenants"])
        )
        raise
    telemetry.emit_metric(telemetry.AGGREGATOR_TENANT_FAILURES, len(summary["failed_tenants"]))
    telemetry.emit_metric(telemetry.AGGREGATOR_RUNS, 1)
    return summary
