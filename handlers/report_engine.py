"""The report engine: scheduled reports, deferred reports and the schedules API.

One function, three triggers:

- HTTP (payload 2.0): `POST/GET /analytics/schedules`, `GET/DELETE
  /analytics/schedules/{id}`;
- EventBridge Scheduler, every 15 minutes: `run_due` finds the due schedules
  through the `due-by-next-run` index (no scan), claims each with a
  conditional update (two overlapping runs never send the same report),
  renders and stores the report, emails every confirmed recipient a download
  link through SES and advances `next_run`. A failure is recorded on the
  schedule (`last_status`, `last_error`) and retried on the next run, up to
  `MAX_ATTEMPTS` runs, without holding up the other schedules; the retry
  sends the same report, and only to the recipients that did not get it
  (one delivery record per recipient and run). A run that reaches the
  tenant's emails per UTC day sends nothing more, records `quota_exceeded`
  and waits for its next regular run;
- SQS (the report-jobs queue): finishes the reports the reporter deferred
  (answered 202), returning `batchItemFailures` so only failed ones are retried.

Who receives email (handlers.shared.mail): the tenant's own domains
directly; any other address gets one confirmation email when a schedule
names it, and reports only once it has followed the link; suppressed
recipients (unsubscribed, bounced, complained) get nothing.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
from handlers.shared.mail.consent import (
    CONFIRMED,
    PENDING,
    own_domains,
    recipient_state,
)
from handlers.shared.mail.customers import CustomerDirectory
from handlers.shared.mail.links import LinkSigner
from handlers.shared.mail.mailer import REPORT, Content, EmailFailed, Mailer, QuotaExceeded
from handlers.shared.mail.recipients import DELIVERED, FAILED, RecipientStore
from handlers.shared.reports.ids import new_id
from handlers.shared.reports.jobs import Job, parse_job
from handlers.shared.reports.pending import PendingSlots
from handlers.shared.reports.schedule_store import ScheduleStore
from handlers.shared.reports.schedules import (
    MAX_SCHEDULES_PER_TENANT,
    ScheduleSpec,
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

DEFAULT_EMAILS_PER_DAY = 200
QUOTA_EXCEEDED = "quota_exceeded"
NO_CONFIRMED_RECIPIENTS = "no_confirmed_recipients"

telemetry.configure_logging()


@dataclass(frozen=True)
class Audience:
    """A tenant's name, own domains and stored recipient records: each address's state."""

    tenant_name: str
    domains: frozenset[str]
    records: Mapping[str, Mapping[str, Any]]

    def state(self, address: str) -> str:
        return recipient_state(address, self.domains, self.records.get(address.lower()))

    def states(self, addresses: Iterable[str]) -> dict[str, str]:
        return {address: self.state(address) for address in addresses}

    def awaits_invitation(self, address: str, now: dt.datetime) -> bool:
        """Pending, with no live confirmation link out."""
        record = self.records.get(address.lower())
        return self.state(address) == PENDING and (
            record is None or int(record.get("confirm_expires", 0)) <= now.timestamp()
        )


def allowed_domains_from_env() -> tuple[str, ...]:
    raw = env.optional(env.REPORT_RECIPIENT_DOMAINS, "") or ""
    return tuple(domain.strip().lower() for domain in raw.split(",") if domain.strip())


class ReportEngine:
    def __init__(
        self,
        service: ReportService,
        schedules: ScheduleStore,
        mailer: Mailer,
        recipients: RecipientStore,
        customers: CustomerDirectory,
        allowed_domains: Sequence[str] = (),
    ):
        self.service = service
        self.schedules = schedules
        self.mailer = mailer
        self.recipients = recipients
        self.customers = customers
        self.allowed_domains = tuple(allowed_domains)
        self.pending = PendingSlots(service.reports.client, service.reports.table_name)

    @classmethod
    def from_environment(
        cls,
        dynamodb: Any,
        s3: Any,
        ses: Any,
        kms: Any,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> ReportEngine:
        recipients = RecipientStore(dynamodb, env.require(env.REPORT_EMAILS_TABLE))
        mailer = Mailer(
            ses,
            env.require(env.REPORT_SENDER),
            env.require(env.SES_CONFIGURATION_SET),
            LinkSigner(kms, env.require(env.EMAIL_LINK_KEY_ID)),
            recipients,
            env.require(env.EMAIL_LINKS_BASE_URL),
            int(env.optional(env.REPORT_EMAILS_PER_DAY) or DEFAULT_EMAILS_PER_DAY),
            clock,
        )
        return cls(
            ReportService.from_env(dynamodb, s3, clock),
            ScheduleStore(dynamodb, env.require(env.SCHEDULES_TABLE)),
            mailer,
            recipients,
            CustomerDirectory(dynamodb, env.require(env.CUSTOMERS_TABLE)),
            allowed_domains_from_env(),
        )

    def audience(self, tenant: str) -> Audience:
        customer = self.customers.get(tenant)
        return Audience(
            tenant_name=str((customer or {}).get("name") or tenant),
            domains=own_domains(customer, self.allowed_domains),
            records=self.recipients.recipients(tenant),
        )

    def invite(self, tenant: str, addresses: Iterable[str], audience: Audience) -> None:
        """Sends the confirmation email to each address that awaits one; stops at the
        tenant's daily quota (the next scheduled run asks again)."""
        now = self.service.clock()
        for address in addresses:
            if not audience.awaits_invitation(address, now):
                continue
            try:
                self.mailer.invite(tenant, address, audience.tenant_name)
            except QuotaExceeded:
                telemetry.emit_metric(telemetry.EMAIL_QUOTA_EXCEEDED, 1)
                logger.warning("email quota reached", extra={"customer_id": tenant})
                return
            except EmailFailed as error:
                logger.warning(
                    "confirmation email failed", extra={"customer_id": tenant, "error": str(error)}
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
        # Inviting leaves every state as it was: an invited address stays pending.
        audience = self.audience(request.tenant)
        self.invite(request.tenant, spec.recipients, audience)
        return json_response(
            201, schedule_view(item, audience.states(spec.recipients)), request.origin
        )

    def list_schedules(self, request: Request) -> dict[str, Any]:
        items = self.schedules.list(request.tenant)
        audience = self.audience(request.tenant)
        views = [schedule_view(item, audience.states(item["recipients"])) for item in items]
        return json_response(200, {"schedules": views}, request.origin)

    def get_schedule(self, request: Request) -> dict[str, Any]:
        item = self.schedules.get(request.tenant, request.path_parameters.get("id", ""))
        if item is None:
            raise not_found("schedule")
        audience = self.audience(request.tenant)
        return json_response(
            200, schedule_view(item, audience.states(item["recipients"])), request.origin
        )

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
        """Generates one claimed schedule's report and emails it to every confirmed
        recipient that has not had this run's copy; records the outcome."""
        spec = spec_of(item)
        tenant = item["customer_id"]
        try:
            audience = self.audience(tenant)
            self.invite(tenant, spec.recipients, audience)
            confirmed = [a for a in spec.recipients if audience.state(a) == CONFIRMED]
            if not confirmed:
                self.schedules.complete(
                    item, run_id, next_run(spec, now), None, now, NO_CONFIRMED_RECIPIENTS
                )
                return True
            report = self._run_report(item, spec, now)
            failures, quota_exceeded = self._deliver(item, report, confirmed, now)
        except ReportFailed as error:
            self._record_failure(item, run_id, str(error), now)
            return False
        except Exception:
            logger.exception("scheduled report failed", extra={"schedule_id": item["schedule_id"]})
            telemetry.emit_metric(telemetry.REPORT_FAILURES, 1)
            self._record_failure(item, run_id, "the scheduled run failed unexpectedly", now)
            return False
        if quota_exceeded:
            telemetry.emit_metric(telemetry.EMAIL_QUOTA_EXCEEDED, 1)
            logger.warning(
                "email quota reached",
                extra={"customer_id": tenant, "schedule_id": item["schedule_id"]},
            )
            self.schedules.fail(
                item,
                run_id,
                f"the tenant's {self.mailer.emails_per_day} emails for the UTC day are sent;"
                " this run sent nothing more",
                now,
                next_run=next_run(spec, now),
                status=QUOTA_EXCEEDED,
            )
            return False
        if failures:
            telemetry.emit_metric(telemetry.REPORT_FAILURES, 1)  # generated but not delivered
            self._record_failure(item, run_id, "; ".join(failures), now, report.report_id)
            return False
        if not self.schedules.complete(item, run_id, next_run(spec, now), report.report_id, now):
            # Deleted meanwhile, or the claim expired: the report went out all the same.
            logger.warning("schedule claim lost", extra={"schedule_id": item["schedule_id"]})
        return True

    def _run_report(
        self, item: Mapping[str, Any], spec: ScheduleSpec, now: dt.datetime
    ) -> ReportRecord:
        """The report of this run: the one an earlier attempt generated, or a new one."""
        if item.get("run_report_for") == item["next_run"] and item.get("run_report_id"):
            earlier = self.service.reports.get(item["customer_id"], str(item["run_report_id"]))
            if earlier is not None and earlier.status == READY:
                return earlier
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
        self.service.reports.create(record)
        return self.service.generate(record)

    def _deliver(
        self,
        item: Mapping[str, Any],
        report: ReportRecord,
        recipients: Iterable[str],
        now: dt.datetime,
    ) -> tuple[list[str], bool]:
        """One message per recipient (no one sees the others' addresses), each claimed
        first so that no recipient gets two copies of one run. Returns the failures
        and whether the tenant's daily quota stopped the run."""
        tenant, schedule_id, run = item["customer_id"], item["schedule_id"], item["next_run"]
        url, expires_at = self.service.objects.download_url(report, now)
        content = Content(*email_content(report, url, expires_at))
        failures = []
        for address in recipients:
            if not self.recipients.start_delivery(
                tenant, schedule_id, run, address, report.report_id, now
            ):
                continue  # this run's copy went out already
            try:
                self.mailer.send(tenant, address, content, REPORT)
            except QuotaExceeded:
                self.recipients.abandon_delivery(tenant, schedule_id, run, address)
                return failures, True
            except EmailFailed as error:
                self.recipients.finish_delivery(tenant, schedule_id, run, address, FAILED)
                failures.append(str(error))
                continue
            self.recipients.finish_delivery(tenant, schedule_id, run, address, DELIVERED)
        return failures, False

    def _record_failure(
        self,
        item: Mapping[str, Any],
        run_id: str,
        error: str,
        now: dt.datetime,
        report_id: str | None = None,
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
            item,
            run_id,
            error,
            now,
            next_run(spec_of(item), now) if give_up else None,
            report_id=report_id,
        )

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
            boto3.client("kms", config=client_config()),
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
