"""Aggregator shard: the usage of one shard of a sharded run, fed by the shard queue.

Each SQS message is a `ShardTask` (handlers.shared.aggregation.shards): tenants,
hours and the run's clock. The shard reads their usage with GetMetricData,
writes samples and rollups with parallel BatchWriteItem requests, and reports
to the run's ledger; if it is the last participant to report, it completes the
run (advancing the bookkeeping) and emits the run's metrics.

Failures:
- A tenant whose data cannot be read or written is recorded with the shard's
  report, as in a single-invocation run; the shard has still done its work.
- A shard that fails as a whole (an error escapes, or no tenant of it could be
  aggregated) is returned as a batch item failure, so SQS delivers it again
  after the visibility timeout. On the queue's last delivery
  (AGGREGATOR_SHARD_MAX_ATTEMPTS = its maxReceiveCount) it is recorded as
  failed for all of its tenants instead and the message is deleted: the run
  completes without it, and the `AggregatorShardFailures` metric counts it.
- A message no shard can run, or a last attempt that cannot even be
  recorded, keeps failing and ends in the dead-letter queue (alarmed).
Re-running a shard writes exactly the same items, and a shard that already
reported is not counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.shared import telemetry
from handlers.shared.aggregation.shards import InvalidShardMessage, ShardTask
from handlers.shared.aggregator.ledger import (
    RUN_FAILED,
    Participation,
    RunLedger,
    tenant_failures,
)
from handlers.shared.aggregator.runtime import (
    Clients,
    ShardSettings,
    TenantFailures,
    emit_run_metrics,
    shard_clients,
)
from handlers.shared.aggregator.usage import UsageAggregation, metrics_writer
from handlers.shared.dynamo import WRITE_ERRORS, ExecutorFactory

logger = logging.getLogger(__name__)


@dataclass
class Processed:
    """What one batch of shard messages came to."""

    retry: list[str] = field(default_factory=list)  # message ids SQS must deliver again
    failed_shards: int = 0  # shards recorded as failed on their last attempt
    finished_runs: list[dict[str, Any]] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        """Lambda's partial batch response: only these messages are retried."""
        return {"batchItemFailures": [{"itemIdentifier": message} for message in self.retry]}


def run_shard(
    task: ShardTask,
    settings: ShardSettings,
    clients: Clients,
    executor_factory: ExecutorFactory | None = None,
) -> Participation:
    """The shard's usage, written; its report to the run (not yet sent)."""
    failures = TenantFailures()
    with metrics_writer(clients.dynamodb, settings.usage, failures, executor_factory) as writer:
        UsageAggregation(settings.usage, clients.cloudwatch, writer, failures, task.now).run(
            task.tenants, task.hours
        )
    return Participation(task.shard_id, failures.reasons, writer.items_written)


def process(
    records: Iterable[Mapping[str, Any]],
    *,
    now: dt.datetime,
    settings: ShardSettings,
    clients: Clients,
    executor_factory: ExecutorFactory | None = None,
) -> Processed:
    """Runs the shards of SQS `records`; `now` stamps the completion of a run."""
    processed = Processed()
    ledger = RunLedger(clients.dynamodb, settings.usage.metrics_table)
    for record in records:
        message_id = str(record.get("messageId"))
        try:
            task = ShardTask.from_message(str(record.get("body")))
        except InvalidShardMessage as error:
            logger.error(
                "shard message rejected", extra={"message_id": message_id, "error": str(error)}
            )
            processed.retry.append(message_id)
            continue
        attempt = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        context = {"run_id": task.run_id, "shard_id": task.shard_id, "attempt": attempt}
        try:
            part = run_shard(task, settings, clients, executor_factory)
            failures = dict(part.failures)
        except Exception as error:  # any failure of the shard is retried, then recorded
            logger.exception("shard failed", extra=context)
            failures = dict.fromkeys(task.tenants, f"shard failed: {type(error).__name__}")
            part = Participation(task.shard_id, failures)
        if len(failures) == len(task.tenants):
            if attempt < settings.max_attempts:
                processed.retry.append(message_id)
                continue
            logger.error("shard recorded as failed after its last attempt", extra=context)
            part = Participation(task.shard_id, failures, shard_failed=True)
            processed.failed_shards += 1
        try:
            finished = ledger.complete(task.run_id, part, finished_at=now)
        except WRITE_ERRORS:
            logger.exception("shard report failed", extra=context)
            processed.retry.append(message_id)
            continue
        if finished is not None:
            processed.finished_runs.append(finished)
    return processed


def handler(event: Any, context: Any) -> dict[str, Any]:
    telemetry.configure_logging()
    processed = process(
        (event or {}).get("Records", []),
        now=dt.datetime.now(dt.UTC),
        settings=ShardSettings.from_env(),
        clients=shard_clients(),
    )
    if processed.failed_shards:
        telemetry.emit_metric(telemetry.AGGREGATOR_SHARD_FAILURES, processed.failed_shards)
    for finished in processed.finished_runs:
        emit_run_metrics(tenant_failures(finished), completed=finished["status"] != RUN_FAILED)
    return processed.response()
