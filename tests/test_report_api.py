import csv
import datetime as dt
import io
import json
import threading
from decimal import Decimal

import pytest
import requests
from openpyxl import load_workbook
from pypdf import PdfReader

from handlers import report_engine, reporter
from handlers.shared import analytics
from handlers.shared.env import MissingEnvironment
from handlers.shared.http import handle
from handlers.shared.periods import parse_period
from handlers.shared.reports.ids import id_time, new_id
from handlers.shared.reports.model import CONTENT_TYPES
from handlers.shared.reports.service import OVERDUE_ERROR, PENDING_DEADLINE
from handlers.shared.reports.store import (
    MULTIPART_THRESHOLD_BYTES,
    ReportObjects,
    expiry_time,
    new_record,
)
from tests.pulumi_program import committed_deployment
from tests.test_report_support import (
    BUCKET,
    NOW,
    ORIGIN,
    api_event,
    body_of,
    ids,
    moto_stack,
    seed_tenant,
)

CREATE = "POST /analytics/reports"
LIST = "GET /analytics/reports"
GET = "GET /analytics/reports/{id}"


class Clock:
    """A settable clock: every report created a second after the previous one."""

    def __init__(self, now: dt.datetime = NOW):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def stack(monkeypatch):
    with moto_stack(monkeypatch) as moto:
        seed_tenant(moto, "acme")
        yield moto


@pytest.fixture
def api(stack, clock):
    return reporter.ReporterApi.from_environment(
        stack.dynamodb, stack.s3, lambda: stack.sqs, clock=clock
    )


def call(api, route_key, tenant="acme", **kwargs):
    return handle(api_event(route_key, tenant, **kwargs), api.routes)


def stored_reports(stack):
    return stack.dynamodb.scan(TableName=stack.tables["reports"])["Items"]


