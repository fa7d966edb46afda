"""Report email: consent, signed links, bounces, the daily quota, exactly-once delivery.

Hostile-tenant cases included: one tenant cannot mail outsiders without their
confirmation, pass its daily quota with concurrent runs, or confirm or
unsubscribe another tenant's recipients with a forged or reused link.
"""

import base64
import datetime as dt
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from handlers import email_consent, report_engine
from handlers.shared.http import handle
from handlers.shared.mail.consent import own_domains, recipient_state
from handlers.shared.mail.mailer import tenant_of_tags, tenant_tag
from tests.test_report_engine import (
    DAILY,
    DUE_AT,
    RUN_AT,
    AtomicWrites,
    FailingSes,
    call,
    create_schedule,
    make_engine,
    schedule,
)
from tests.test_report_support import (
    CONFIGURATION_SET,
    LINKS_BASE_URL,
    NOW,
    api_event,
    body_of,
    moto_stack,
    seed_tenant,
    sent_emails,
)

OUTSIDER = "auditor@outside.example"


@pytest.fixture
def stack(monkeypatch):
    with moto_stack(monkeypatch) as moto:
        seed_tenant(moto, "acme")
        seed_tenant(moto, "globex")
        yield moto


@pytest.fixture
def engine(stack):
    return make_engine(stack)


def consent(stack, now=NOW):
    return email_consent.EmailConsent.from_environment(stack.dynamodb, stack.kms, clock=lambda: now)


def follow(stack, url, method="POST", now=NOW):
    """Opens a link from an email against the consent routes, as a browser or mail client."""
    parts = urlsplit(url)
    assert url.startswith(LINKS_BASE_URL)
    token = parse_qs(parts.query)["token"][0]
    event = api_event(f"{method} {parts.path}", "", query={"token": token})
    return handle(event, consent(stack, now).routes)


def states(engine, schedule_id, tenant="acme"):
    view = schedule(engine, schedule_id, tenant)
    return {entry["address"]: entry["state"] for entry in view["recipient_states"]}


def run(stack, at, ses=None):
    return make_engine(stack, ses=ses, now=at).run_due(at)


def forge(token: str, **changes) -> str:
    payload, mac = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    return f"{forged}.{mac}"


# Who may receive email (pure)


def test_own_domains_are_the_contact_domain_the_extra_domains_and_the_allow_list():
    customer = {"contact_email": "Admin@Acme.Example", "email_domains": ["acme-eu.example"]}
    domains = own_domains(customer, ["partner.example"])
    assert domains == {"acme.example", "acme-eu.example", "partner.example"}
    assert recipient_state("cfo@ACME.example", domains, None) == "confirmed"
    assert recipient_state("x@outside.example", domains, None) == "pending"
    assert recipient_state("x@outside.example", domains, {"state": "confirmed"}) == "confirmed"
    assert recipient_state("cfo@acme.example", domains, {"state": "suppressed"}) == "suppressed"
    assert own_domains(None, []) == frozenset()


def test_the_tenant_tag_round_trips_any_tenant_id():
    for tenant in ("acme", "acme.eu_1-x"):
        tag = tenant_tag(tenant)
        assert tag.isalnum()  # SES tag values: letters, digits, _ and - only
        assert tenant_of_tags({"customer_hex": [tag]}) == tenant
    assert tenant_of_tags({}) is None
    assert tenant_of_tags({"customer_hex": ["zz"]}) is None


# Consent


