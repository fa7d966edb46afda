"""Hourly aggregator (the coordinator): platform signals -> per-tenant time series.

Triggered hourly by EventBridge Scheduler (processes the last complete UTC
hour, catching up hours missed since the last run) or with a backfill event
`{"backfill": {"start": ISO, "end": ISO}}` (every hour in [start, end), plus
the costs of those days). `run()` is the same thing in-process.

A roster below the sharding threshold (or a function without a shard queue)
is aggregated in this one invocation. From the threshold on, the run is
sharded: this function reads the roster and the bookkeeping, records the run
(handlers.shared.aggregator.ledger), sends one message per shard to the shard
queue (handlers.aggregator_shard aggregates the usage of each) and then makes
the account-level reads, Cost Explorer and Security Hub, once for the whole
run. Whoever reports last, a shard or this function, completes the run and
advances the bookkeeping.

Requests per run stay at the minimum the APIs allow plus a small constant:
    Scan of active customers        1 page per MB (projected to 3 attributes)
    Query of the bookkeeping items  1
    GetMetricData                   ceil(4 x tenants / 500) per UTC day touched, + NextToken pages
    BatchWriteItem                  ceil(items / 25), + retries of unprocessed items
    GetCostAndUsage                 only when costs are due: the pages of 2 series
    GetFindings                     only when compliance is due: its pages (sharded
                                    runs: the pages of the slot due, see below)
    bookkeeping                     1 BatchWriteItem (one invocation), or
    sharded runs                    1 PutItem, ceil(shards / 10) SendMessageBatch,
                                    1 UpdateItem per shard and for the coordinator,
                                    up to 4 UpdateItem to complete the run
Shards cut the roster in whole GetMetricData batches (125 tenants) and write
at most one partial BatchWriteItem each, so sharding adds almost nothing.

A sharded run also staggers the compliance refresh
(handlers.shared.aggregation.compliance_slots): each hour it reads the
findings of the one slot of accounts that is due, so every account is still
read once per refresh interval and no single run reads them all. The plan
of slots is made once, from the roster, and kept in the bookkeeping
(`compliance-plan`, one PutItem when made); each slot's last read is a
bookkeeping marker (`compliance-refresh#<slot>`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from handlers.shared import metrics_layout as layout
from handlers.shared import telemetry
from handlers.shared.aggregation import compliance, compliance_slots, costs, shards, tenants
from handlers.shared.aggregation.hours import backfill_hours, catch_up_hours, refresh_due
from handlers.shared.aggregator.ledger import (
    FAILED,
    FETCHED,
    NOT_DUE,
    RUN_FAILED,
    SKIPPED,
    Participation,
    RunLedger,
    iso,
    run_status,
    tenant_failures,
)
from handlers.shared.aggregator.runtime import (
    AWS_ERRORS,
    Clients,
    Settings,
    Sharding,
    TenantFailures,
    emit_run_metrics,
    error_code,
    pages,
)
from handlers.shared.aggregator.runtime import coordinator_clients as default_clients
from handlers.shared.aggregator.usage import UsageAggregation, metrics_writer
from handlers.shared.dynamo import (
    ExecutorFactory,
    batch_write,
    deserialize,
    query_all,
    serialize,
)

__all__ = ["AggregationFailed", "Clients", "QueueDispatcher", "Settings", "Sharding", "run"]

logger = logging.getLogger(__name__)

# SendMessageBatch takes at most 10 messages and 256 KiB in all.
SQS_BATCH_MESSAGES = 10
SQS_BATCH_BYTES = 256 * 1024
SEND_ATTEMPTS = 3


class AggregationFailed(RuntimeError):
    """The run as a whole failed; raised so the async on-failure destination gets it."""

    def __init__(self, message: str, summary: Mapping[str, Any], tenant_failures: int):
        super().__init__(message)
        self.summary = dict(summary)
        self.tenant_failures = tenant_failures


class Dispatcher(Protocol):
    """Hands a run's shards to whatever runs them (the shard queue in AWS)."""

    def dispatch(self, tasks: Sequence[shards.ShardTask]) -> None: ...


