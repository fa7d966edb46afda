"""The report engine: scheduled reports, deferred reports and the schedules API.

One function, three triggers:

- HTTP (payload 2.0): `POST/GET /analytics/schedules`, `GET/DELETE
  /analytics/schedules/{id}`;
- EventBridge Scheduler, every 15 minutes: `run_due` finds the due schedules
  through the `due-by-next-run` index (no scan), claims each with a
  conditional update (two overlapping runs never send the same report),
  renders and stores the report, emails every recipient a download link
  through SES and advances `next_run`. A failure is recorded on the schedule
  (`last_status`, `last_error`) and retried on the next run, up to
  `MAX_ATTEMPTS` runs, without holding up the other schedules;
- SQS (the report-jobs queue): finishes the reports the reporter deferred
  (answered 202), returning `batchItemFailures` so only failed ones are retried.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import boto3

from handlers.shared import env, telemetry
from handlers.shared.http import (
    ApiError,
    Request,
    Route,
    handle,
    json_response,
    no_content,
    not_found,
)
from handlers.shared.reports.ids import new_id
from handlers.shared.reports.jobs import Job, parse_job
from handlers.shared.reports.pending import PendingSlots
from handlers.shared.reports.schedule_store import ScheduleStore
from handlers.shared.reports.schedules import (
    MAX_SCHEDULES_PER_TENANT,
    next_run,
    parse_schedule,
    schedule_item,
    schedule_view,
    spec_of,
)
from handlers.shared.reports.service import (
    ReportFailed,
    ReportService,
    client_config,
    s3_config,
)
from handlers.shared.reports.store import READY, ReportRecord, new_record
from handlers.shared.reports.times import utc_now

logger = logging.getLogger(__name__)

# A schedule that fails this many runs in a row waits for its next regular
# run instead of being retried every 15 minutes (and alarming) indefinitely.
MAX_ATTEMPTS = 4
# Stop claiming schedules when less than this is left of the invocation:
# enough to render, store and email a year-long detailed report; whatever is
# left stays due for the next run.
RESERVED_SECONDS = 60.0

telemetry.configure_logging()


class EmailFailed(Exception):
    """SES refused or failed to send to one recipient."""


class ReportEngine:
    def __init__(
        self,
        service: ReportService,
        schedules: ScheduleStore,
        ses: Any,
        sender: str,
    ):
        self.service = service
        self.schedules = schedules
        self.ses = ses
        self.sender = sender
        self.pending = PendingSlots(service.reports.client, service.reports.table_name)

    @classmethod
    def from_environment(
        cls, dynamodb: Any, s3: Any, ses: Any, clock: Callable[[], dt.datetime] = utc_now
    ) -> ReportEngine:
        return cls(
            ReportService.from_env(dynamodb, s3, clock),
            ScheduleStore(dynamodb, env.require(env.SCHEDULES_TABLE)),
            ses,
            env.require(env.REPORT_SENDER),
        )

    # Schedules API

    @property
    def routes(self) -> dict[str, Route]:
        return {
            "POST /analytics/schedules": self.create_schedule,
            "GET /analytics/schedules": self.list_schedules,
            "GET /analytics/schedules/{id}": self.get_schedule,
            "DELETE /analytics/schedules/{id}": self.delete_schedule,
        }

    def create_schedule(self, request: Request) -> dict[str, Any]:
        spec = parse_schedule(request.json_body())
        now = self.service.clock()
        item = schedule_item(request.tenant, new_id(now), spec, now, created_by=request.created_by)
        # The cap is checked and the schedule stored in one transaction.
        if not self.schedules.create(item, MAX_SCHEDULES_PER_TENANT):
            raise ApiError(
                409,
                "schedule_limit_reached",
                f"a tenant can have at most {MAX_SCHEDULES_PER_TENANT} schedules;"
                " delete one before creating another",
            )
        return json_response(201, schedule_view(item), request.origin)

    def list_schedules(self, request: Request) -> dict[str, Any]:
        items = self.schedules.list(request.tenant)
        return json_response(
            200, {"schedules": [schedule_view(item) for item in items]}, request.origin
        )

    def get_schedule(self, request: Request) -> dict[str, Any]:
        item = self.schedules.get(request.tenant, request.path_parameters.get("id", ""))
        if item is None:
            raise not_found("schedule")
        return json_response(200, schedule_view(item), request.origin)

    def delete_schedule(self, request: Request) -> dict[str, Any]:
        if not self.schedules.delete(request.tenant, request.path_parameters.get("id", "")):
            raise not_found("schedule")
        return no_content(request.origin)

    # Scheduled runs

    def run_due(
        self, now: dt.datetime | None = None, deadline: Callable[[], float] | None = None
    ) -> dict[str, int]:
        """Sends every due schedule's report; `deadline()` gives the seconds left.

        Returns counts: due, sent, failed, skipped (claimed by another run or
        changed since the index was read), deferred (left for the next run).
        """
        now = now or self.service.clock()
        run_id = uuid.uuid4().hex
        summary = {"due": 0, "sent": 0, "failed": 0, "skipped": 0, "deferred": 0}
        for item in self.schedules.due(now):
            summary["due"] += 1
            if deadline is not None and deadline() < RESERVED_SECONDS:
                summary["deferred"] += 1
                continue
            if not self.schedules.claim(item, run_id, now):
                summary["skipped"] += 1
                continue
            summary["sent" if self._run_schedule(item, run_id, now) else "failed"] += 1
        logger.info("scheduled run finished", extra={"run_id": run_id, **summary})
        return summary

    def _run_schedule(self, item: Mapping[str, Any], run_id: str, now: dt.datetime) -> bool:
        """Generates and emails one claimed schedule's report; records the outcome."""
        spec = spec_of(item)
        record = new_record(
            item["customer_id"],
            new_id(now),
            spec.report_type,
            spec.format,
            spec.period,
            now,
            schedule_id=item["schedule_id"],
            retention_days=self.service.retention_days,
            # Whoever set up the schedule asked for its reports.
            created_by=item.get("created_by"),
        )
        try:
            self.service.reports.create(record)
            ready = self.service.generate(record)
            self._email(ready, spec.recipients, now)
        except ReportFailed as error:
            self._record_failure(item, run_id, str(error), now)
            return False
        except EmailFailed as error:
            telemetry.emit_metric(telemetry.REPORT_FAILURES, 1)  # generated but not delivered
            self._record_failure(item, run_id, str(error), now)
            return False
        except Exception:
            logger.exception("scheduled report failed", extra={"schedule_id": item["schedule_id"]})
            telemetry.emit_metric(telemetry.REPORT_FAILURES, 1)
            self._record_failure(item, run_id, "the scheduled run failed unexpectedly", now)
            return False
        if not self.schedules.complete(item, run_id, next_run(spec, now), ready.report_id, now):
            # Deleted meanwhile, or the claim expired: the report went out all the same.
            logger.warning("schedule claim lost", extra={"schedule_id": item["schedule_id"]})
        return True

    def _record_failure(
        self, item: Mapping[str, Any], run_id: str, error: str, now: dt.datetime
    ) -> None:
        attempts = int(item.get("consecutive_failures", 0)) + 1
        give_up = attempts >= MAX_ATTEMPTS
        logger.warning(
            "scheduled report failed",
            extra={
                "customer_id": item["customer_id"],
                "schedule_id": item["schedule_id"],
                "error": error,
                "attempts": attempts,
            },
        )
        self.schedules.fail(
            item, run_id, error, now, next_run(spec_of(item), now) if give_up else None
        )

    def _email(self, report: ReportRecord, recipients: Iterable[str], now: dt.datetime) -> None:
        """One message per recipient, so no one sees the others' addresses."""
        url, expires_at = self.service.objects.download_url(report, now)
        subject, text, markup = email_content(report, url, expires_at)
        for recipient in recipients:
            try:
                self.ses.send_email(
                    Source=self.sender,
                    Destination={"ToAddresses": [recipient]},
                    Message={
                        "Subject": {"Data": subject, "Charset": "UTF-8"},
                        "Body": {
                            "Text": {"Data": text, "Charset": "UTF-8"},
                            "Html": {"Data": markup, "Charset": "UTF-8"},
                        },
                    },
                )
            except Exception as error:
                code = getattr(error, "response", {}).get("Error", {}).get("Code")
                raise EmailFailed(
                    f"sending the email to {recipient} failed: {code or type(error).__name__}"
                ) from error

    # Deferred reports

    def finish_jobs(self, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Renders queued reports; failed ones are returned for SQS to redeliver."""
        failures = []
        for message in records:
            job = parse_job(str(message.get("body", "")))
            if job is None:
                logger.error("dropping a malformed report job", extra={"body": message.get("body")})
                continue
            try:
                self._finish(job)
            except Exception:
                logger.exception(
                    "deferred report failed",
                    extra={"customer_id": job.tenant, "report_id": job.report_id},
                )
                failures.append({"itemIdentifier": message.get("messageId")})
        return {"batchItemFailures": failures}

    def _finish(self, job: Job) -> None:
        record = self.service.reports.get(job.tenant, job.report_id)
        try:
            if record is not None and record.status != READY:
                self.service.generate(record)
        finally:
            # Ready or failed (generate records either), or gone: the tenant's
            # pending slot is free again. A failed job is still redelivered.
            if job.slot is not None:
                self.pending.release(job.tenant, job.slot, job.report_id)


def email_content(report: ReportRecord, url: str, expires_at: str) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a scheduled report's email."""
    subject = f"SecureBase {report.report_type} report for {report.customer_id} ({report.period})"
    size_kb = max(1, round((report.size_bytes or 0) / 1024))
    text = (
        f"Your scheduled SecureBase analytics report is ready.\n\n"
        f"Tenant: {report.customer_id}\n"
        f"Report: {report.report_type}, period {report.period}\n"
        f"File: {report.filename} ({size_kb} KB)\n\n"
        f"Download it (the link works until {expires_at}):\n{url}\n\n"
        f"Later, GET /analytics/reports/{report.report_id} returns a fresh link.\n"
    )
    markup = (
        "<p>Your scheduled SecureBase analytics report is ready.</p>"
        f"<p>Tenant: {html.escape(report.customer_id)}<br>"
        f"Report: {html.escape(report.report_type)}, period {html.escape(report.period)}<br>"
        f"File: {html.escape(report.filename)} ({size_kb} KB)</p>"
        f'<p><a href="{html.escape(url)}">Download the report</a>'
        f" (the link works until {html.escape(expires_at)}).</p>"
        f"<p>Later, GET /analytics/reports/{html.escape(report.report_id)}"
        " returns a fresh link.</p>"
    )
    return subject, text, markup


_engine: ReportEngine | None = None


def _report_engine() -> ReportEngine:
    """One set of clients per container, created on first use (not at import)."""
    global _engine
    if _engine is None:
        _engine = ReportEngine.from_environment(
            boto3.client("dynamodb", config=client_config()),
            boto3.client("s3", config=s3_config()),
            boto3.client("ses", config=client_config()),
        )
    return _engine


def run_due(now: dt.datetime | None = None) -> dict[str, int]:
    """One scheduled run in-process (tests, the local stack)."""
    return _report_engine().run_due(now)


def _is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and all(
        isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs" for record in records
    )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    engine = _report_engine()
    if _is_sqs_event(event):
        return engine.finish_jobs(event["Records"])
    if "routeKey" in event and "requestContext" in event:
        return handle(event, engine.routes)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return engine.run_due(deadline=(lambda: remaining() / 1000) if remaining else None)