def test_an_outside_address_gets_one_confirmation_and_reports_only_after_confirming(engine, stack):
    created = create_schedule(engine, recipients=["ops@acme.example", OUTSIDER])
    assert created["recipient_states"] == [
        {"address": "ops@acme.example", "state": "confirmed"},
        {"address": OUTSIDER, "state": "pending"},
    ]
    [confirmation] = sent_emails(OUTSIDER)
    assert confirmation["kind"] == "confirm"
    assert confirmation["subject"] == "Confirm SecureBase analytics reports from Acme Corporation"
    assert "until 2026-11-30 14:05 UTC" in confirmation["text"]  # 7 days
    # Another schedule naming the same address sends no second confirmation.
    create_schedule(engine, recipients=[OUTSIDER], time_utc="16:00")
    assert len(sent_emails(OUTSIDER)) == 1

    run(stack, RUN_AT)
    assert [email["kind"] for email in sent_emails(OUTSIDER)] == ["confirm"]
    assert [email["kind"] for email in sent_emails("ops@acme.example")] == ["report"]

    page = follow(stack, confirmation["confirm_url"], "GET")
    assert page["statusCode"] == 200
    assert page["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert page["headers"]["X-Content-Type-Options"] == "nosniff"
    assert '<form method="post"' in page["body"]
    assert states(engine, created["id"])[OUTSIDER] == "pending"  # a GET changes nothing

    confirmed = follow(stack, confirmation["confirm_url"])
    assert confirmed["statusCode"] == 200
    assert states(engine, created["id"])[OUTSIDER] == "confirmed"
    reused = follow(stack, confirmation["confirm_url"])
    assert (reused["statusCode"], body_of(reused)["code"]) == (410, "link_used")

    next_day = RUN_AT + dt.timedelta(days=1)
    run(stack, next_day)
    assert [email["kind"] for email in sent_emails(OUTSIDER)] == ["confirm", "report", "report"]


def test_a_schedule_with_only_unconfirmed_recipients_generates_nothing(engine, stack):
    created = create_schedule(engine, recipients=[OUTSIDER])

    assert run(stack, RUN_AT)["sent"] == 1
    after = schedule(engine, created["id"])
    assert after["last_status"] == "no_confirmed_recipients"
    assert after["last_report_id"] is None
    assert after["next_run"] == "2026-11-24T15:00:00Z"
    assert [email["kind"] for email in sent_emails()] == ["confirm"]


def test_a_confirmation_link_expires_after_7_days_and_a_new_one_can_be_sent(engine, stack):
    create_schedule(engine, recipients=[OUTSIDER])
    [first] = sent_emails(OUTSIDER)
    week_later = NOW + dt.timedelta(days=7)

    expired = follow(stack, first["confirm_url"], now=week_later)
    assert (expired["statusCode"], body_of(expired)["code"]) == (410, "link_expired")

    later = make_engine(stack, now=week_later + dt.timedelta(seconds=1))
    call(later, "POST /analytics/schedules", body={**DAILY, "recipients": [OUTSIDER]})
    second = sent_emails(OUTSIDER)[-1]
    assert second["confirm_url"] != first["confirm_url"]
    assert follow(stack, first["confirm_url"], now=week_later)["statusCode"] == 410
    ok = follow(stack, second["confirm_url"], now=week_later + dt.timedelta(minutes=1))
    assert ok["statusCode"] == 200


def test_forged_links_are_refused(engine, stack):
    create_schedule(engine, recipients=[OUTSIDER])
    [confirmation] = sent_emails(OUTSIDER)
    token = parse_qs(urlsplit(confirmation["confirm_url"]).query)["token"][0]
    routes = consent(stack).routes

    for forged, answer in (
        (forge(token, t="globex"), (403, "invalid_link")),
        (forge(token, a="someone@outside.example"), (403, "invalid_link")),
        (forge(token, e=2_000_000_000), (403, "invalid_link")),
        (token[:-2], (403, "invalid_link")),
        ("not-a-token", (400, "malformed_link")),
        (token + "=", (400, "malformed_link")),
        ("", (400, "malformed_link")),
    ):
        response = handle(api_event("POST /email/confirm", "", query={"token": forged}), routes)
        assert (response["statusCode"], body_of(response)["code"]) == answer, forged
    # A confirmation link does not unsubscribe, nor the other way round.
    wrong = handle(api_event("POST /email/unsubscribe", "", query={"token": token}), routes)
    assert wrong["statusCode"] == 403
    assert (
        states(engine, body_of(call(engine, "GET /analytics/schedules"))["schedules"][0]["id"])[
            OUTSIDER
        ]
        == "pending"
    )


def test_another_tenants_link_confirms_nothing_of_ours(engine, stack):
    """acme and globex both name the outsider; acme's link confirms acme's record only."""
    create_schedule(engine, recipients=[OUTSIDER])
    theirs = create_schedule(engine, tenant="globex", recipients=[OUTSIDER])
    acme_link, globex_link = (email["confirm_url"] for email in sent_emails(OUTSIDER))

    assert follow(stack, acme_link)["statusCode"] == 200
    assert states(engine, theirs["id"], "globex")[OUTSIDER] == "pending"
    forged = acme_link.replace(
        parse_qs(urlsplit(acme_link).query)["token"][0],
        forge(parse_qs(urlsplit(acme_link).query)["token"][0], t="globex"),
    )
    assert follow(stack, forged)["statusCode"] == 403
    assert states(engine, theirs["id"], "globex")[OUTSIDER] == "pending"
    assert follow(stack, globex_link)["statusCode"] == 200
    assert states(engine, theirs["id"], "globex")[OUTSIDER] == "confirmed"


def test_concurrent_clicks_on_one_confirmation_link_confirm_once(engine, stack):
    create_schedule(engine, recipients=[OUTSIDER])
    [confirmation] = sent_emails(OUTSIDER)
    start = threading.Barrier(6)
    statuses = []

    token = parse_qs(urlsplit(confirmation["confirm_url"]).query)["token"][0]
    event = api_event("POST /email/confirm", "", query={"token": token})

    def click():
        clicker = email_consent.EmailConsent.from_environment(
            AtomicWrites(stack.dynamodb), stack.kms, clock=lambda: NOW
        )
        start.wait()
        statuses.append(handle(event, clicker.routes)["statusCode"])

    threads = [threading.Thread(target=click) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [410] * 5


def test_a_tenant_cannot_unsubscribe_another_tenants_recipient(engine, stack):
    """acme holds a genuine unsubscribe link for the address; rewritten for globex it is refused."""
    create_schedule(engine, recipients=["cfo@acme.example"])
    theirs = create_schedule(engine, tenant="globex", recipients=["cfo@acme.example"])
    follow(stack, sent_emails("cfo@acme.example")[-1]["confirm_url"])  # globex's confirmation
    run(stack, RUN_AT)
    acme_report = next(
        email
        for email in sent_emails("cfo@acme.example")
        if email["kind"] == "report" and "acme" in email["subject"]
    )
    token = parse_qs(urlsplit(acme_report["unsubscribe_url"]).query)["token"][0]

    forged = handle(
        api_event("POST /email/unsubscribe", "", query={"token": forge(token, t="globex")}),
        consent(stack).routes,
    )

    assert (forged["statusCode"], body_of(forged)["code"]) == (403, "invalid_link")
    assert states(engine, theirs["id"], "globex")["cfo@acme.example"] == "confirmed"


def test_concurrent_creates_naming_one_outsider_send_one_confirmation(stack):
    start = threading.Barrier(8)
    statuses = []

    def create():
        runner = make_engine(stack, dynamodb=AtomicWrites(stack.dynamodb))
        start.wait()
        response = call(
            runner, "POST /analytics/schedules", body={**DAILY, "recipients": [OUTSIDER]}
        )
        statuses.append(response["statusCode"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 8
    assert len(sent_emails(OUTSIDER)) == 1


# Unsubscribe, bounces, complaints


def test_every_email_carries_one_click_unsubscribe_that_suppresses_the_recipient(engine, stack):
    created = create_schedule(engine)
    run(stack, RUN_AT)
    [report] = sent_emails("cfo@acme.example")
    assert report["list_unsubscribe"] == f"<{report['unsubscribe_url']}>"
    assert report["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert report["unsubscribe_url"].startswith(f"{LINKS_BASE_URL}/email/unsubscribe?token=")
    assert report["unsubscribe_url"] in report["text"]

    page = follow(stack, report["unsubscribe_url"], "GET")
    assert page["statusCode"] == 200 and 'name="List-Unsubscribe"' in page["body"]
    assert states(engine, created["id"])["cfo@acme.example"] == "confirmed"
    done = follow(stack, report["unsubscribe_url"])
    assert done["statusCode"] == 200
    assert states(engine, created["id"])["cfo@acme.example"] == "suppressed"
    assert follow(stack, report["unsubscribe_url"])["statusCode"] == 200  # idempotent

    run(stack, RUN_AT + dt.timedelta(days=1))
    assert len(sent_emails("cfo@acme.example")) == 1
    assert len(sent_emails("ops@acme.example")) == 2
    # globex naming the same address is not affected by acme's recipient's choice.
    theirs = create_schedule(engine, tenant="globex", recipients=["cfo@acme.example"])
    assert states(engine, theirs["id"], "globex")["cfo@acme.example"] == "pending"


def test_every_send_names_the_configuration_set_and_the_tenant(engine, stack):
    calls = []

    class RecordingSes:
        def send_raw_email(self, **message):
            calls.append(message)
            return stack.ses.send_raw_email(**message)

    create_schedule(engine, tenant="globex", recipients=["it@globex.example"])
    run(stack, RUN_AT, ses=RecordingSes())

    [message] = calls
    assert message["ConfigurationSetName"] == CONFIGURATION_SET
    assert message["Destinations"] == ["it@globex.example"]
    assert {tag["Name"]: tag["Value"] for tag in message["Tags"]} == {
        "customer_hex": b"globex".hex(),
        "kind": "report",
    }


def ses_event(event_type, tenant, addresses, bounce_type="Permanent"):
    mail = {"messageId": "m-1", "tags": {"customer_hex": [tenant_tag(tenant)], "kind": ["report"]}}
    event = {"eventType": event_type, "mail": mail}
    recipients = [{"emailAddress": address} for address in addresses]
    if event_type == "Bounce":
        event["bounce"] = {"bounceType": bounce_type, "bouncedRecipients": recipients}
    else:
        event["complaint"] = {"complainedRecipients": recipients}
    return {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(event)}}


def test_bounces_and_complaints_suppress_the_recipient_for_that_tenant_only(
    engine, stack, monkeypatch
):
    acme = create_schedule(engine)
    globex = create_schedule(engine, tenant="globex", recipients=["ops@acme.example"])
    monkeypatch.setattr(email_consent, "_consent", None)

    result = email_consent.handler(
        {
            "Records": [
                ses_event("Bounce", "acme", ["ops@acme.example"]),
                ses_event("Bounce", "acme", ["cfo@acme.example"], bounce_type="Transient"),
                ses_event("Complaint", "globex", ["ops@acme.example"]),
                {"EventSource": "aws:sns", "Sns": {"Message": "not json"}},
            ]
        },
        None,
    )

    assert result == {"suppressed": 2}
    assert states(engine, acme["id"]) == {
        "ops@acme.example": "suppressed",
        "cfo@acme.example": "confirmed",  # a transient bounce suppresses no one
    }
    assert states(engine, globex["id"], "globex") == {"ops@acme.example": "suppressed"}
    run(stack, RUN_AT)
    reports = [email["to"] for email in sent_emails() if email["kind"] == "report"]
    assert reports == [["cfo@acme.example"]]


# The daily quota


def test_concurrent_runs_cannot_pass_the_daily_quota(stack, monkeypatch, capsys):
    monkeypatch.setenv("REPORT_EMAILS_PER_DAY", "5")
    creator = make_engine(stack)
    recipients = [f"user{n}@acme.example" for n in range(4)]
    created = [create_schedule(creator, recipients=recipients) for _ in range(3)]
    start = threading.Barrier(3)

    def one_run():
        runner = make_engine(stack, now=RUN_AT, dynamodb=AtomicWrites(stack.dynamodb))
        start.wait()
        runner.run_due(RUN_AT)

    threads = [threading.Thread(target=one_run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(sent_emails()) == 5
    statuses = sorted(schedule(creator, item["id"])["last_status"] for item in created)
    assert statuses.count("quota_exceeded") >= 1
    stopped = [schedule(creator, item["id"]) for item in created]
    for view in stopped:
        if view["last_status"] == "quota_exceeded":
            assert view["next_run"] == "2026-11-24T15:00:00Z"  # waits for its next regular run
            assert "sent nothing more" in view["last_error"]
    assert '"EmailQuotaExceeded": 1' in capsys.readouterr().out
    # A new UTC day has a new quota.
    next_day = DUE_AT + dt.timedelta(days=1, minutes=7)
    run(stack, next_day)
    assert len(sent_emails()) == 10


def test_confirmations_count_towards_the_quota(stack, monkeypatch):
    monkeypatch.setenv("REPORT_EMAILS_PER_DAY", "2")
    engine = make_engine(stack)
    outsiders = [f"person{n}@outside.example" for n in range(4)]

    created = create_schedule(engine, recipients=outsiders)

    assert len(sent_emails()) == 2
    assert set(states(engine, created["id"]).values()) == {"pending"}
    # The ones not asked yet are asked by a later run, on a day with quota left.
    run(stack, RUN_AT + dt.timedelta(days=1))
    assert sorted(email["to"][0] for email in sent_emails()) == sorted(outsiders)


# Exactly once per recipient


def test_an_ses_failure_for_one_recipient_ends_in_exactly_one_delivery_each(engine, stack):
    recipients = ["ops@acme.example", "cfo@acme.example", "it@acme.example"]
    created = create_schedule(engine, recipients=recipients)
    moment = RUN_AT
    for _ in range(2):  # refused twice, then SES accepts it
        summary = run(stack, moment, ses=FailingSes(stack.ses, "cfo@acme.example"))
        assert summary["failed"] == 1
        moment += dt.timedelta(minutes=15)
    assert run(stack, moment)["sent"] == 1
    assert run(stack, moment + dt.timedelta(minutes=15))["due"] == 0

    delivered = [email["to"][0] for email in sent_emails()]
    assert sorted(delivered) == sorted(recipients)
    after = schedule(engine, created["id"])
    assert (after["last_status"], after["next_run"]) == ("sent", "2026-11-24T15:00:00Z")


def test_racing_retries_never_send_a_recipient_two_copies(engine, stack):
    create_schedule(engine, recipients=["ops@acme.example", "cfo@acme.example"])
    run(stack, RUN_AT, ses=FailingSes(stack.ses, "cfo@acme.example"))
    retry_at = RUN_AT + dt.timedelta(minutes=15)
    start = threading.Barrier(4)

    def retry():
        runner = make_engine(stack, now=retry_at, dynamodb=AtomicWrites(stack.dynamodb))
        start.wait()
        runner.run_due(retry_at)

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(email["to"][0] for email in sent_emails()) == [
        "cfo@acme.example",
        "ops@acme.example",
    ]


# Who did it


def test_a_schedule_records_and_returns_who_created_it(engine):
    response = handle(
        api_event("POST /analytics/schedules", "acme", subject="alice@acme", body=DAILY),
        engine.routes,
    )
    created = body_of(response)
    assert created["created_by"] == "alice@acme"
    assert schedule(engine, created["id"])["created_by"] == "alice@acme"
    item = engine.schedules.get("acme", created["id"])
    assert item["created_by"] == "alice@acme"


def test_the_handler_builds_the_engine_from_its_environment(stack, monkeypatch):
    monkeypatch.setattr(report_engine, "_engine", None)
    response = report_engine.handler(
        api_event("POST /analytics/schedules", "acme", body={**DAILY, "recipients": [OUTSIDER]}),
        None,
    )
    assert response["statusCode"] == 201
    assert [email["kind"] for email in sent_emails(OUTSIDER)] == ["confirm"]
