"""Deferred reports: the reporter queues them, the report engine finishes them.

A message is `{"customer_id": ..., "report_id": ...}`; the report item itself
(status pending) holds everything needed to render it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from handlers.shared.metrics_layout import is_valid_tenant_id
from handlers.shared.reports.ids import is_valid_id
from handlers.shared.reports.store import ReportRecord


def job_message(record: ReportRecord) -> str:
    return json.dumps({"customer_id": record.customer_id, "report_id": record.report_id})


def parse_job(body: str) -> tuple[str, str] | None:
    """(tenant, report id) of a job message; None for anything malformed."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    tenant, report_id = message.get("customer_id"), message.get("report_id")
    if not is_valid_tenant_id(tenant) or not is_valid_id(report_id):
        return None
    return tenant, report_id


class ReportJobs:
    """The report-jobs queue; its SQS client is created on the first deferral."""

    def __init__(self, queue_url: str, client_factory: Callable[[], Any]):
        self.queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None

    def send(self, record: ReportRecord) -> None:
        if self._client is None:
            self._client = self._client_factory()
        self._client.send_message(QueueUrl=self.queue_url, MessageBody=job_message(record))
