"""A sharded run's progress in the metrics table, and completing the run.

The coordinator creates one item per run under `pk = "#aggregator-runs"`
before it sends any shard, with `pending` = shards + 1 (it takes part
itself, for the account-level reads). Every participant then reports once,
with one conditional UpdateItem that adds its counts, puts its id in the
`done` set and takes one off `pending`. The condition (its id not yet in
`done`) turns a duplicate delivery into a no-op, and DynamoDB applies
updates to an item one at a time, so exactly one participant sees `pending`
reach 0: that one completes the run. Completing is the only thing that
advances the hourly bookkeeping, with conditional writes that never move a
marker backwards (a late run cannot undo a later one).

A participant with failed tenants also writes them to their own item
(`sk = <run id>#<participant>`), which keeps the run's item small however
many tenants fail. Both kinds of item expire after RUN_RECORD_DAYS.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handlers.shared import metrics_layout as layout
from handlers.shared.aggregation.shards import HOURLY
from handlers.shared.dynamo import deserialize, serialize

logger = logging.getLogger(__name__)

RUN_RECORD_DAYS = 14

# What a run reports for its cost and compliance refreshes.
FETCHED = "fetched"
NOT_DUE = "not_due"
FAILED = "failed"
SKIPPED = "skipped"  # no tenant has an AWS account to attribute anything to

# A run's status: `ok`, `partial_failure` (some tenants or a refresh failed) or
# `failed` (no tenant's usage could be aggregated: the bookkeeping stays put).
OK = "ok"
PARTIAL_FAILURE = "partial_failure"
RUN_FAILED = "failed"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Participation:
    """What one participant of a run (a shard, or the coordinator) did."""

    participant: str  # shard id, or shards.COORDINATOR
    failures: Mapping[str, str] = field(default_factory=dict)  # tenant -> reason
    items_written: int = 0
    # The shard gave up after its last attempt (its tenants are all in `failures`).
    shard_failed: bool = False
    # The coordinator's account-level refreshes (FETCHED, NOT_DUE, FAILED, SKIPPED).
    costs: str | None = None
    compliance: str | None = None
    # The slots of a staggered compliance refresh the coordinator read.
    compliance_slots: tuple[int, ...] = ()


def run_status(tenants: int, failed_tenants: int, partial: bool) -> str:
    if tenants and failed_tenants >= tenants:
        return RUN_FAILED
    return PARTIAL_FAILURE if failed_tenants or partial else OK


def tenant_failures(finished: Mapping[str, Any]) -> int:
    """Failures a completed run counts: usage in its shards, costs in the coordinator."""
    return int(finished["failed_tenants"]) + int(finished["account_failed_tenants"])


class RunLedger:
    def __init__(self, dynamodb: Any, table_name: str):
        self.dynamodb = dynamodb
        self.table_name = table_name

    def _key(self, sk: str) -> dict[str, Any]:
        return {"pk": {"S": layout.AGGREGATOR_RUNS_PARTITION}, "sk": {"S": sk}}

    def open(
        self,
        run_id: str,
        *,
        mode: str,
        now: dt.datetime,
        hours: Sequence[dt.datetime],
        tenants: int,
        shards: int,
    ) -> None:
        """The run's item, before any shard is sent (one PutItem, never overwriting)."""
        item = {
            "pk": layout.AGGREGATOR_RUNS_PARTITION,
            "sk": run_id,
            "mode": mode,
            "status": "running",
            "started_at": iso(now),
            "first_hour": iso(hours[0]),
            "last_hour": iso(hours[-1]),
            "hours": len(hours),
            "tenants": tenants,
            "shards": shards,
            "pending": shards + 1,
            "failed_tenants": 0,
            "account_failed_tenants": 0,
            "failed_shards": 0,
            "items_written": 0,
            "ttl": self._expiry(now),
        }
        self.dynamodb.put_item(
            TableName=self.table_name,
            Item=serialize(item),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def complete(
        self, run_id: str, part: Participation, finished_at: dt.datetime
    ) -> dict[str, Any] | None:
        """Records `part`; returns the run's summary if it was the last to report, else None.

        A participant that already reported (a message delivered twice) is
        not counted again, and None is returned.
        """
        if part.failures:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item=serialize(
                    {
                        "pk": layout.AGGREGATOR_RUNS_PARTITION,
                        "sk": f"{run_id}#{part.participant}",
                        "failed_tenants": dict(sorted(part.failures.items())),
                        "ttl": self._expiry(finished_at),
                    }
                ),
            )
        counted = "account_failed_tenants" if part.costs is not None else "failed_tenants"
        assignments = []
        values: dict[str, Any] = {
            ":minus_one": -1,
            ":failed": len(part.failures),
            ":gave_up": int(part.shard_failed),
            ":items": part.items_written,
            ":participant": {part.participant},
            ":name": part.participant,
        }
        for name in ("costs", "compliance"):
            status = getattr(part, name)
            if status is not None:
                assignments.append(f"{name} = :{name}")
                values[f":{name}"] = status
        if part.compliance_slots:
            assignments.append("compliance_slots = :compliance_slots")
            values[":compliance_slots"] = list(part.compliance_slots)
        update = (
            f"ADD pending :minus_one, {counted} :failed, failed_shards :gave_up, "
            "items_written :items, done :participant"
        )
        if assignments:
            update += " SET " + ", ".join(assignments)
        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name,
                Key=self._key(run_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND NOT contains(done, :name)",
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.warning(
                "run participant already reported, or the run is unknown",
                extra={"run_id": run_id, "participant": part.participant},
            )
            return None
        run = deserialize(response["Attributes"])
        if int(run["pending"]) > 0:
            return None
        return self._finish(run, finished_at)

    def _finish(self, run: Mapping[str, Any], finished_at: dt.datetime) -> dict[str, Any]:
        tenants, failed = int(run["tenants"]), int(run["failed_tenants"])
        costs, compliance = str(run.get("costs", SKIPPED)), str(run.get("compliance", SKIPPED))
        account_failed, failed_shards = (
            int(run["account_failed_tenants"]),
            int(run["failed_shards"]),
        )
        status = run_status(
            tenants,
            failed,
            bool(account_failed or failed_shards) or FAILED in (costs, compliance),
        )
        if run["mode"] == HOURLY and status != RUN_FAILED:
            self.advance(layout.LAST_HOUR_SK, str(run["last_hour"]))
            if costs == FETCHED:
                self.advance(layout.COST_REFRESH_STATE_SK, str(run["started_at"]))
            if compliance == FETCHED:
                for sk in [
                    layout.compliance_slot_sk(int(slot)) for slot in run.get("compliance_slots", [])
                ] or [layout.COMPLIANCE_REFRESH_SK]:
                    self.advance(sk, str(run["started_at"]))
        self.dynamodb.update_item(
            TableName=self.table_name,
            Key=self._key(str(run["sk"])),
            UpdateExpression="SET #status = :status, finished_at = :finished",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialize({":status": status, ":finished": iso(finished_at)}),
        )
        summary = {
            "run_id": run["sk"],
            "mode": run["mode"],
            "status": status,
            "first_hour": run["first_hour"],
            "last_hour": run["last_hour"],
            "hours": int(run["hours"]),
            "tenants": tenants,
            "shards": int(run["shards"]),
            "failed_shards": failed_shards,
            "failed_tenants": failed,
            "account_failed_tenants": account_failed,
            "items_written": int(run["items_written"]),
            "costs": costs,
            "compliance": compliance,
            "started_at": run["started_at"],
            "finished_at": iso(finished_at),
        }
        log = logger.error if status == RUN_FAILED else logger.info
        log("sharded aggregator run finished", extra={"summary": summary})
        return summary

    def advance(self, sk: str, at: str) -> None:
        """Moves a bookkeeping marker forward to `at`, never back (ISO times sort as time)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": layout.AGGREGATOR_PARTITION}, "sk": {"S": sk}},
                UpdateExpression="SET #at = :at",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":at": {"S": at}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.info("bookkeeping already further on", extra={"marker": sk, "at": at})

    @staticmethod
    def _expiry(moment: dt.datetime) -> int:
        return int((moment + dt.timedelta(days=RUN_RECORD_DAYS)).timestamp())