class QueueDispatcher:
    """Sends shard messages to the shard queue, batched by count and size.

    Entries SQS turns down in a batch (`Failed`) are sent again; one still
    refused after SEND_ATTEMPTS fails the run, which is retried as a whole
    (shards already sent only rewrite the same items).
    """

    def __init__(self, sqs: Any, queue_url: str):
        self.sqs = sqs
        self.queue_url = queue_url

    def dispatch(self, tasks: Sequence[shards.ShardTask]) -> None:
        batch: list[dict[str, str]] = []
        size = 0
        for task in tasks:
            entry = {"Id": task.shard_id, "MessageBody": task.to_message()}
            length = len(entry["MessageBody"].encode())
            if batch and (len(batch) == SQS_BATCH_MESSAGES or size + length > SQS_BATCH_BYTES):
                self._send(batch)
                batch, size = [], 0
            batch.append(entry)
            size += length
        if batch:
            self._send(batch)

    def _send(self, entries: list[dict[str, str]]) -> None:
        for _ in range(SEND_ATTEMPTS):
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            refused = {failure["Id"] for failure in response.get("Failed", [])}
            if not refused:
                return
            entries = [entry for entry in entries if entry["Id"] in refused]
        raise RuntimeError(f"the shard queue refused shards {sorted(refused)}")