@pytest.mark.parametrize(
    ("requested", "fmt"),
    [("csv", "csv"), ("json", "json"), ("pdf", "pdf"), ("xlsx", "xlsx"), ("excel", "xlsx")],
)
def test_create_renders_uploads_and_answers_201(api, stack, requested, fmt):
    response = call(api, CREATE, body={"type": "summary", "format": requested, "period": "30d"})

    assert response["statusCode"] == 201
    assert response["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    report = body_of(response)
    assert report["status"] == "ready"
    assert report["format"] == fmt
    assert report["filename"] == f"securebase-acme-summary-30d-2026-11-23.{fmt}"
    assert report["expires_at"] == "2026-11-23T14:20:09Z"  # REPORT_URL_EXPIRY_SECONDS=900
    assert report["created_at"] == "2026-11-23T14:05:09Z"
    assert report["url"].startswith(f"https://{BUCKET}.s3.amazonaws.com/acme/{report['id']}.{fmt}?")
    assert "X-Amz-Expires=900" in report["url"]

    stored = stack.get_object(f"acme/{report['id']}.{fmt}")
    content = stored["Body"].read()
    assert report["size_bytes"] == len(content) == stored["ContentLength"]
    assert stored["ContentType"] == CONTENT_TYPES[fmt]
    assert stored["ContentDisposition"] == f'attachment; filename="{report["filename"]}"'
    assert stored["ServerSideEncryption"] == "AES256"
    assert requests.get(report["url"], timeout=5).content == content  # the URL downloads it

    # The headline figures are the analytics API's for the same moment.
    costs = analytics.costs_body("acme", parse_period("30d"), "category", [], NOW)
    assert costs["currency"] == "USD"
    total = "52.50"  # 30 days x (1.25 + 0.50)
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
        assert ["cost", "total", total, "USD", "", ""] in rows
        # 30435 calls against the previous 30 days cut at 14:05: days 31-59 whole
        # (30305) plus 14/24 of day 30's 1030 calls, 30906 in all: -1.5%.
        assert ["usage", "api_calls", "30435", "calls", "-1.5", "complete"] in rows
    elif fmt == "json":
        document = json.loads(content)
        assert (document["customer_id"], document["period"]) == ("acme", "30d")
        assert document["generated_at"] == "2026-11-23T14:05:09Z"
        assert document["costs"]["total"] == float(total)
        assert document["usage"]["api_calls"]["total"] == 30435
    elif fmt == "pdf":
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
        assert "acme" in text and total in text and "30,435" in text
    else:
        sheet = load_workbook(io.BytesIO(content))["Summary"]
        rows = list(sheet.iter_rows(values_only=True))
        assert ("Cost", "Total", 52.5, "USD", None, None) in rows
        assert ("Usage", "API calls", 30435, "calls", -1.5, "complete") in rows


def test_detailed_report_has_a_row_per_day_metric_and_service(api, stack):
    report = body_of(call(api, CREATE, body={"type": "detailed", "format": "csv", "period": "1w"}))

    rows = list(
        csv.reader(
            io.StringIO(stack.get_object(f"acme/{report['id']}.csv")["Body"].read().decode())
        )
    )
    assert report["rows"] == len(rows) - 1 == 7 * (4 + 2)
    assert rows[1] == ["2026-11-17", "api_calls", "platform", "1006", "calls", "complete"]
    assert rows[5] == ["2026-11-17", "cost", "AWS Lambda", "1.25", "USD", "complete"]
    assert rows[6] == [
        "2026-11-17",
        "cost",
        "Amazon Simple Storage Service",
        "0.5",
        "USD",
        "complete",
    ]
    assert rows[-1][0] == "2026-11-23" and rows[-1][-1] == "partial"  # today


def test_list_is_newest_first_and_paginated(api, clock):
    created = []
    for fmt in ("csv", "json", "csv"):
        created.append(body_of(call(api, CREATE, body={"format": fmt}))["id"])
        clock.tick()

    first = body_of(call(api, LIST, query={"limit": "2"}))
    assert ids(first["reports"]) == created[::-1][:2]
    assert first["reports"][0]["url"] and first["reports"][0]["status"] == "ready"
    assert first["next"] == created[1]  # the id of the page's last report
    second = body_of(call(api, LIST, query={"limit": "2", "next": first["next"]}))
    assert ids(second["reports"]) == created[:1]
    assert second["next"] is None
    assert ids(body_of(call(api, LIST))["reports"]) == created[::-1]  # default page of 20


def test_any_id_is_a_position_in_the_callers_list(api, clock):
    created = []
    for _ in range(3):
        created.append(body_of(call(api, CREATE, body={"format": "csv"}))["id"])
        clock.tick()
    # An id between the second and third report: not a report, still a position.
    between = new_id(id_time(created[2]) - dt.timedelta(milliseconds=1))
    page = body_of(call(api, LIST, query={"next": between}))
    assert ids(page["reports"]) == created[1::-1]
    assert body_of(call(api, LIST, query={"next": "0" * 26})) == {"reports": [], "next": None}


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "01m84g0sty", "7" + "Z" * 25 + "\n"])
def test_a_next_that_is_not_an_id_is_a_400(api, cursor):
    response = call(api, LIST, query={"next": cursor})
    assert response["statusCode"] == 400
    assert body_of(response) == {
        "error": f"next must be a report id: the `next` value of the previous page; got {cursor!r}",
        "code": "invalid_next",
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"format": "csv", "period": None}, "invalid_body"),
        ({"format": "csv", "period": ""}, "invalid_period"),
        ({"format": "csv", "type": None}, "invalid_body"),
        ({"format": None}, "invalid_body"),
    ],
)
def test_a_null_or_empty_field_is_a_400_not_the_default(api, body, code):
    response = call(api, CREATE, body=body)
    assert (response["statusCode"], body_of(response)["code"]) == (400, code)
    assert body_of(call(api, LIST)) == {"reports": [], "next": None}


def test_an_empty_limit_is_a_400_not_the_default(api):
    response = call(api, LIST, query={"limit": ""})
    assert (response["statusCode"], body_of(response)["code"]) == (400, "invalid_limit")


def test_get_returns_the_report_with_a_fresh_url(api, clock):
    created = body_of(call(api, CREATE, body={"format": "json"}))
    clock.tick(600)

    response = call(api, GET, path_parameters={"id": created["id"]})

    assert response["statusCode"] == 200
    report = body_of(response)
    assert {k: v for k, v in report.items() if k not in ("url", "expires_at")} == {
        k: v for k, v in created.items() if k not in ("url", "expires_at")
    }
    # Signed again for this request: valid for the full expiry from now.
    assert report["expires_at"] == "2026-11-23T14:30:09Z"
    assert "X-Amz-Expires=900" in report["url"]


def test_a_report_record_expires_at_the_midnight_its_file_does(api, stack):
    report = body_of(call(api, CREATE, body={"format": "csv"}))

    (item,) = stored_reports(stack)
    # Created 2026-11-23 14:05:09; S3 expires the file 90 days later rounded up
    # to midnight UTC: 2027-02-21 14:05:09 -> 2027-02-22 00:00:00.
    expiry = dt.datetime(2027, 2, 22, tzinfo=dt.UTC)
    assert item["ttl"] == {"N": str(int(expiry.timestamp()))}
    assert item["report_id"] == {"S": report["id"]}


