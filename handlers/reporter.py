"""The reports API: POST /analytics/reports, GET /analytics/reports, GET /analytics/reports/{id}.

POST renders the report in this invocation when its estimated rendering time
fits the budget (the API's integration timeout is about 29 s) and answers 201
with a download URL. Larger reports are stored as `pending`, queued for the
report engine and answered 202; `GET /analytics/reports/{id}` shows them
`ready` once the engine has finished. A report still pending after
`PENDING_DEADLINE` (2 hours: the report-jobs queue's redelivery budget plus
margin; see handlers.shared.reports.service) is one the engine gave up on:
reading it records and shows it `failed`, so the tenant can request it again.
An `Idempotency-Key` header makes a retried POST return the same report
instead of creating another.

A tenant may have at most REPORT_MAX_PENDING_PER_TENANT (default 5) deferred
reports pending at once (handlers.shared.reports.pending: slots taken with
conditional writes, so the cap holds under concurrency); beyond that POST
answers 429 `too_many_pending_reports` with `Retry-After` and stores nothing,
so one tenant cannot fill the report engine's queue. Every report records
who requested it (`created_by`: the token's `sub`).

Reports of other tenants are indistinguishable from unknown ids (404).
Rendering libraries are imported only for the formats that need them, and the
AWS clients on first use, so a cold start costs little more than boto3.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from handlers.shared import env, telemetry
from handlers.shared.http import (
    ApiError,
    Request,
    Route,
    bad_request,
    handle,
    json_response,
    not_found,
)
from handlers.shared.reports.idempotency import IdempotencyRecords, fingerprint, validate_key
from handlers.shared.reports.ids import new_id
from handlers.shared.reports.jobs import Job, ReportJobs
from handlers.shared.reports.model import (
    parse_format,
    parse_period_label,
    parse_report_type,
    reject_nulls,
)
from handlers.shared.reports.pending import (
    DEFAULT_MAX_PENDING,
    RETRY_AFTER_SECONDS,
    PendingSlots,
)
from handlers.shared.reports.service import (
    PENDING_DEADLINE,
    ReportFailed,
    ReportService,
    client_config,
    estimated_render_seconds,
    s3_config,
)
from handlers.shared.reports.store import (
    FAILED,
    PENDING,
    ReportRecord,
    new_record,
    page_size,
    page_start,
)
from handlers.shared.reports.times import parse_utc, utc_now

REQUEST_FIELDS = ("type", "format", "period")
# Rendering budget inside the API's ~29 s: leaves room for reading, uploading
# and a cold start. REPORT_SYNC_BUDGET_SECONDS may lower it (the local stack
# does, so that large reports take the deferred path there too), never raise it.
SYNC_BUDGET_SECONDS = 20.0

telemetry.configure_logging()


def parse_report_request(body: Mapping[str, Any]) -> dict[str, str]:
    """The normalised `{type, format, period}`; `customer_id` is ignored, as everywhere."""
    unknown = sorted(set(body) - {*REQUEST_FIELDS, "customer_id"})
    if unknown:
        raise bad_request("body", "an object with fields type, format and period", unknown[0])
    reject_nulls(body, REQUEST_FIELDS)
    return {
        "type": parse_report_type(body.get("type")),
        "format": parse_format(body.get("format")),
        "period": parse_period_label(body.get("period")),
    }


def sync_budget_from_env() -> float:
    """REPORT_SYNC_BUDGET_SECONDS: 0 (defer every report) to 20 seconds; 20 when unset."""
    raw = env.optional(env.REPORT_SYNC_BUDGET_SECONDS)
    if raw is None:
        return SYNC_BUDGET_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= SYNC_BUDGET_SECONDS:  # NaN fails too
        raise env.MissingEnvironment(
            f"environment variable {env.REPORT_SYNC_BUDGET_SECONDS} must be a number of"
            f" seconds from 0 to {SYNC_BUDGET_SECONDS:g}; got {raw!r}"
        )
    return seconds


def report_expired(record: ReportRecord) -> ApiError:
    """410: the report existed, but its file is gone with the retention period."""
    return ApiError(
        410,
        "report_expired",
        f"report {record.report_id} has expired: reports are kept for a limited time"
        " (reportRetentionDays); request a new one",
    )


def max_pending_from_env() -> int:
    """REPORT_MAX_PENDING_PER_TENANT: a positive integer; 5 when unset."""
    raw = env.optional(env.REPORT_MAX_PENDING_PER_TENANT)
    if raw is None:
        return DEFAULT_MAX_PENDING
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise env.MissingEnvironment(
            f"environment variable {env.REPORT_MAX_PENDING_PER_TENANT} must be a positive"
            f" integer; got {raw!r}"
        )
    return int(raw)


class ReporterApi:
    def __init__(
        self,
        service: ReportService,
        idempotency: IdempotencyRecords,
        jobs: ReportJobs,
        pending: PendingSlots,
        sync_budget_seconds: float = SYNC_BUDGET_SECONDS,
        max_pending: int = DEFAULT_MAX_PENDING,
    ):
        self.service = service
        self.idempotency = idempotency
        self.jobs = jobs
        self.pending = pending
        self.sync_budget_seconds = sync_budget_seconds
        self.max_pending = max_pending

    @classmethod
    def from_environment(
        cls,
        dynamodb: Any,
        s3: Any,
        sqs_factory: Callable[[], Any],
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> ReporterApi:
        return cls(
            ReportService.from_env(dynamodb, s3, clock),
            IdempotencyRecords(dynamodb, env.require(env.CACHE_TABLE)),
            ReportJobs(env.require(env.REPORT_JOBS_QUEUE_URL), sqs_factory),
            PendingSlots(dynamodb, env.require(env.REPORTS_TABLE)),
            sync_budget_from_env(),
            max_pending_from_env(),
        )

    @property
    def routes(self) -> dict[str, Route]:
        return {
            "POST /analytics/reports": self.create,
            "GET /analytics/reports": self.list,
            "GET /analytics/reports/{id}": self.get,
        }

    def create(self, request: Request) -> dict[str, Any]:
        fields = parse_report_request(request.json_body())
        key = validate_key(request.header("Idempotency-Key"))
        now = self.service.clock()
        report_id = new_id(now)
        if key is not None:
            claimed_id = self.idempotency.claim(
                request.tenant, key, fingerprint(fields), report_id, now
            )
            if claimed_id != report_id:
                existing = self.service.reports.get(request.tenant, claimed_id)
                if existing is not None:
                    return self._answer(self.service.settled(existing), request)
                report_id = claimed_id  # the first attempt stopped before creating it
        record = new_record(
            request.tenant,
            report_id,
            fields["type"],
            fields["format"],
            fields["period"],
            now,
            retention_days=self.service.retention_days,
            created_by=request.created_by,
        )
        if not self.service.reports.create(record):
            # A concurrent retry with the same key created it a moment ago.
            existing = self.service.reports.get(request.tenant, report_id)
            return self._answer(existing or record, request)
        try:
            data = self.service.load_or_fail(record)
            if estimated_render_seconds(data, record.format) > self.sync_budget_seconds:
                return self._answer(self._defer(record), request)
            return self._answer(self.service.generate(record, data), request)
        except ReportFailed as failure:
            return self._answer(failure.record, request)

    def _defer(self, record: ReportRecord) -> ReportRecord:
        """Queues the report for the engine, holding one of the tenant's pending slots.

        Without a free slot the report is removed again and the answer is 429.
        """
        tenant, report_id = record.customer_id, record.report_id
        deadline = parse_utc(record.created_at) + PENDING_DEADLINE
        slot = self.pending.claim(
            tenant, report_id, self.max_pending, deadline, self.service.clock()
        )
        if slot is None:
            self.service.reports.delete_pending(record)
            raise ApiError(
                429,
                "too_many_pending_reports",
                f"a tenant can have at most {self.max_pending} large reports in preparation;"
                " retry when one of them is ready",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            self.jobs.send(Job(tenant, report_id, slot))
        except Exception as error:
            self.pending.release(tenant, slot, report_id)
            raise ReportFailed(
                self.service.fail(record, "queueing the report for generation failed")
            ) from error
        return record

    def _answer(self, record: ReportRecord, request: Request) -> dict[str, Any]:
        """201 ready, 202 still pending, 500 failed (the body still names the report)."""
        view = self.service.view(record)
        if record.status == FAILED:
            return json_response(
                500,
                {
                    **view,
                    "error": f"report {record.report_id} could not be generated: {record.error}",
                    "code": "report_failed",
                },
                request.origin,
            )
        return json_response(202 if record.status == PENDING else 201, view, request.origin)

    def list(self, request: Request) -> dict[str, Any]:
        records, cursor = self.service.reports.page(
            request.tenant,
            page_size(request.query.get("limit")),
            page_start(request.query.get("next")),
            self.service.clock(),
        )
        views = [self.service.view(self.service.settled(record)) for record in records]
        return json_response(200, {"reports": views, "next": cursor}, request.origin)

    def get(self, request: Request) -> dict[str, Any]:
        record = self.service.reports.get(request.tenant, request.path_parameters.get("id", ""))
        if record is None:
            raise not_found("report")
        if record.is_expired(self.service.clock()):
            raise report_expired(record)
        return json_response(200, self.service.view(self.service.settled(record)), request.origin)


_api: ReporterApi | None = None


def _reporter_api() -> ReporterApi:
    """One set of clients per container, created on first use (not at import)."""
    global _api
    if _api is None:
        _api = ReporterApi.from_environment(
            boto3.client("dynamodb", config=client_config()),
            boto3.client("s3", config=s3_config()),
            lambda: boto3.client("sqs", config=client_config()),
            # Looked up here, not bound as a default, so a test can fix the clock.
            clock=utc_now,
        )
    return _api


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, _reporter_api().routes)