class _Run:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        now: dt.datetime,
        executor_factory: ExecutorFactory | None,
    ):
        self.settings = settings
        self.clients = clients
        self.now = now
        self.failures = TenantFailures()
        # The compliance slots this run read (a staggered refresh), for the bookkeeping.
        self.compliance_slots: tuple[int, ...] = ()
        self.writer = metrics_writer(
            clients.dynamodb, settings.usage, self.failures, executor_factory
        )

    # -- reading ---------------------------------------------------------------

    def read_roster(self) -> tenants.TenantRoster:
        roster_pages = pages(
            self.clients.dynamodb.scan,
            tenants.scan_request(self.settings.customers_table),
            "ExclusiveStartKey",
            "LastEvaluatedKey",
        )
        roster = tenants.roster(
            deserialize(row) for page in roster_pages for row in page.get("Items", [])
        )
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

    def read_state(self) -> tuple[dict[str, dt.datetime], compliance_slots.CompliancePlan | None]:
        """The bookkeeping items (one Query): sk -> the time they record, and the compliance plan."""
        items = list(
            query_all(
                self.clients.dynamodb,
                TableName=self.settings.metrics_table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": layout.AGGREGATOR_PARTITION}},
                ConsistentRead=True,
            )
        )
        moments = {
            item["sk"]: dt.datetime.fromisoformat(item["at"]) for item in items if "at" in item
        }
        plan = next(
            (
                compliance_slots.CompliancePlan.from_item(item)
                for item in items
                if item["sk"] == layout.COMPLIANCE_PLAN_SK
            ),
            None,
        )
        return moments, plan

    # -- costs and compliance --------------------------------------------------

    def refresh_costs(
        self, first_day: dt.date, last_day: dt.date, tenant_by_account: Mapping[str, str]
    ) -> bool:
        # Pages are read as they are parsed: with many linked accounts a series
        # is far larger than the costs it adds up to.
        cost_pages = {
            dimension: pages(
                self.clients.cost_explorer.get_cost_and_usage,
                costs.cost_request(first_day, last_day, dimension),
                "NextPageToken",
            )
            for dimension in costs.SERIES
        }
        try:
            result = costs.tenant_costs(cost_pages, tenant_by_account, first_day, last_day)
        except AWS_ERRORS as error:
            logger.error("cost explorer read failed", extra={"error": error_code(error)})
            return False
        for tenant, reason in result.failed.items():
            self.failures.fail([tenant], reason)
        for tenant, days in result.costs.items():
            for cost in days:
                self.writer.put(layout.cost_item(tenant, cost))
        return True

    def refresh_compliance(
        self, tenant_by_account: Mapping[str, str], account_prefixes: Sequence[str] = ()
    ) -> bool:
        findings = (
            finding
            for page in pages(
                self.clients.securityhub.get_findings,
                compliance.findings_request(tenant_by_account, account_prefixes),
                "NextToken",
            )
            for finding in page.get("Findings", [])
        )
        try:
            # Streamed: an organisation's findings need not fit in memory at once.
            snapshots = compliance.snapshots(
                findings, tenant_by_account, self.now.date(), iso(self.now)
            )
        except AWS_ERRORS as error:
            logger.error("security hub read failed", extra={"error": error_code(error)})
            return False
        for tenant, snapshot in snapshots.items():
            self.writer.put(layout.compliance_item(tenant, snapshot))
        return True

    def costs_if_due(
        self,
        backfill: tuple[dt.datetime, dt.datetime] | None,
        hours: list[dt.datetime],
        state: Mapping[str, dt.datetime],
        tenant_by_account: Mapping[str, str],
    ) -> str:
        if backfill is None:
            if not refresh_due(
                state.get(layout.COST_REFRESH_STATE_SK), self.now, self.settings.cost_refresh_hours
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
        plan: compliance_slots.CompliancePlan | None,
        tenant_by_account: Mapping[str, str],
        staggered: bool,
    ) -> str:
        # Findings pages grow with the organisation, not with the hour, so
        # compliance refreshes on the cost cadence rather than every hour.
        if backfill is None and staggered and tenant_by_account:
            plan = self.compliance_plan(plan, tenant_by_account)
            if plan is not None:
                return self.compliance_slots_due(plan, state, tenant_by_account)
        if backfill is None and not refresh_due(
            state.get(layout.COMPLIANCE_REFRESH_SK), self.now, self.settings.cost_refresh_hours
        ):
            return NOT_DUE
        if not tenant_by_account:
            return SKIPPED
        return FETCHED if self.refresh_compliance(tenant_by_account) else FAILED

    def compliance_plan(
        self,
        plan: compliance_slots.CompliancePlan | None,
        tenant_by_account: Mapping[str, str],
    ) -> compliance_slots.CompliancePlan | None:
        """The kept plan, or a new one (saved at once) when there is none for this cadence."""
        every = self.settings.cost_refresh_hours
        if plan is not None and len(plan.slots) == every:
            return plan
        plan = compliance_slots.plan(tenant_by_account, every, self.now)
        if plan is None:
            logger.warning(
                "accounts too alike for %s slots of %s prefixes: compliance is read whole",
                every,
                compliance_slots.MAX_FILTER_VALUES,
            )
            return None
        self.clients.dynamodb.put_item(
            TableName=self.settings.metrics_table,
            Item=serialize(
                {"pk": layout.AGGREGATOR_PARTITION, "sk": layout.COMPLIANCE_PLAN_SK}
                | plan.to_item()
            ),
        )
        logger.info("compliance refresh planned", extra={"slots": plan.to_item()["slots"]})
        return plan

    def compliance_slots_due(
        self,
        plan: compliance_slots.CompliancePlan,
        state: Mapping[str, dt.datetime],
        tenant_by_account: Mapping[str, str],
    ) -> str:
        """Reads the slots due: one, unless runs were missed or failed (20 prefixes a read)."""
        last_read = {
            number: state[layout.compliance_slot_sk(number)]
            for number in range(len(plan.slots))
            if layout.compliance_slot_sk(number) in state
        }
        due = plan.due_slots(last_read, self.now)
        if not due:
            return NOT_DUE
        prefixes = sorted(prefix for number in due for prefix in plan.slots[number])
        for chunk in compliance_slots.chunks(prefixes):
            if not self.refresh_compliance(tenant_by_account, chunk):
                return FAILED
        self.compliance_slots = due
        return FETCHED

    # -- the run -----------------------------------------------------------------

    def execute(
        self,
        backfill: tuple[dt.datetime, dt.datetime] | None,
        dispatcher: Dispatcher | None,
    ) -> dict[str, Any]:
        roster = self.read_roster()
        state, plan = self.read_state()
        if backfill is None:
            hours, skipped = catch_up_hours(
                self.now, state.get(layout.LAST_HOUR_SK), self.settings.catch_up_limit_hours
            )
            if skipped:
                logger.warning(
                    "aggregator was down longer than the catch-up limit; backfill the gap",
                    extra={"skipped_hours": skipped, "first_processed_hour": iso(hours[0])},
                )
        else:
            hours, skipped = backfill_hours(*backfill, self.now), 0
        mode = shards.HOURLY if backfill is None else shards.BACKFILL
        sharding = self.settings.sharding
        if sharding is not None and not (hours and sharding.applies_to(len(roster.tenants))):
            sharding = None
        sharded = sharding is not None

        try:
            if sharding is not None:
                tasks = self.dispatch(mode, hours, roster, sharding, dispatcher)
            elif roster.tenants and hours:
                UsageAggregation(
                    self.settings.usage,
                    self.clients.cloudwatch,
                    self.writer,
                    self.failures,
                    self.now,
                ).run(roster.ids, hours)
            tenant_by_account = roster.tenant_by_account()
            cost_status = self.costs_if_due(backfill, hours, state, tenant_by_account)
            compliance_status = self.compliance_if_due(
                backfill, state, plan, tenant_by_account, staggered=sharded
            )
        finally:
            self.writer.close()

        failed = self.failures.reasons
        summary = {
            "mode": mode,
            "status": run_status(
                len(roster.tenants) if not sharded else 0,
                len(failed),
                FAILED in (cost_status, compliance_status),
            ),
            "first_hour": iso(hours[0]) if hours else None,
            "last_hour": iso(hours[-1]) if hours else None,
            "hours": len(hours),
            "skipped_hours": skipped,
            "tenants": len(roster.tenants),
            "failed_tenants": sorted(failed),
            "items_written": self.writer.items_written,
            "costs": cost_status,
            "compliance": compliance_status,
        }
        if self.compliance_slots:
            summary["compliance_slots"] = list(self.compliance_slots)
        if sharded:
            return self.complete_sharded(summary, tasks, failed, cost_status, compliance_status)
        if summary["status"] == RUN_FAILED:
            # Bookkeeping stays put, so the next run does these hours again.
            raise AggregationFailed("no tenant could be aggregated", summary, len(failed))
        if backfill is None:
            self.save_state(hours[-1], cost_status, compliance_status)
        return summary

    def dispatch(
        self,
        mode: str,
        hours: list[dt.datetime],
        roster: tenants.TenantRoster,
        sharding: Sharding,
        dispatcher: Dispatcher | None,
    ) -> list[shards.ShardTask]:
        """Records the run, then sends its shards; the account-level reads follow."""
        run_id = self.now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        tasks = shards.plan(run_id, mode, self.now, hours, roster.ids, sharding.tenants_per_shard)
        RunLedger(self.clients.dynamodb, self.settings.metrics_table).open(
            run_id,
            mode=mode,
            now=self.now,
            hours=hours,
            tenants=len(roster.tenants),
            shards=len(tasks),
        )
        (dispatcher or QueueDispatcher(self.clients.sqs, sharding.queue_url)).dispatch(tasks)
        logger.info(
            "aggregator run sharded",
            extra={"run_id": run_id, "shards": len(tasks), "tenants": len(roster.tenants)},
        )
        return tasks

    def complete_sharded(
        self,
        summary: dict[str, Any],
        tasks: list[shards.ShardTask],
        failed: Mapping[str, str],
        cost_status: str,
        compliance_status: str,
    ) -> dict[str, Any]:
        """Reports the coordinator's part; completes the run if every shard already has."""
        run_id = tasks[0].run_id
        finished = RunLedger(self.clients.dynamodb, self.settings.metrics_table).complete(
            run_id,
            Participation(
                participant=shards.COORDINATOR,
                failures=failed,
                items_written=self.writer.items_written,
                costs=cost_status,
                compliance=compliance_status,
                compliance_slots=self.compliance_slots,
            ),
            finished_at=self.now,
        )
        summary.update(
            run_id=run_id,
            shards=len(tasks),
            status=finished["status"] if finished else "dispatched",
            run=finished,
        )
        if finished and finished["status"] == RUN_FAILED:
            raise AggregationFailed(
                "no tenant could be aggregated", summary, tenant_failures(finished)
            )
        return summary

    def save_state(self, last_hour: dt.datetime, cost_status: str, compliance_status: str) -> None:
        """One BatchWriteItem, after the data: a refresh that failed is retried next hour."""
        moments = {layout.LAST_HOUR_SK: last_hour}
        if cost_status == FETCHED:
            moments[layout.COST_REFRESH_STATE_SK] = self.now
        if compliance_status == FETCHED:
            moments[layout.COMPLIANCE_REFRESH_SK] = self.now
        batch_write(
            self.clients.dynamodb,
            self.settings.metrics_table,
            [
                {"pk": layout.AGGREGATOR_PARTITION, "sk": sk, "at": iso(moment)}
                for sk, moment in moments.items()
            ],
        )


def run(
    now: dt.datetime | None = None,
    backfill: tuple[dt.datetime, dt.datetime] | None = None,
    clients: Clients | None = None,
    settings: Settings | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    executor_factory: ExecutorFactory | None = None,
) -> dict[str, Any]:
    """One aggregator run; returns its summary (raises AggregationFailed if it failed as a whole).

    `dispatcher` runs the shards of a sharded run (default: the shard queue);
    `executor_factory` runs the writes (default: a thread pool).
    """
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
            summary = _Run(settings, clients, now, executor_factory).execute(backfill, dispatcher)
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
        emit_run_metrics(error.tenant_failures, completed=False)
        raise
    finished = summary.get("run")
    if "run_id" not in summary:
        emit_run_metrics(len(summary["failed_tenants"]), completed=True)
    elif finished is not None:
        emit_run_metrics(tenant_failures(finished), completed=True)
    return summary
