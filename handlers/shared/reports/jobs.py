"""Deferred reports: the reporter queues them, the report engine finishes them.

A message is `{"customer_id": ..., "report_id": ..., "slot": n}`; the report
item itself (status pending) holds everything needed to render it, and `slot`
is the tenant's pending-report slot it holds (handlers.shared.reports.pending),
which the engine releases once the report is ready or failed. Messages queued
before slots existed have none.

Every message carries its tenant as the `MessageGroupId`. On the standard
report-jobs queue that makes it an SQS fair queue: "Fair queues identify
tenants by the MessageGroupId property on each message", and when one tenant
holds a disproportionate share of the messages in flight, SQS delivers the
other tenants' messages first (Amazon SQS Developer Guide, "How Amazon SQS
fair queues work",
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-fair-queues-detailed.html).
Besides in-flight counts SQS measures each tenant's "processing time share",
so a tenant whose few jobs are slow (year-long detailed PDFs on an engine
limited to two at a time) is also detected. A standard queue keeps its
throughput and ordering rules; the group only tells SQS whose message it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handlers.shared.metrics_layout import is_valid_tenant_id
from handlers.shared.reports.ids import is_valid_id


@dataclass(frozen=True)
class Job:
    tenant: str
    report_id: str
    slot: int | None = None  # the pending-report slot it holds


def job_message(job: Job) -> str:
    message: dict[str, Any] = {"customer_id": job.tenant, "report_id": job.report_id}
    if job.slot is not None:
        message["slot"] = job.slot
    return json.dumps(message)


def parse_job(body: str) -> Job | None:
    """The job in a message body; None for anything malformed."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    tenant, report_id, slot = (
        message.get("customer_id"),
        message.get("report_id"),
        message.get("slot"),
    )
    if not is_valid_tenant_id(tenant) or not is_valid_id(report_id):
        return None
    if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int) or slot < 0):
        return None
    return Job(tenant, report_id, slot)


class ReportJobs:
    """The report-jobs queue; its SQS client is created on the first deferral."""

    def __init__(self, queue_url: str, client_factory: Callable[[], Any]):
        self.queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None

    def send(self, job: Job) -> None:
        if self._client is None:
            self._client = self._client_factory()
        self._client.send_message(
            QueueUrl=self.queue_url, MessageBody=job_message(job), MessageGroupId=job.tenant
        )