@pytest.mark.parametrize(
    ("created", "expires"),
    [
        (
            dt.datetime(2026, 11, 23, 14, 5, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 25, tzinfo=dt.UTC),
        ),
        (
            dt.datetime(2026, 11, 23, 0, 0, 0, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
        ),
        (
            dt.datetime(2026, 11, 23, 23, 59, 59, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 25, tzinfo=dt.UTC),
        ),
        (
            dt.datetime(2026, 11, 23, 20, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            dt.datetime(2026, 11, 26, tzinfo=dt.UTC),  # 01:00 UTC on the 24th
        ),
    ],
)
def test_expiry_follows_s3s_lifecycle_rounding(created, expires):
    assert expiry_time(created, 1) == expires


def test_an_expired_report_leaves_the_list_and_answers_410(api, stack, clock):
    old = body_of(call(api, CREATE, body={"format": "csv"}))
    clock.now = dt.datetime(2026, 12, 24, 9, tzinfo=dt.UTC)
    recent = body_of(call(api, CREATE, body={"format": "json"}))

    # One second before the first report's TTL (2027-02-22T00:00:00Z): both listed.
    clock.now = dt.datetime(2027, 2, 21, 23, 59, 59, tzinfo=dt.UTC)
    assert ids(body_of(call(api, LIST))["reports"]) == [recent["id"], old["id"]]
    assert call(api, GET, path_parameters={"id": old["id"]})["statusCode"] == 200

    # At the TTL the item is expired, though DynamoDB may keep it for days.
    clock.now = dt.datetime(2027, 2, 22, tzinfo=dt.UTC)
    assert len(stored_reports(stack)) == 2
    listed = body_of(call(api, LIST))
    assert ids(listed["reports"]) == [recent["id"]]
    response = call(api, GET, path_parameters={"id": old["id"]})
    assert response["statusCode"] == 410
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    assert body_of(response) == {
        "error": f"report {old['id']} has expired: reports are kept for a limited time"
        " (reportRetentionDays); request a new one",
        "code": "report_expired",
    }
    # Another tenant still learns nothing about it.
    seed_tenant(stack, "globex")
    assert call(api, GET, "globex", path_parameters={"id": old["id"]})["statusCode"] == 404


def test_a_page_of_expired_reports_still_leads_to_the_next(api, clock):
    created = []
    for _ in range(3):
        created.append(body_of(call(api, CREATE, body={"format": "csv"}))["id"])
        clock.now += dt.timedelta(days=1)
    # The two oldest have expired; the newest has not.
    clock.now = dt.datetime(2027, 2, 23, 12, tzinfo=dt.UTC)

    first = body_of(call(api, LIST, query={"limit": "1"}))
    assert ids(first["reports"]) == [created[2]]
    rest = body_of(call(api, LIST, query={"limit": "1", "next": first["next"]}))
    while rest["next"]:
        assert rest["reports"] == []
        rest = body_of(call(api, LIST, query={"limit": "1", "next": rest["next"]}))
    assert rest["reports"] == []


def test_other_tenants_reports_are_not_found(api, stack):
    seed_tenant(stack, "globex")
    acme_report = body_of(call(api, CREATE, body={"format": "csv"}))
    call(api, CREATE, body={"format": "csv"})
    page = body_of(call(api, LIST, query={"limit": "1"}))

    response = call(api, GET, tenant="globex", path_parameters={"id": acme_report["id"]})
    assert response["statusCode"] == 404
    assert body_of(response) == {"error": "report not found", "code": "not_found"}
    assert body_of(call(api, LIST, tenant="globex")) == {"reports": [], "next": None}
    # Another tenant's cursor is only a position in the caller's own list.
    assert page["next"] == page["reports"][0]["id"]
    borrowed = call(api, LIST, tenant="globex", query={"next": page["next"]})
    assert body_of(borrowed) == {"reports": [], "next": None}
    missing = call(api, GET, path_parameters={"id": "not-an-id"})
    assert missing["statusCode"] == 404


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"format": "docx"},
            "invalid_format",
            "format must be one of csv, json, pdf, xlsx (excel is accepted as xlsx); got 'docx'",
        ),
        (
            {"type": "full", "format": "csv"},
            "invalid_type",
            "type must be one of summary, detailed; got 'full'",
        ),
        (
            {"format": "csv", "period": "400d"},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got '400d'",
        ),
        (
            {"format": "csv", "period": 30},
            "invalid_period",
            "period must be Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days; got '30'",
        ),
        (
            {},
            "invalid_format",
            "format must be one of csv, json, pdf, xlsx (excel is accepted as xlsx)",
        ),
        (
            {"format": "csv", "colour": "blue"},
            "invalid_body",
            "body must be an object with fields type, format and period; got 'colour'",
        ),
        ("[1]", "invalid_json", "request body must be a JSON object"),
    ],
)
def test_bad_requests_name_the_parameter_and_allowed_values(api, stack, body, code, message):
    response = call(api, CREATE, body=body)

    assert response["statusCode"] == 400
    assert body_of(response) == {"error": message, "code": code}
    assert stored_reports(stack) == []


