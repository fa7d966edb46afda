import datetime as dt
import html
import json
import re
import threading

import pytest
import requests

from handlers import report_engine
from handlers.shared.dynamo import deserialize, serialize
from handlers.shared.http import handle
from handlers.shared.reports.ids import new_id
from handlers.shared.reports.schedules import (
    MAX_SCHEDULES_PER_TENANT,
    parse_schedule,
    schedule_item,
)
from handlers.shared.reports.store import new_record
from tests.test_report_support import (
    NOW,
    SENDER,
    api_event,
    body_of,
    moto_stack,
    seed_tenant,
    sent_emails,
)

CREATE = "POST /analytics/schedules"
LIST = "GET /analytics/schedules"
GET = "GET /analytics/schedules/{id}"
DELETE = "DELETE /analytics/schedules/{id}"
DAILY = {
    "type": "summary",
    "format": "csv",
    "period": "7d",
    "frequency": "daily",
    "time_utc": "15:00",
    "recipients": ["ops@acme.example", "cfo@acme.example"],
}
DUE_AT = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)  # DAILY's first run after NOW
RUN_AT = DUE_AT + dt.timedelta(minutes=7)  # the engine runs every 15 minutes


class FailingSes:
    """SES that refuses one recipient, the way SES refuses an address."""

    def __init__(self, ses, refused: str):
        self.ses = ses
        self.refused = refused

    def send_raw_email(self, **message):
        if message["Destinations"] == [self.refused]:
            raise self.ses.exceptions.MessageRejected(
                {"Error": {"Code": "MessageRejected", "Message": "Address blacklisted."}},
                "SendRawEmail",
            )
        return self.ses.send_raw_email(**message)


class AtomicWrites:
    """A DynamoDB client whose writes are atomic, as DynamoDB's are.

    moto checks a write's condition and then applies it in steps two threads
    can interleave, so both could "win" a conditional claim that real
    DynamoDB lets only one win.
    """

    WRITES = frozenset({"put_item", "update_item", "delete_item", "transact_write_items"})
    _lock = threading.Lock()

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name not in self.WRITES:
            return attribute

        def atomic(**request):
            with self._lock:
                return attribute(**request)

        return atomic


@pytest.fixture
def stack(monkeypatch):
    with moto_stack(monkeypatch) as moto:
        seed_tenant(moto, "acme")
        seed_tenant(moto, "globex")
        yield moto


def make_engine(stack, ses=None, now=NOW, dynamodb=None):
    return report_engine.ReportEngine.from_environment(
        dynamodb or stack.dynamodb, stack.s3, ses or stack.ses, stack.kms, clock=lambda: now
    )


@pytest.fixture
def engine(stack):
    return make_engine(stack)


def call(engine, route_key, tenant="acme", **kwargs):
    return handle(api_event(route_key, tenant, **kwargs), engine.routes)


def create_schedule(engine, tenant="acme", **changes):
    response = call(engine, CREATE, tenant=tenant, body={**DAILY, **changes})
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)


def schedule(engine, schedule_id, tenant="acme"):
    return body_of(call(engine, GET, tenant=tenant, path_parameters={"id": schedule_id}))


def reports_of(stack, tenant):
    items = stack.dynamodb.query(
        TableName=stack.tables["reports"],
        KeyConditionExpression="customer_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
    )["Items"]
    return [deserialize(item) for item in items]


def link_in(message) -> str:
    return html.unescape(re.search(r'href="([^"]+)"', message["html"]).group(1))


# Schedules API


def test_create_computes_next_run_and_the_schedule_can_be_read_back(engine):
    created = create_schedule(engine, frequency="weekly", day_of_week="wednesday", format="excel")

    assert created["next_run"] == "2026-11-25T15:00:00Z"
    assert created["format"] == "xlsx"
    assert created["last_status"] == "scheduled"
    assert schedule(engine, created["id"]) == created
    assert body_of(call(engine, LIST)) == {"schedules": [created]}


def test_schedules_and_their_reports_record_who_created_them(engine, stack):
    response = call(engine, CREATE, body=DAILY, subject="alice@acme.example")
    assert response["statusCode"] == 201, response["body"]
    created = body_of(response)
    anonymous = create_schedule(engine, time_utc="16:00")  # a token without `sub`

    assert created["created_by"] == "alice@acme.example"
    assert schedule(engine, created["id"])["created_by"] == "alice@acme.example"
    assert anonymous["created_by"] is None
    assert make_engine(stack, now=RUN_AT).run_due(RUN_AT)["sent"] == 1
    (report,) = reports_of(stack, "acme")
    assert (report["schedule_id"], report["created_by"]) == (created["id"], "alice@acme.example")


