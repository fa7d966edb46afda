"""The report-schedules table: tenants' schedules and the engine's claims on them.

Two engine runs may overlap (a slow run and the next one 15 minutes later, or
a retried invocation). Each due schedule is *claimed* with a conditional
update that succeeds only if its `next_run` is still the one the run saw and
no unexpired claim holds it; only the claimant sends the report, and it
releases the claim (advancing `next_run`, or recording the failure) only if
the claim is still its own. A run that dies mid-way leaves a claim that
expires after `LEASE`, and the schedule is retried.

The per-tenant cap on schedules holds under concurrency: each tenant has a
counter item (partition `<tenant>#quota`, which no tenant id can be, since
tenant ids never contain `#`; it carries no `due_shard`, so the due index
never sees it), and creating or deleting a schedule is one DynamoDB
transaction with the counter's conditional update, so either both happen or
neither ("The actions are completed atomically so that either all of them
succeed, or all of them fail", TransactWriteItems in the DynamoDB API
Reference). A tenant's first create or delete after this was deployed starts
the counter from a count of its schedules; until the counter exists no
create or delete can succeed, so that count is exact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from handlers.shared.dynamo import deserialize, query_all, serialize
from handlers.shared.reports.ids import is_valid_id
from handlers.shared.reports.schedules import DUE_SHARD
from handlers.shared.reports.times import iso_utc
from handlers.shared.tables import DUE_SCHEDULES_INDEX

# Longer than the report engine's 5-minute timeout, so a live claim never expires.
LEASE = dt.timedelta(minutes=10)
MAX_ERROR_LENGTH = 500
QUOTA_PARTITION_SUFFIX = "#quota"
SCHEDULE_COUNTER = "schedules"
MAX_TRANSACTION_ATTEMPTS = 8


class ScheduleStore:
    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def _key(self, tenant: str, schedule_id: str) -> dict[str, Any]:
        return serialize({"customer_id": tenant, "schedule_id": schedule_id})

    # The API's side

    def count(self, tenant: str) -> int:
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "customer_id = :tenant",
            "ExpressionAttributeValues": serialize({":tenant": tenant}),
            "Select": "COUNT",
        }
        total = 0
        while True:
            response = self.client.query(**request)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                return total
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _counter_key(self, tenant: str) -> dict[str, Any]:
        return self._key(tenant + QUOTA_PARTITION_SUFFIX, SCHEDULE_COUNTER)

    def _counter_update(
        self, tenant: str, change: int, condition: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._counter_key(tenant),
                "UpdateExpression": "SET schedule_count = schedule_count + :change",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": serialize({":change": change, **values}),
            }
        }

    def _counter_value(self, tenant: str) -> int | None:
        """The tenant's schedule count; None while it has no counter."""
        item = self.client.get_item(
            TableName=self.table_name, Key=self._counter_key(tenant), ConsistentRead=True
        ).get("Item")
        return None if item is None else int(deserialize(item)["schedule_count"])

    def _start_counter(self, tenant: str) -> None:
        """Creates the tenant's counter from a count of its schedules, unless it exists."""
        # ConditionalCheckFailed: a concurrent request started it.
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    **self._counter_key(tenant),
                    **serialize({"schedule_count": self.count(tenant)}),
                },
                ConditionExpression="attribute_not_exists(schedule_id)",
            )

    def _counted_write(
        self,
        tenant: str,
        write: dict[str, Any],
        counter: dict[str, Any],
        refuses: Callable[[int], bool],
    ) -> str:
        """Runs `write` and the counter's update as one transaction.

        Returns "" when both happened, "write" or "counter" for the one whose
        condition failed; `refuses(count)` says whether the counter's condition
        fails at that count. A missing counter is started and the transaction
        tried again, and so is one whose counter a concurrent request started
        after this one's attempt (its condition failed on the missing counter);
        so is one cancelled by a concurrent transaction on the same counter
        (reason TransactionConflict), after a short random pause.
        """
        for attempt in range(MAX_TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[write, counter])
                return ""
            except self.client.exceptions.TransactionCanceledException as cancelled:
                write_reason, counter_reason = (
                    reason.get("Code", "None")
                    for reason in cancelled.response.get("CancellationReasons", [{}, {}])
                )
            if write_reason == "ConditionalCheckFailed":
                return "write"
            if counter_reason == "ConditionalCheckFailed":
                count = self._counter_value(tenant)
                if count is None:
                    self._start_counter(tenant)
                elif refuses(count):
                    return "counter"
            elif "TransactionConflict" not in (write_reason, counter_reason):
                raise RuntimeError(
                    f"schedule transaction cancelled: {write_reason}, {counter_reason}"
                )
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # jitter, not a secret
        raise RuntimeError("schedule transaction kept conflicting with concurrent ones")

    def create(self, item: Mapping[str, Any], limit: int) -> bool:
        """Stores a new schedule; False when the tenant already has `limit` schedules."""
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": serialize(item),
                "ConditionExpression": "attribute_not_exists(schedule_id)",
            }
        }
        tenant = item["customer_id"]
        below_limit = self._counter_update(tenant, 1, "schedule_count < :limit", {":limit": limit})
        failed = self._counted_write(tenant, put, below_limit, lambda count: count >= limit)
        if failed == "write":
            raise RuntimeError("a new schedule id was already taken")
        return failed == ""

    def list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's schedules, newest first."""
        return list(
            query_all(
                self.client,
                TableName=self.table_name,
                KeyConditionExpression="customer_id = :tenant",
                ExpressionAttributeValues=serialize({":tenant": tenant}),
                ScanIndexForward=False,
            )
        )

    def get(self, tenant: str, schedule_id: str) -> dict[str, Any] | None:
        """The tenant's schedule; None for unknown ids and other tenants' alike."""
        if not is_valid_id(schedule_id):
            return None
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(tenant, schedule_id), ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

    def delete(self, tenant: str, schedule_id: str) -> bool:
        """False when the tenant has no such schedule."""
        if not is_valid_id(schedule_id):
            return False
        delete = {
            "Delete": {
                "TableName": self.table_name,
                "Key": self._key(tenant, schedule_id),
                "ConditionExpression": "attribute_exists(schedule_id)",
            }
        }
        counted = self._counter_update(tenant, -1, "attribute_exists(schedule_count)", {})
        return self._counted_write(tenant, delete, counted, lambda count: False) == ""

    # The engine's side

    def due(self, now: dt.datetime) -> Iterator[dict[str, Any]]:
        """Every active schedule whose `next_run` has come, earliest first (index Query)."""
        return query_all(
            self.client,
            TableName=self.table_name,
            IndexName=DUE_SCHEDULES_INDEX.name,
            KeyConditionExpression="due_shard = :due AND next_run <= :now",
            ExpressionAttributeValues=serialize({":due": DUE_SHARD, ":now": iso_utc(now)}),
        )

    def _update(self, item: Mapping[str, Any], **request: Any) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(item["customer_id"], item["schedule_id"]),
                **request,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def claim(self, item: Mapping[str, Any], run_id: str, now: dt.datetime) -> bool:
        """True if this run now owns the schedule's due run; False if another run does,
        already did it, or the schedule was deleted."""
        return self._update(
            item,
            UpdateExpression="SET claim_id = :me, claimed_until = :until",
            ConditionExpression=(
                "next_run = :seen AND due_shard = :due"
                " AND (attribute_not_exists(claimed_until) OR claimed_until < :now)"
            ),
            ExpressionAttributeValues=serialize(
                {
                    ":me": run_id,
                    ":until": iso_utc(now + LEASE),
                    ":seen": item["next_run"],
                    ":due": DUE_SHARD,
                    ":now": iso_utc(now),
                }
            ),
        )

    def complete(
        self,
        item: Mapping[str, Any],
        run_id: str,
        next_run: dt.datetime,
        report_id: str | None,
        now: dt.datetime,
        status: str = "sent",
    ) -> bool:
        """Advances the schedule after its run and releases the claim; `report_id` None:
        the run had no one to send to (`status` says why)."""
        values: dict[str, Any] = {
            ":next": iso_utc(next_run),
            ":status": status,
            ":now": iso_utc(now),
            ":zero": 0,
            ":me": run_id,
        }
        report = ""
        if report_id is not None:
            report = ", last_report_id = :report"
            values[":report"] = report_id
        return self._update(
            item,
            UpdateExpression=(
                "SET next_run = :next, last_status = :status, last_run_at = :now,"
                " consecutive_failures = :zero"
                + report
                + " REMOVE claim_id, claimed_until, last_error, run_report_id, run_report_for"
            ),
            ConditionExpression="claim_id = :me",
            ExpressionAttributeValues=serialize(values),
        )

    def fail(
        self,
        item: Mapping[str, Any],
        run_id: str,
        error: str,
        now: dt.datetime,
        next_run: dt.datetime | None = None,
        status: str = "failed",
        report_id: str | None = None,
    ) -> bool:
        """Records a failed run and releases the claim.

        `next_run` None keeps the due run, so the next engine run retries it,
        with the report `report_id` if given (the retry sends the same report
        to the recipients that did not get it); a time gives up on this run
        and waits for that one.
        """
        values: dict[str, Any] = {
            ":failed": status,
            ":error": error[:MAX_ERROR_LENGTH],
            ":now": iso_utc(now),
            ":zero": 0,
            ":me": run_id,
        }
        removed = "claim_id, claimed_until"
        if next_run is None:
            counter = "consecutive_failures = if_not_exists(consecutive_failures, :zero) + :one"
            values[":one"] = 1
            if report_id is not None:
                counter += ", run_report_id = :report, run_report_for = :run"
                values[":report"] = report_id
                values[":run"] = item["next_run"]
        else:
            counter = "consecutive_failures = :zero, next_run = :next"
            values[":next"] = iso_utc(next_run)
            removed += ", run_report_id, run_report_for"
        return self._update(
            item,
            UpdateExpression=(
                "SET last_status = :failed, last_error = :error, last_run_at = :now, "
                + counter
                + " REMOVE "
                + removed
            ),
            ConditionExpression="claim_id = :me",
            ExpressionAttributeValues=serialize(values),
        )