def test_a_body_not_sent_as_json_is_a_415_and_nothing_is_stored(api, stack):
    response = call(api, CREATE, body={"format": "csv"}, headers={"content-type": "text/plain"})

    assert response["statusCode"] == 415
    assert body_of(response) == {
        "error": "Content-Type must be application/json; got 'text/plain'",
        "code": "unsupported_media_type",
    }
    assert stored_reports(stack) == []


def test_bad_page_size_is_rejected(api):
    response = call(api, LIST, query={"limit": "101"})
    assert response["statusCode"] == 400
    assert body_of(response) == {
        "error": "limit must be an integer from 1 to 100; got '101'",
        "code": "invalid_limit",
    }


def test_customer_id_in_the_body_is_ignored(api, stack):
    report = body_of(call(api, CREATE, body={"format": "csv", "customer_id": "globex"}))
    assert report["filename"].startswith("securebase-acme-")
    assert stack.get_object(f"acme/{report['id']}.csv")


def test_a_retry_with_the_same_idempotency_key_returns_the_same_report(api, stack, clock):
    headers = {"Idempotency-Key": "7d3f-retry-1"}
    first = call(api, CREATE, body={"format": "pdf"}, headers=headers)
    clock.tick(5)
    retry = call(api, CREATE, body={"format": "pdf", "period": "30d"}, headers=headers)

    assert retry["statusCode"] == first["statusCode"] == 201
    assert body_of(retry)["id"] == body_of(first)["id"]
    assert len(stored_reports(stack)) == 1
    # The same key from another tenant is another request altogether.
    seed_tenant(stack, "globex")
    other = call(api, CREATE, tenant="globex", body={"format": "pdf"}, headers=headers)
    assert body_of(other)["id"] != body_of(first)["id"]

    reused = call(api, CREATE, body={"format": "csv"}, headers=headers)
    assert reused["statusCode"] == 409
    assert body_of(reused) == {
        "error": "Idempotency-Key was already used for a different report request",
        "code": "idempotency_key_reused",
    }
    assert len(stored_reports(stack)) == 2


def test_large_reports_are_deferred_then_finished_by_the_engine(api, stack, clock):
    api.sync_budget_seconds = 0.0  # any report is over budget

    response = call(api, CREATE, body={"type": "detailed", "format": "xlsx", "period": "7d"})

    assert response["statusCode"] == 202
    pending = body_of(response)
    assert (pending["status"], pending["url"], pending["size_bytes"]) == ("pending", None, None)
    messages = stack.queued_messages()
    # The tenant is the message group: SQS fair queues share the engine between tenants.
    assert messages == [("acme", {"customer_id": "acme", "report_id": pending["id"], "slot": 0})]
    jobs = [job for _, job in messages]
    assert body_of(call(api, GET, path_parameters={"id": pending["id"]}))["status"] == "pending"

    clock.tick(30)
    engine = report_engine.ReportEngine.from_environment(
        stack.dynamodb, stack.s3, stack.ses, stack.kms, clock
    )
    sqs_event = [
        {"messageId": "m-1", "eventSource": "aws:sqs", "body": json.dumps(job)} for job in jobs
    ]
    assert engine.finish_jobs(sqs_event) == {"batchItemFailures": []}

    ready = body_of(call(api, GET, path_parameters={"id": pending["id"]}))
    assert ready["status"] == "ready"
    assert ready["completed_at"] == "2026-11-23T14:05:39Z"
    assert ready["rows"] == 7 * 6
    # Rendered for the window it was asked for, not the engine's moment.
    workbook = load_workbook(
        io.BytesIO(stack.get_object(f"acme/{pending['id']}.xlsx")["Body"].read())
    )
    assert workbook["Data"]["A2"].value == dt.datetime(2026, 11, 17)
    assert ready["filename"] == "securebase-acme-detailed-7d-2026-11-23.xlsx"