def test_schedules_are_private_to_their_tenant(engine):
    created = create_schedule(engine)

    for route_key in (GET, DELETE):
        response = call(engine, route_key, tenant="globex", path_parameters={"id": created["id"]})
        assert response["statusCode"] == 404
        assert body_of(response) == {"error": "schedule not found", "code": "not_found"}
    assert body_of(call(engine, LIST, tenant="globex")) == {"schedules": []}
    assert schedule(engine, created["id"]) == created  # still there


def test_delete_removes_the_schedule(engine):
    created = create_schedule(engine)

    deleted = call(engine, DELETE, path_parameters={"id": created["id"]})

    assert deleted["statusCode"] == 204 and deleted["body"] == ""
    assert call(engine, GET, path_parameters={"id": created["id"]})["statusCode"] == 404
    assert call(engine, DELETE, path_parameters={"id": created["id"]})["statusCode"] == 404


def test_invalid_schedules_are_rejected_with_the_field_named(engine):
    response = call(engine, CREATE, body={**DAILY, "recipients": ["ops@acme.example"] * 2})

    assert response["statusCode"] == 400
    assert body_of(response) == {
        "error": "recipients must be a list of 1 to 10 distinct email addresses;"
        " got 'duplicate addresses'",
        "code": "invalid_recipients",
    }
    assert body_of(call(engine, LIST)) == {"schedules": []}


def test_a_tenant_can_have_at_most_50_schedules(engine):
    for _ in range(MAX_SCHEDULES_PER_TENANT):
        create_schedule(engine)

    response = call(engine, CREATE, body=DAILY)

    assert response["statusCode"] == 409
    assert body_of(response)["code"] == "schedule_limit_reached"
    assert create_schedule(engine, tenant="globex")  # others are not affected


def schedule_count(stack, tenant):
    return stack.dynamodb.query(
        TableName=stack.tables["report-schedules"],
        KeyConditionExpression="customer_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
        Select="COUNT",
    )["Count"]


def test_concurrent_creates_never_pass_the_schedule_cap(stack):
    engine = make_engine(stack, dynamodb=AtomicWrites(stack.dynamodb))
    for _ in range(MAX_SCHEDULES_PER_TENANT - 5):
        create_schedule(engine)
    statuses = []
    start = threading.Barrier(20)

    def create():
        start.wait()
        statuses.append(call(engine, CREATE, body=DAILY)["statusCode"])

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * 5 + [409] * 15
    assert schedule_count(stack, "acme") == MAX_SCHEDULES_PER_TENANT


