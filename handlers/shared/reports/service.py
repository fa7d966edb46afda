"""Generating a report end to end: read the data, render, upload, record.

Shared by the reporter (on demand) and the report engine (deferred and
scheduled reports). A failure at any step leaves the report `failed` with a
message that says which step failed (details go to the log, not to the
tenant) and emits the ReportGenerationFailures metric the failed-reports
alarm watches.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from handlers.shared import env
from handlers.shared.metrics_reader import MetricsReader
from handlers.shared.periods import parse_period
from handlers.shared.reports.builder import load_report_data
from handlers.shared.reports.model import CSV, JSON, PDF, XLSX, ReportData
from handlers.shared.reports.render import render
from handlers.shared.reports.store import (
    FAILED,
    PENDING,
    READY,
    ReportObjects,
    ReportRecord,
    ReportsTable,
)
from handlers.shared.reports.times import parse_utc, utc_now
from handlers.shared.telemetry import REPORT_FAILURES, REPORTS_GENERATED, emit_metric

logger = logging.getLogger(__name__)

# Rows per second each renderer sustains on the smallest Lambda size that runs
# it (conservative: about a third of what `make bench` measures on a laptop
# core), plus its fixed cost (imports, title pages). Used to decide up front
# whether a report fits the API's time budget.
ROWS_PER_SECOND = {CSV: 50_000, JSON: 50_000, XLSX: 3_000, PDF: 2_000}
FIXED_SECONDS = {CSV: 0.3, JSON: 0.3, XLSX: 1.5, PDF: 2.0}

# How long a report may stay pending before the read path records it failed.
# The report engine finishes deferred reports from the report-jobs queue
# (components/api.py), which delivers a message at most 3 times
# (maxReceiveCount) and hides it for 1,800 s after each delivery (visibility
# timeout: 6 x the engine's 300 s timeout). So 3 x 1,800 s = 1.5 hours after a
# report was queued the engine has finished it, recorded its failure, or
# given up on it (crashed or timed out 3 times) and the message sits in the
# dead-letter queue, where the DLQ alarm tells operators. The extra half hour
# is margin for a backlog in the queue. Scheduled reports are generated
# within one engine invocation, far inside it.
PENDING_DEADLINE = dt.timedelta(hours=2)
OVERDUE_ERROR = (
    f"the report was not generated within {PENDING_DEADLINE.total_seconds() / 3600:g} hours;"
    " request it again"
)


def estimated_render_seconds(data: ReportData, fmt: str) -> float:
    rows = data.row_count or len(data.daily)
    return FIXED_SECONDS[fmt] + rows / ROWS_PER_SECOND[fmt]


class ReportFailed(Exception):
    """Generation failed; `record` is the report as stored (status failed)."""

    def __init__(self, record: ReportRecord):
        super().__init__(record.error)
        self.record = record


def client_config(**options: Any) -> Any:
    """Short connect timeout and standard retries for every AWS client here."""
    from botocore.config import Config

    return Config(
        connect_timeout=3,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 3},
        **options,
    )


def s3_config() -> Any:
    # SigV4 presigned URLs: the only kind SSE-KMS objects can be downloaded with.
    return client_config(signature_version="s3v4")


@dataclass
class ReportService:
    reports: ReportsTable
    objects: ReportObjects
    reader: MetricsReader
    # reportRetentionDays: the bucket's lifecycle expiry, and so every report's TTL.
    retention_days: int
    clock: Callable[[], dt.datetime] = utc_now

    @classmethod
    def from_env(
        cls, dynamodb: Any, s3: Any, clock: Callable[[], dt.datetime] = utc_now
    ) -> ReportService:
        return cls(
            reports=ReportsTable(dynamodb, env.require(env.REPORTS_TABLE)),
            objects=ReportObjects(
                s3,
                env.require(env.REPORTS_BUCKET),
                env.optional(env.REPORTS_KMS_KEY_ARN),
                env.require_int(env.REPORT_URL_EXPIRY_SECONDS),
            ),
            reader=MetricsReader(dynamodb, env.require(env.METRICS_TABLE)),
            retention_days=env.require_int(env.REPORT_RETENTION_DAYS),
            clock=clock,
        )

    def load(self, record: ReportRecord) -> ReportData:
        """The report's data as of when it was requested, so deferral changes nothing."""
        return load_report_data(
            self.reader,
            record.customer_id,
            record.report_type,
            parse_period(record.period),
            parse_utc(record.created_at),
        )

    def load_or_fail(self, record: ReportRecord) -> ReportData:
        """The report's data; a failure to read it fails the report (ReportFailed)."""
        try:
            return self.load(record)
        except Exception as error:
            logger.exception(
                "reading report data failed",
                extra={"customer_id": record.customer_id, "report_id": record.report_id},
            )
            raise ReportFailed(self.fail(record, "reading the report data failed")) from error

    def generate(self, record: ReportRecord, data: ReportData | None = None) -> ReportRecord:
        """Renders, uploads and marks the report ready; raises ReportFailed otherwise."""
        step = "reading the report data"
        try:
            data = data if data is not None else self.load(record)
            with tempfile.TemporaryDirectory(prefix="report-") as directory:
                step = f"rendering the {record.format.upper()} file"
                rendered = render(data, record.format, Path(directory) / f"report.{record.format}")
                step = "storing the file"
                self.objects.upload(rendered.path, record)
            step = "recording the report"
            ready = self.reports.mark_ready(
                record, rendered.size_bytes, rendered.rows, self.clock()
            )
        except Exception as error:
            logger.exception(
                "report generation failed",
                extra={
                    "customer_id": record.customer_id,
                    "report_id": record.report_id,
                    "format": record.format,
                    "step": step,
                },
            )
            raise ReportFailed(self.fail(record, f"{step} failed")) from error
        emit_metric(REPORTS_GENERATED, 1)
        logger.info(
            "report ready",
            extra={
                "customer_id": record.customer_id,
                "report_id": record.report_id,
                "format": record.format,
                "rows": rendered.rows,
                "size_bytes": rendered.size_bytes,
            },
        )
        return ready

    def fail(self, record: ReportRecord, message: str) -> ReportRecord:
        """Records a failure (best effort: the metric is emitted even if the table is down)."""
        emit_metric(REPORT_FAILURES, 1)
        try:
            return self.reports.mark_failed(record, message, self.clock())
        except Exception:
            logger.exception("could not record the failure", extra={"report_id": record.report_id})
            return replace(record, status=FAILED, error=message)

    def settled(self, record: ReportRecord) -> ReportRecord:
        """The report as the tenant should see it: pending past the deadline is failed.

        The failure is recorded with a conditional update (only while still
        pending), so a report the engine finishes meanwhile stays ready; a
        late delivery of its job (an operator redriving the dead-letter queue)
        still generates it and turns it ready.
        """
        now = self.clock()
        if record.status != PENDING or now - parse_utc(record.created_at) < PENDING_DEADLINE:
            return record
        failed = self.reports.fail_pending(record, OVERDUE_ERROR, now)
        if failed is None:
            return self.reports.get(record.customer_id, record.report_id) or record
        emit_metric(REPORT_FAILURES, 1)
        logger.warning(
            "pending report overdue; recorded as failed",
            extra={
                "customer_id": record.customer_id,
                "report_id": record.report_id,
                "created_at": record.created_at,
            },
        )
        return failed

    def download_url(self, record: ReportRecord) -> tuple[str | None, str | None]:
        if record.status != READY:
            return None, None
        return self.objects.download_url(record, self.clock())

    def view(self, record: ReportRecord) -> dict[str, Any]:
        return record.view(*self.download_url(record))