def failure_metrics(capsys) -> list[int]:
    """The ReportGenerationFailures values emitted (EMF lines on stdout) since the last call."""
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    return [m["ReportGenerationFailures"] for m in metrics if "ReportGenerationFailures" in m]


def engine_for(stack, clock):
    return report_engine.ReportEngine.from_environment(
        stack.dynamodb, stack.s3, stack.ses, stack.kms, clock
    )


def deliver(engine, stack):
    """One delivery of every queued job, as the SQS event source mapping makes it."""
    records = [
        {"messageId": f"m-{n}", "eventSource": "aws:sqs", "body": json.dumps(job)}
        for n, job in enumerate(stack.queued_jobs())
    ]
    return engine.finish_jobs(records)


def stored_status(stack, report_id):
    item = stack.dynamodb.get_item(
        TableName=stack.tables["reports"],
        Key={"customer_id": {"S": "acme"}, "report_id": {"S": report_id}},
    )["Item"]
    return item["status"]["S"], item.get("error", {}).get("S")


def test_the_pending_deadline_outlasts_every_delivery_of_a_report_job():
    # The deployed report-jobs queue: how long the engine can keep a job alive.
    deployment = committed_deployment("production")
    jobs = deployment.one(
        "aws:sqs/queue:Queue",
        lambda r: r.inputs["name"] == "securebase-production-analytics-report-jobs",
    ).inputs
    deliveries = json.loads(jobs["redrivePolicy"])["maxReceiveCount"]
    last_chance = dt.timedelta(seconds=deliveries * jobs["visibilityTimeoutSeconds"])
    assert last_chance < PENDING_DEADLINE <= last_chance + dt.timedelta(hours=1)


def test_a_report_the_engine_never_finishes_is_failed_after_the_deadline(api, stack, clock, capsys):
    api.sync_budget_seconds = 0.0
    idempotent = {"Idempotency-Key": "deadline-1"}
    request = {"format": "pdf", "period": "7d"}
    pending = body_of(call(api, CREATE, body=request, headers=idempotent))
    assert pending["status"] == "pending"
    # The engine crashes on it every time: the job ends in the dead-letter queue.

    clock.tick(PENDING_DEADLINE.total_seconds() - 1)
    assert body_of(call(api, GET, path_parameters={"id": pending["id"]}))["status"] == "pending"
    assert stored_status(stack, pending["id"]) == ("pending", None)

    clock.tick(1)
    response = call(api, GET, path_parameters={"id": pending["id"]})
    assert response["statusCode"] == 200
    failed = body_of(response)
    assert (failed["status"], failed["error"], failed["url"]) == ("failed", OVERDUE_ERROR, None)
    assert OVERDUE_ERROR == "the report was not generated within 2 hours; request it again"
    assert failed["completed_at"] == "2026-11-23T16:05:09Z"
    assert stored_status(stack, pending["id"]) == ("failed", OVERDUE_ERROR)
    assert failure_metrics(capsys) == [1]

    # Recorded once: reading it again, listing it or retrying the POST changes nothing more.
    clock.tick(60)
    assert body_of(call(api, GET, path_parameters={"id": pending["id"]})) == failed
    assert body_of(call(api, LIST))["reports"] == [failed]
    retry = call(api, CREATE, body=request, headers=idempotent)
    assert retry["statusCode"] == 500
    assert body_of(retry)["error"] == (
        f"report {pending['id']} could not be generated: {OVERDUE_ERROR}"
    )
    assert failure_metrics(capsys) == []


def test_the_report_list_records_overdue_reports_as_failed(api, stack, clock):
    api.sync_budget_seconds = 0.0
    overdue = body_of(call(api, CREATE, body={"format": "csv"}))
    clock.tick(PENDING_DEADLINE.total_seconds() - 60)
    recent = body_of(call(api, CREATE, body={"format": "csv"}))
    clock.tick(60)

    listed = body_of(call(api, LIST))["reports"]

    assert [(report["id"], report["status"]) for report in listed] == [
        (recent["id"], "pending"),
        (overdue["id"], "failed"),
    ]
    assert stored_status(stack, overdue["id"]) == ("failed", OVERDUE_ERROR)
    assert stored_status(stack, recent["id"]) == ("pending", None)