def test_a_tenants_first_creates_all_succeed_while_they_race_to_start_its_counter(stack):
    """Each finds no counter; whichever starts it, the others are under the cap and retry."""
    engine = make_engine(stack, dynamodb=AtomicWrites(stack.dynamodb))
    statuses = []
    start = threading.Barrier(8)

    def create():
        start.wait()
        statuses.append(call(engine, CREATE, body=DAILY)["statusCode"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 8
    assert schedule_count(stack, "acme") == 8


def test_deleting_a_schedule_frees_its_place_under_the_cap(engine, stack):
    created = [create_schedule(engine) for _ in range(MAX_SCHEDULES_PER_TENANT)]
    assert call(engine, CREATE, body=DAILY)["statusCode"] == 409

    deleted = call(engine, DELETE, path_parameters={"id": created[0]["id"]})
    again = call(engine, DELETE, path_parameters={"id": created[0]["id"]})

    assert (deleted["statusCode"], again["statusCode"]) == (204, 404)
    assert create_schedule(engine)
    assert call(engine, CREATE, body=DAILY)["statusCode"] == 409
    assert schedule_count(stack, "acme") == MAX_SCHEDULES_PER_TENANT


def test_schedules_stored_before_the_counter_existed_are_counted(engine, stack):
    """A tenant's schedules from before the counter: its first write starts it from a count."""
    for n in range(MAX_SCHEDULES_PER_TENANT - 1):
        item = schedule_item(
            "acme", new_id(NOW + dt.timedelta(seconds=n)), parse_schedule(DAILY), NOW
        )
        stack.dynamodb.put_item(TableName=stack.tables["report-schedules"], Item=serialize(item))

    assert create_schedule(engine)
    assert call(engine, CREATE, body=DAILY)["statusCode"] == 409
    assert schedule_count(stack, "acme") == MAX_SCHEDULES_PER_TENANT
    assert len(body_of(call(engine, LIST))["schedules"]) == MAX_SCHEDULES_PER_TENANT


# Scheduled runs


def test_a_due_schedule_is_rendered_emailed_and_advanced(engine, stack):
    created = create_schedule(engine)
    not_due = create_schedule(engine, time_utc="16:00")

    summary = make_engine(stack, now=RUN_AT).run_due(RUN_AT)

    assert summary == {"due": 1, "sent": 1, "failed": 0, "skipped": 0, "deferred": 0}
    emails = sent_emails()
    assert [email["to"] for email in emails] == [["ops@acme.example"], ["cfo@acme.example"]]
    assert {email["from"] for email in emails} == {SENDER}
    assert {email["kind"] for email in emails} == {"report"}
    assert emails[0]["subject"] == "SecureBase summary report for acme (7d)"
    (report,) = reports_of(stack, "acme")
    assert report["schedule_id"] == created["id"]
    assert report["status"] == "ready"
    assert report["filename"] == "securebase-acme-summary-7d-2026-11-23.csv"
    # Expires with its file: 90 days after 2026-11-23 15:07, rounded up to midnight UTC.
    assert report["ttl"] == int(dt.datetime(2027, 2, 22, tzinfo=dt.UTC).timestamp())
    # The emailed link downloads the report.
    content = requests.get(link_in(emails[0]), timeout=5).content
    assert content == stack.get_object(report["s3_key"])["Body"].read()
    assert content.startswith(b"section,item,value,unit,change_percent,change_basis\r\n")

    after = schedule(engine, created["id"])
    assert after["next_run"] == "2026-11-24T15:00:00Z"
    assert after["last_status"] == "sent"
    assert after["last_run_at"] == "2026-11-23T15:07:00Z"
    assert after["last_report_id"] == report["report_id"]
    assert schedule(engine, not_due["id"])["next_run"] == "2026-11-23T16:00:00Z"

    # Nothing is due any more: a second run sends nothing.
    assert make_engine(stack, now=RUN_AT).run_due(RUN_AT)["due"] == 0
    assert len(sent_emails()) == 2


def test_overlapping_runs_send_a_due_report_once(engine, stack):
    create_schedule(engine)
    second_run = make_engine(stack, now=RUN_AT)
    second_summaries = []

    class OverlappingSes:
        """Starts the second run while the first one is sending its emails."""

        def send_raw_email(self, **message):
            if not second_summaries:
                second_summaries.append(second_run.run_due(RUN_AT))
            return stack.ses.send_raw_email(**message)

    first = make_engine(stack, ses=OverlappingSes(), now=RUN_AT).run_due(RUN_AT)

    assert first["sent"] == 1
    assert second_summaries == [{"due": 1, "sent": 0, "failed": 0, "skipped": 1, "deferred": 0}]
    assert len(sent_emails()) == 2  # one email per recipient, once
    assert len(reports_of(stack, "acme")) == 1


def test_a_run_that_read_the_index_before_another_finished_skips_the_schedule(engine, stack):
    create_schedule(engine)
    late_run = make_engine(stack, now=RUN_AT)
    stale = list(late_run.schedules.due(RUN_AT))  # read before the first run sends

    make_engine(stack, now=RUN_AT).run_due(RUN_AT)
    claimed = [late_run.schedules.claim(item, "late-run", RUN_AT) for item in stale]

    assert claimed == [False]  # next_run has moved on
    assert len(sent_emails()) == 2


def test_racing_threads_send_a_due_report_once(engine, stack):
    create_schedule(engine)
    create_schedule(engine, tenant="globex", recipients=["it@globex.example"])
    start = threading.Barrier(2)
    summaries = []

    def run():
        runner = make_engine(stack, now=RUN_AT, dynamodb=AtomicWrites(stack.dynamodb))
        start.wait()
        summaries.append(runner.run_due(RUN_AT))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(summary["sent"] for summary in summaries) == 2
    assert sum(summary["failed"] for summary in summaries) == 0
    assert sorted(email["to"][0] for email in sent_emails()) == [
        "cfo@acme.example",
        "it@globex.example",
        "ops@acme.example",
    ]


def test_an_ses_failure_is_recorded_and_retried_without_blocking_others(engine, stack):
    acme = create_schedule(engine)
    globex = create_schedule(engine, tenant="globex", recipients=["it@globex.example"])
    failing = make_engine(stack, ses=FailingSes(stack.ses, "cfo@acme.example"), now=RUN_AT)

    summary = failing.run_due(RUN_AT)

    assert (summary["sent"], summary["failed"]) == (1, 1)
    assert schedule(engine, globex["id"], "globex")["last_status"] == "sent"
    failed = schedule(engine, acme["id"])
    assert failed["last_status"] == "failed"
    assert failed["last_error"] == "sending the email to cfo@acme.example failed: MessageRejected"
    assert failed["next_run"] == "2026-11-23T15:00:00Z"  # still due: retried next run

    retry_at = RUN_AT + dt.timedelta(minutes=15)
    assert make_engine(stack, now=retry_at).run_due(retry_at)["sent"] == 1
    retried = schedule(engine, acme["id"])
    assert (retried["last_status"], retried["last_error"]) == ("sent", None)
    assert retried["next_run"] == "2026-11-24T15:00:00Z"
    assert [email["to"][0] for email in sent_emails()] == [
        "ops@acme.example",  # first run
        "it@globex.example",
        "cfo@acme.example",  # the retry sends only what was refused, the same report
    ]
    (report,) = reports_of(stack, "acme")
    assert retried["last_report_id"] == report["report_id"]


def test_a_schedule_that_keeps_failing_waits_for_its_next_regular_run(engine, stack):
    acme = create_schedule(engine)
    moment = RUN_AT
    for _ in range(report_engine.MAX_ATTEMPTS):
        make_engine(stack, ses=FailingSes(stack.ses, "cfo@acme.example"), now=moment).run_due(
            moment
        )
        moment += dt.timedelta(minutes=15)

    gave_up = schedule(engine, acme["id"])
    assert gave_up["last_status"] == "failed"
    assert gave_up["next_run"] == "2026-11-24T15:00:00Z"


# Deferred reports (SQS)


def sqs_event(*bodies):
    return {
        "Records": [
            {"messageId": f"m-{index}", "eventSource": "aws:sqs", "body": body}
            for index, body in enumerate(bodies)
        ]
    }


def test_failed_jobs_are_reported_for_redelivery_and_malformed_ones_dropped(engine, monkeypatch):
    record = new_record(
        "acme", "01M84BK4G8XM54MK7HVAZ1VPP3", "summary", "pdf", "7d", NOW, retention_days=90
    )
    engine.service.reports.create(record)
    job = json.dumps({"customer_id": "acme", "report_id": record.report_id})

    def out_of_memory(*_args):
        raise MemoryError

    monkeypatch.setattr("handlers.shared.reports.service.render", out_of_memory)
    malformed = ("not json", json.dumps({"customer_id": "acme", "report_id": "../etc"}))
    result = engine.finish_jobs(sqs_event(job, *malformed)["Records"])

    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    failed = engine.service.reports.get("acme", record.report_id)
    assert (failed.status, failed.error) == ("failed", "rendering the PDF file failed")

    monkeypatch.undo()  # SQS redelivers the message; this time it renders
    assert engine.finish_jobs(sqs_event(job)["Records"]) == {"batchItemFailures": []}
    assert engine.service.reports.get("acme", record.report_id).status == "ready"


def test_handler_dispatches_http_schedule_and_sqs_events(stack, monkeypatch):
    monkeypatch.setattr(report_engine, "_engine", None)  # clients are created inside moto

    created = report_engine.handler(api_event(CREATE, "acme", body=DAILY), None)
    scheduled = report_engine.handler({"source": "aws.scheduler"}, None)
    jobs = report_engine.handler(sqs_event("{}"), None)

    assert created["statusCode"] == 201
    assert scheduled == {"due": 0, "sent": 0, "failed": 0, "skipped": 0, "deferred": 0}
    assert jobs == {"batchItemFailures": []}


class ConflictingOnce:
    """DynamoDB that cancels the first transaction, as a concurrent one on the counter does."""

    def __init__(self, client):
        self._client = client
        self.transactions = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def transact_write_items(self, **request):
        self.transactions += 1
        if self.transactions == 1:
            raise self._client.exceptions.TransactionCanceledException(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return self._client.transact_write_items(**request)


def test_a_transaction_cancelled_by_a_concurrent_one_is_tried_again(stack):
    create_schedule(make_engine(stack))  # the counter exists
    conflicting = ConflictingOnce(stack.dynamodb)
    engine = make_engine(stack, dynamodb=conflicting)

    assert create_schedule(engine)
    assert conflicting.transactions == 2
    assert schedule_count(stack, "acme") == 2