def test_a_report_finished_just_before_the_deadline_stays_ready(api, stack, clock, capsys):
    api.sync_budget_seconds = 0.0
    pending = body_of(call(api, CREATE, body={"format": "csv"}))
    seen_pending = api.service.reports.get("acme", pending["id"])
    clock.tick(PENDING_DEADLINE.total_seconds())
    # The engine finishes it between the reader's GetItem and its update.
    assert deliver(engine_for(stack, clock), stack) == {"batchItemFailures": []}

    settled = api.service.settled(seen_pending)

    assert settled.status == "ready"
    assert stored_status(stack, pending["id"]) == ("ready", None)
    assert failure_metrics(capsys) == []


def test_a_late_delivery_still_finishes_an_overdue_report(api, stack, clock):
    # An operator redrives the dead-letter queue after fixing the engine.
    api.sync_budget_seconds = 0.0
    pending = body_of(call(api, CREATE, body={"format": "json"}))
    clock.tick(PENDING_DEADLINE.total_seconds() + 600)
    assert body_of(call(api, GET, path_parameters={"id": pending["id"]}))["status"] == "failed"

    assert deliver(engine_for(stack, clock), stack) == {"batchItemFailures": []}

    ready = body_of(call(api, GET, path_parameters={"id": pending["id"]}))
    assert (ready["status"], ready["error"]) == ("ready", None)
    assert ready["url"]


@pytest.mark.parametrize(("raw", "budget"), [(None, 20.0), ("2", 2.0), ("0", 0.0), ("20", 20.0)])
def test_the_sync_budget_comes_from_the_environment(stack, clock, monkeypatch, raw, budget):
    if raw is not None:
        monkeypatch.setenv("REPORT_SYNC_BUDGET_SECONDS", raw)
    api = reporter.ReporterApi.from_environment(
        stack.dynamodb, stack.s3, lambda: stack.sqs, clock=clock
    )
    assert api.sync_budget_seconds == budget
    # A one-day CSV is estimated at 0.3 s: rendered at once unless the budget is 0.
    response = call(api, CREATE, body={"format": "csv", "period": "1d"})
    assert response["statusCode"] == (202 if budget == 0 else 201)


@pytest.mark.parametrize("raw", ["fast", "-1", "20.5", "nan", "inf", "2s"])
def test_an_invalid_sync_budget_fails_loudly_naming_the_variable(stack, monkeypatch, raw):
    monkeypatch.setenv("REPORT_SYNC_BUDGET_SECONDS", raw)
    with pytest.raises(MissingEnvironment) as raised:
        reporter.ReporterApi.from_environment(stack.dynamodb, stack.s3, lambda: stack.sqs)
    assert str(raised.value) == (
        "environment variable REPORT_SYNC_BUDGET_SECONDS must be a number of seconds"
        f" from 0 to 20; got {raw!r}"
    )


def test_a_rendering_failure_is_recorded_and_counted(api, stack, monkeypatch, capsys):
    def broken(*_args):
        raise RuntimeError("disk full")

    monkeypatch.setattr("handlers.shared.reports.service.render", broken)

    response = call(api, CREATE, body={"format": "pdf"})

    assert response["statusCode"] == 500
    body = body_of(response)
    assert body["code"] == "report_failed"
    assert body["status"] == "failed"
    assert (
        body["error"]
        == f"report {body['id']} could not be generated: rendering the PDF file failed"
    )
    stored = body_of(call(api, GET, path_parameters={"id": body["id"]}))
    assert (stored["status"], stored["error"], stored["url"]) == (
        "failed",
        "rendering the PDF file failed",
        None,
    )
    assert failure_metrics(capsys) == [1]


def test_handler_serves_the_routes_end_to_end(stack, monkeypatch):
    monkeypatch.setattr(reporter, "_api", None)  # clients are created inside moto
    monkeypatch.setattr(reporter, "utc_now", lambda: NOW)  # the day the data was seeded for

    created = reporter.handler(api_event(CREATE, "acme", body={"format": "json"}), None)
    listed = reporter.handler(api_event(LIST, "acme"), None)
    unknown = reporter.handler(api_event("DELETE /analytics/reports/{id}", "acme"), None)

    assert created["statusCode"] == 201
    assert ids(body_of(listed)["reports"]) == [body_of(created)["id"]]
    assert unknown["statusCode"] == 404
    assert body_of(created)["size_bytes"] > 0
    report = json.loads(stack.get_object(f"acme/{body_of(created)['id']}.json")["Body"].read())
    assert report["costs"]["total"] == float(Decimal("52.50"))


def test_reports_are_encrypted_with_the_configured_kms_key(stack, clock, monkeypatch):
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/0b6a1f6e-3c1d-4a8e-9f3b-5d2c7e8a9b10"
    monkeypatch.setenv("REPORTS_KMS_KEY_ARN", key_arn)
    api = reporter.ReporterApi.from_environment(
        stack.dynamodb, stack.s3, lambda: stack.sqs, clock=clock
    )

    report = body_of(call(api, CREATE, body={"format": "csv"}))

    stored = stack.get_object(f"acme/{report['id']}.csv")
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"] == key_arn


def test_large_files_are_uploaded_in_parts(stack, tmp_path):
    objects = ReportObjects(stack.s3, BUCKET, None, 900)
    record = new_record(
        "acme", "01M84BK4G8XM54MK7HVAZ1VPP3", "detailed", "json", "365d", NOW, retention_days=90
    )
    path = tmp_path / "large.json"
    path.write_bytes(b"x" * (MULTIPART_THRESHOLD_BYTES + 1024))

    objects.upload(path, record)

    stored = stack.get_object(record.s3_key)
    assert stored["ETag"].endswith('-2"')  # two parts
    assert stored["ContentLength"] == MULTIPART_THRESHOLD_BYTES + 1024
    assert stored["ContentType"] == "application/json"
    assert stored["ServerSideEncryption"] == "AES256"


# Pending deferred reports: a per-tenant cap that holds under concurrency


class AtomicWrites:
    """DynamoDB writes made atomic, as DynamoDB's conditional writes are (moto's are not)."""

    _lock = threading.Lock()

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name not in {"put_item", "update_item", "delete_item", "transact_write_items"}:
            return attribute

        def atomic(**request):
            with self._lock:
                return attribute(**request)

        return atomic


def deferring_api(stack, clock, dynamodb=None):
    api = reporter.ReporterApi.from_environment(
        dynamodb or stack.dynamodb, stack.s3, lambda: stack.sqs, clock=clock
    )
    api.sync_budget_seconds = 0.0  # every report is deferred
    return api


def pending_slots(stack, tenant="acme"):
    items = stack.dynamodb.query(
        TableName=stack.tables["reports"],
        KeyConditionExpression="customer_id = :t",
        ExpressionAttributeValues={":t": {"S": f"{tenant}#pending"}},
    )["Items"]
    return sorted(item["report_id"]["S"] for item in items)


def statuses_of(stack, tenant="acme"):
    items = stack.dynamodb.query(
        TableName=stack.tables["reports"],
        KeyConditionExpression="customer_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
    )["Items"]
    return sorted(item["status"]["S"] for item in items)


def too_many_pending(response):
    assert response["statusCode"] == 429, response["body"]
    assert response["headers"]["Retry-After"] == "30"
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    assert body_of(response) == {
        "error": "a tenant can have at most 5 large reports in preparation;"
        " retry when one of them is ready",
        "code": "too_many_pending_reports",
    }
    return True


def test_concurrent_deferred_reports_stop_at_the_pending_cap(stack, clock):
    api = deferring_api(stack, clock, AtomicWrites(stack.dynamodb))
    responses = []
    start = threading.Barrier(20)

    def create():
        start.wait()
        responses.append(call(api, CREATE, body={"format": "pdf", "period": "365d"}))

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = [response for response in responses if response["statusCode"] == 202]
    refused = [response for response in responses if response["statusCode"] != 202]
    assert len(accepted) == 5
    assert all(too_many_pending(response) for response in refused)
    assert len(refused) == 15
    # Refused reports leave nothing behind; the accepted ones hold the 5 slots.
    assert statuses_of(stack) == ["pending"] * 5
    assert pending_slots(stack) == [f"slot-{n}" for n in range(5)]
    assert sorted(job["slot"] for job in stack.queued_jobs()) == [0, 1, 2, 3, 4]


def test_a_full_tenant_does_not_hold_up_another(stack, clock):
    seed_tenant(stack, "globex")
    api = deferring_api(stack, clock)
    for _ in range(5):
        assert call(api, CREATE, body={"format": "pdf"})["statusCode"] == 202
    assert too_many_pending(call(api, CREATE, body={"format": "pdf"}))

    assert call(api, CREATE, tenant="globex", body={"format": "pdf"})["statusCode"] == 202


def test_a_finished_report_frees_its_slot(stack, clock):
    api = deferring_api(stack, clock)
    for _ in range(5):
        call(api, CREATE, body={"format": "csv"})
    assert too_many_pending(call(api, CREATE, body={"format": "csv"}))

    assert deliver(engine_for(stack, clock), stack) == {"batchItemFailures": []}

    assert pending_slots(stack) == []
    assert statuses_of(stack) == ["ready"] * 5
    assert call(api, CREATE, body={"format": "csv"})["statusCode"] == 202


def test_a_failed_report_frees_its_slot(stack, clock, monkeypatch):
    api = deferring_api(stack, clock)
    for _ in range(5):
        call(api, CREATE, body={"format": "csv"})

    def broken(*_args):
        raise RuntimeError("disk full")

    monkeypatch.setattr("handlers.shared.reports.service.render", broken)
    result = deliver(engine_for(stack, clock), stack)

    assert len(result["batchItemFailures"]) == 5  # redelivered, as before
    assert statuses_of(stack) == ["failed"] * 5
    assert pending_slots(stack) == []
    assert call(api, CREATE, body={"format": "csv"})["statusCode"] == 202


def test_a_report_past_the_pending_deadline_no_longer_holds_its_slot(stack, clock):
    api = deferring_api(stack, clock)
    for _ in range(5):
        call(api, CREATE, body={"format": "csv"})
    clock.tick(PENDING_DEADLINE.total_seconds() - 1)
    assert too_many_pending(call(api, CREATE, body={"format": "csv"}))

    clock.tick(1)

    assert call(api, CREATE, body={"format": "csv"})["statusCode"] == 202


def test_a_slot_is_released_only_by_the_report_that_holds_it(stack, clock):
    api = deferring_api(stack, clock)
    first = body_of(call(api, CREATE, body={"format": "csv"}))
    clock.tick(PENDING_DEADLINE.total_seconds())
    second = body_of(call(api, CREATE, body={"format": "csv"}))  # takes the expired slot 0
    slots = api.pending

    assert slots.release("acme", 0, first["id"]) is False
    assert pending_slots(stack) == ["slot-0"]
    assert slots.release("acme", 0, second["id"]) is True
    assert pending_slots(stack) == []


def test_a_refused_report_can_be_retried_with_the_same_idempotency_key(stack, clock):
    api = deferring_api(stack, clock)
    for _ in range(5):
        call(api, CREATE, body={"format": "csv"})
    key = {"Idempotency-Key": "after-429"}
    assert too_many_pending(call(api, CREATE, body={"format": "csv"}, headers=key))
    deliver(engine_for(stack, clock), stack)

    retried = call(api, CREATE, body={"format": "csv"}, headers=key)

    assert retried["statusCode"] == 202


@pytest.mark.parametrize(("raw", "limit"), [(None, 5), ("1", 1), ("50", 50)])
def test_the_pending_cap_comes_from_the_environment(stack, monkeypatch, raw, limit):
    if raw is not None:
        monkeypatch.setenv("REPORT_MAX_PENDING_PER_TENANT", raw)
    api = reporter.ReporterApi.from_environment(stack.dynamodb, stack.s3, lambda: stack.sqs)
    assert api.max_pending == limit


@pytest.mark.parametrize("raw", ["0", "-1", "five", "2.5"])
def test_an_invalid_pending_cap_fails_loudly_naming_the_variable(stack, monkeypatch, raw):
    monkeypatch.setenv("REPORT_MAX_PENDING_PER_TENANT", raw)
    with pytest.raises(MissingEnvironment) as raised:
        reporter.ReporterApi.from_environment(stack.dynamodb, stack.s3, lambda: stack.sqs)
    assert str(raised.value) == (
        "environment variable REPORT_MAX_PENDING_PER_TENANT must be a positive integer;"
        f" got {raw!r}"
    )


# Who requested a report


def test_reports_record_and_return_who_requested_them(api, stack, clock):
    created = call(api, CREATE, body={"format": "csv"}, subject="alice@acme.example")
    report = body_of(created)

    assert report["created_by"] == "alice@acme.example"
    assert body_of(call(api, GET, path_parameters={"id": report["id"]}))["created_by"] == (
        "alice@acme.example"
    )
    assert body_of(call(api, LIST))["reports"][0]["created_by"] == "alice@acme.example"
    stored = stack.dynamodb.get_item(
        TableName=stack.tables["reports"],
        Key={"customer_id": {"S": "acme"}, "report_id": {"S": report["id"]}},
    )["Item"]
    assert stored["created_by"] == {"S": "alice@acme.example"}

    # A token without `sub`: recorded as unknown.
    clock.tick()
    anonymous = body_of(call(api, CREATE, body={"format": "csv"}))
    assert anonymous["created_by"] is None
