"""The local stack's parts that need no emulator: front door, token, local routes, job poller.

The front door is served on a free port and exercised over real HTTP, with
the handlers replaced by recorders, so each test sees exactly the payload 2.0
events API Gateway would send and the responses a client would get.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import jwt
import pytest
import requests
import yaml
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

import local.actions
import local.frontdoor
import local.jobs
from handlers import report_engine
from handlers.shared.api_gateway import cors_configuration
from handlers.shared.http import ApiError, bad_request
from handlers.shared.mail.mailer import Content, raw_message
from handlers.shared.routes import CUSTOM, DEFAULT_ROUTE, DEPLOYED_ROUTES, ROUTES, Route
from local import token
from local.actions import parse_moment, run_report_engine
from local.config import ACCOUNT_ID, AUDIENCE, DEFAULT_JWT_SECRET, ISSUER, REGION
from local.emulator_server import sent_emails
from local.frontdoor import (
    LISTEN_BACKLOG,
    OPENAPI_PATH,
    AuthorizerCache,
    FrontDoor,
    LambdaContext,
    PortInUse,
    listen,
    query_parameters,
    serve,
)
from local.jobs import ReportJobPoller

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://localhost:5173"
SECRET = "a-test-secret-of-at-least-32-bytes"
GOOD = "Bearer good-acme"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
# The route table before browsers' preflights had a route of their own: every
# route, `$default` included, behind the authorizer.
TABLE_WITHOUT_PREFLIGHT_ROUTE = tuple(
    replace(route, authorization=CUSTOM) for route in (*ROUTES, DEFAULT_ROUTE)
)


@dataclass
class FakeFunctions:
    """Stands in for the Lambda functions: records events, answers as told."""

    answers: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        self.events.append((function, json.loads(json.dumps(event))))
        if function == "authorizer":
            authorization = event["identitySource"][0]
            if authorization == "Bearer explode":
                raise RuntimeError("authorizer crashed")
            if authorization.startswith("Bearer good-"):
                tenant = authorization.removeprefix("Bearer good-")
                return {"isAuthorized": True, "context": {"customer_id": tenant, "sub": "u1"}}
            return {"isAuthorized": False}
        if event["routeKey"] == "OPTIONS /{proxy+}":
            return {"statusCode": 204, "headers": {}, "body": ""}  # as handlers.query answers
        answer = self.answers.get(function, {"statusCode": 200, "body": "{}"})
        if isinstance(answer, Exception):
            raise answer
        return answer

    def of(self, function: str) -> list[dict[str, Any]]:
        return [event for name, event in self.events if name == function]


@dataclass
class Served:
    base_url: str
    port: int
    functions: FakeFunctions
    front_door: FrontDoor

    def get(self, path: str, **options: Any) -> requests.Response:
        return requests.get(f"{self.base_url}{path}", timeout=10, **options)


@pytest.fixture
def serve_routes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Served]]:
    """Serves a front door over a route table (the deployed one by default)."""
    stop: list[Callable[[], None]] = []

    def start(routes: tuple[Route, ...] = DEPLOYED_ROUTES) -> Served:
        functions = FakeFunctions()
        monkeypatch.setattr(local.frontdoor, "invoke", functions.invoke)
        front_door = FrontDoor(cors_configuration((ORIGIN,)), routes=routes)
        server = serve(front_door, 0)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()

        def shut() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        stop.append(shut)
        port = server.server_address[1]
        return Served(f"http://127.0.0.1:{port}", port, functions, front_door)

    try:
        yield start
    finally:
        for shut in stop:
            shut()


@pytest.fixture
def served(serve_routes: Callable[..., Served]) -> Served:
    return serve_routes()


def raw_request(port: int, lines: list[str], body: bytes = b"") -> tuple[int, bytes]:
    """Sends a hand-written request (repeated headers, odd methods); returns status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        response = http.client.HTTPResponse(connection.sock)
        response.begin()
        return response.status, response.read()
    finally:
        connection.close()


# Events


def test_the_handler_gets_a_payload_2_0_event_with_the_authorizer_context(served: Served) -> None:
    status, _ = raw_request(
        served.port,
        [
            "GET /analytics/reports/01ABC?limit=5&tag=a&tag=b&empty= HTTP/1.1",
            "Host: 127.0.0.1",
            f"Authorization: {GOOD}",
            "X-Trace: one",
            "x-TRACE: two",
            "User-Agent: tests/1.0",
            "Connection: close",
        ],
    )
    assert status == 200
    [event] = served.functions.of("reporter")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /analytics/reports/{id}"
    assert event["rawPath"] == "/analytics/reports/01ABC"
    assert event["rawQueryString"] == "limit=5&tag=a&tag=b&empty="
    assert event["queryStringParameters"] == {"limit": "5", "tag": "a,b", "empty": ""}
    assert event["pathParameters"] == {"id": "01ABC"}
    assert event["headers"]["x-trace"] == "one,two"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/analytics/reports/01ABC",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tests/1.0",
    }
    assert context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default"
    assert context["accountId"] == ACCOUNT_ID
    assert context["requestId"]
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert context["authorizer"] == {"lambda": {"customer_id": "acme", "sub": "u1"}}


def test_the_authorizer_gets_the_request_before_any_authorizer_context(served: Served) -> None:
    served.get("/analytics/costs?period=7d", headers={"Authorization": GOOD})
    [event] = served.functions.of("authorizer")
    assert event["type"] == "REQUEST"
    assert event["identitySource"] == [GOOD]
    assert event["routeKey"] == "GET /analytics/costs"
    assert event["queryStringParameters"] == {"period": "7d"}
    assert "authorizer" not in event["requestContext"]
    assert served.functions.of("query")[0]["routeKey"] == "GET /analytics/costs"


def test_bodies_are_passed_as_text_or_base64(served: Served) -> None:
    headers = {"Authorization": GOOD}
    for body in (b'{"format":"csv"}', b"\xff\x00\xfe"):
        requests.post(
            f"{served.base_url}/analytics/reports", data=body, headers=headers, timeout=10
        )
    text, binary = served.functions.of("reporter")
    assert (text["body"], text["isBase64Encoded"]) == ('{"format":"csv"}', False)
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\x00\xfe"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("PUT", "/analytics/usage"), ("TRACE", "/analytics/usage")],
)
def test_requests_no_route_matches_go_to_the_default_route(
    served: Served, method: str, path: str
) -> None:
    status, _ = raw_request(
        served.port, [f"{method} {path} HTTP/1.1", f"Authorization: {GOOD}", "Connection: close"]
    )
    assert status == 200
    [event] = served.functions.of("query")
    assert event["routeKey"] == "$default"
    assert event["requestContext"]["http"]["method"] == method
    assert "pathParameters" not in event


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "period", "x y"]), st.text(max_size=5)), max_size=6
    )
)
def test_repeated_query_parameters_are_joined_with_commas_in_order(
    pairs: list[tuple[str, str]],
) -> None:
    expected: dict[str, list[str]] = {}
    for name, value in pairs:
        expected.setdefault(name, []).append(value)
    assert query_parameters(urlencode(pairs)) == {
        name: ",".join(values) for name, values in expected.items()
    }


# Authorization


def test_no_authorization_header_is_401_and_nothing_runs(served: Served) -> None:
    response = served.get("/analytics/usage")
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    assert served.functions.events == []


def test_a_denied_request_is_403_and_the_handler_never_runs(served: Served) -> None:
    response = served.get("/analytics/usage", headers={"Authorization": "Basic abc"})
    assert (response.status_code, response.json()) == (403, {"message": "Forbidden"})
    assert [name for name, _ in served.functions.events] == ["authorizer"]


def test_the_authorizers_answer_is_cached_per_header_value(served: Served) -> None:
    for _ in range(3):
        served.get("/analytics/usage", headers={"Authorization": GOOD})
        served.get("/analytics/usage", headers={"Authorization": "Bearer bad"})
    served.get("/analytics/usage", headers={"Authorization": "Bearer good-globex"})
    identities = [event["identitySource"] for event in served.functions.of("authorizer")]
    assert identities == [[GOOD], ["Bearer bad"], ["Bearer good-globex"]]
    assert [
        e["requestContext"]["authorizer"]["lambda"]["customer_id"]
        for e in served.functions.of("query")
    ] == ["acme"] * 3 + ["globex"]


@pytest.mark.parametrize(
    ("elapsed", "cached"), [(0, True), (299.9, True), (300, False), (900, False)]
)
def test_a_cached_answer_lasts_300_seconds(elapsed: float, cached: bool) -> None:
    now = [1000.0]
    cache = AuthorizerCache(clock=lambda: now[0])
    cache.put(GOOD, {"isAuthorized": True})
    now[0] += elapsed
    assert (cache.get(GOOD) is not None) is cached


@pytest.mark.parametrize("failing", ["authorizer", "handler"])
def test_a_crashing_function_is_api_gateways_500(served: Served, failing: str) -> None:
    served.functions.answers["query"] = RuntimeError("handler crashed")
    authorization = "Bearer explode" if failing == "authorizer" else GOOD
    response = served.get("/analytics/usage", headers={"Authorization": authorization})
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})


# Responses


def test_a_base64_response_body_is_decoded(served: Served) -> None:
    served.functions.answers["reporter"] = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/pdf", "X-Id": 7},
        "body": base64.b64encode(b"%PDF-1.4\x00\xff").decode(),
        "isBase64Encoded": True,
    }
    response = served.get("/analytics/reports", headers={"Authorization": GOOD})
    assert response.status_code == 201
    assert response.content == b"%PDF-1.4\x00\xff"
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Id"] == "7"


@pytest.mark.parametrize("answer", [{"customer_id": "acme"}, [1, 2], "text"])
def test_a_result_without_status_code_is_a_200_json_body(served: Served, answer: Any) -> None:
    served.functions.answers["query"] = answer
    response = served.get("/analytics/usage", headers={"Authorization": GOOD})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == answer


def test_a_handler_204_has_no_body(served: Served) -> None:
    served.functions.answers["report-engine"] = {"statusCode": 204, "headers": {}, "body": ""}
    response = requests.delete(
        f"{served.base_url}/analytics/schedules/01ABC", headers={"Authorization": GOOD}, timeout=10
    )
    assert (response.status_code, response.content) == (204, b"")


# What the front door answers itself


def concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "01ABC", path)


def assert_preflight_allowed(served: Served, method: str, path: str) -> None:
    """A browser's preflight for `method path` from the configured origin: 204 with the
    allow headers, without a token."""
    response = requests.options(
        f"{served.base_url}{path}",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
    )
    assert response.status_code == 204, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert method in response.headers["Access-Control-Allow-Methods"].split(",")
    assert response.headers["Access-Control-Allow-Headers"] == (
        "authorization,content-type,idempotency-key"
    )
    assert response.headers["Access-Control-Max-Age"] == "600"


@pytest.mark.parametrize("route", ROUTES, ids=[route.key for route in ROUTES])
def test_a_preflight_for_every_route_reaches_the_preflight_route_without_the_authorizer(
    served: Served, route: Route
) -> None:
    assert_preflight_allowed(served, route.method, concrete(route.path))
    [(function, event)] = served.functions.events
    assert function == "query"
    assert event["routeKey"] == "OPTIONS /{proxy+}"
    assert event["pathParameters"] == {"proxy": concrete(route.path).lstrip("/")}
    assert "authorizer" not in event["requestContext"]


def test_with_the_old_route_table_the_preflight_meets_the_authorizer(
    serve_routes: Callable[..., Served],
) -> None:
    # The defect this model exists to catch: `$default` takes the preflight to
    # its authorizer, which answers 401 for want of a token.
    old = serve_routes(TABLE_WITHOUT_PREFLIGHT_ROUTE)
    with pytest.raises(AssertionError, match="401"):
        assert_preflight_allowed(old, "GET", "/analytics/usage")
    assert old.functions.events == []


def test_a_preflight_from_a_foreign_origin_gets_no_allow_headers(served: Served) -> None:
    response = requests.options(
        f"{served.base_url}/analytics/reports",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert response.status_code == 204
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_the_configured_cors_headers_replace_the_handlers(served: Served) -> None:
    served.functions.answers["query"] = {
        "statusCode": 200,
        "headers": {"Access-Control-Allow-Origin": "*", "Vary": "Origin"},
        "body": "{}",
    }
    allowed = served.get("/analytics/usage", headers={"Authorization": GOOD, "Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Methods" not in allowed.headers  # not a preflight
    foreign = served.get(
        "/analytics/usage", headers={"Authorization": GOOD, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_without_a_matching_route_api_gateway_answers_preflights_and_404s_itself(
    serve_routes: Callable[..., Served],
) -> None:
    served = serve_routes((Route("GET", "/analytics/usage", "query"),))
    assert_preflight_allowed(served, "GET", "/analytics/usage")
    missing = served.get("/analytics/costs", headers={"Authorization": GOOD})
    assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
    assert served.functions.events == []


def test_the_front_doors_own_answers_carry_nosniff(served: Served) -> None:
    answers = [
        served.get("/analytics/usage"),  # 401
        served.get("/analytics/usage", headers={"Authorization": "Bearer bad"}),  # 403
        served.get("/openapi.yaml"),
        served.get("/openapi.json"),
        served.get("/_local/health"),
    ]
    assert [response.status_code for response in answers] == [401, 403, 200, 200, 200]
    for response in answers:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    status, _ = raw_request(
        served.port, ["POST /analytics/reports HTTP/1.1", "Content-Length: ten"]
    )
    assert status == 400


def test_a_handlers_headers_pass_through_as_it_set_them(served: Served) -> None:
    served.functions.answers["query"] = {"statusCode": 200, "headers": {"X-Own": "1"}, "body": ""}
    response = served.get("/analytics/usage", headers={"Authorization": GOOD})
    assert response.headers["X-Own"] == "1"
    # API Gateway adds nothing of its own, so neither does the front door.
    assert "X-Content-Type-Options" not in response.headers


def test_the_openapi_description_is_served_as_yaml_and_json(served: Served) -> None:
    as_yaml = served.get("/openapi.yaml")
    assert as_yaml.content == OPENAPI_PATH.read_bytes()
    assert as_yaml.headers["Content-Type"] == "application/yaml"
    assert served.get("/openapi.json").json() == yaml.safe_load(OPENAPI_PATH.read_text())
    assert served.get("/_local/health").json() == {"status": "ok"}
    assert served.functions.events == []


def test_local_actions_get_the_query_and_answer_bad_parameters_like_the_api(
    served: Served,
) -> None:
    def echo(query: Any) -> Any:
        if "bad" in query:
            raise bad_request("bad", "absent", query["bad"])
        return {"query": query}

    served.front_door.local_actions["GET /_local/echo"] = echo
    assert served.get("/_local/echo?a=1&a=2").json() == {"query": {"a": "1,2"}}
    bad = served.get("/_local/echo?bad=x")
    assert bad.status_code == 400
    assert bad.json() == {"error": "bad must be absent; got 'x'", "code": "invalid_bad"}
    assert served.functions.events == []


def test_a_malformed_content_length_is_a_400(served: Served) -> None:
    status, body = raw_request(
        served.port,
        ["POST /analytics/reports HTTP/1.1", f"Authorization: {GOOD}", "Content-Length: ten"],
    )
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})


def test_a_body_over_the_payload_limit_is_a_413(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local.frontdoor, "MAX_BODY_BYTES", 16)
    response = requests.post(
        f"{served.base_url}/analytics/reports",
        data=b"x" * 17,
        headers={"Authorization": GOOD},
        timeout=10,
    )
    assert (response.status_code, response.json()) == (413, {"message": "Request Entity Too Large"})
    assert served.functions.events == []


def test_the_lambda_context_counts_down_from_the_functions_timeout() -> None:
    context = LambdaContext(function_name="securebase-local-analytics-query", timeout_seconds=10)
    assert 9_000 < context.get_remaining_time_in_millis() <= 10_000
    assert context.invoked_function_arn.endswith(":function:securebase-local-analytics-query")


# Local tokens


def test_a_local_token_carries_the_claims_the_authorizer_requires() -> None:
    minted = token.mint("globex", SECRET, ttl_seconds=600, now=1_700_000_000)
    assert jwt.get_unverified_header(minted)["alg"] == "HS256"
    claims = jwt.decode(
        minted,
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": "securebase-local",
        "aud": "securebase-analytics",
        "sub": "user@globex",
        "customer_id": "globex",
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
    }


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"))
def test_any_valid_tenant_gets_a_token_naming_it(tenant: str) -> None:
    claims = jwt.decode(token.mint(tenant, SECRET), SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["customer_id"] == tenant
    assert claims["exp"] - claims["iat"] == 12 * 3600


def test_the_cli_prints_a_token_signed_with_the_configured_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANALYTICS_JWT_SECRET", SECRET)
    assert token.main(["acme", "--ttl", "60"]) == 0
    printed = capsys.readouterr().out.strip()
    claims = jwt.decode(printed, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert (claims["customer_id"], claims["exp"] - claims["iat"]) == ("acme", 60)
    monkeypatch.delenv("ANALYTICS_JWT_SECRET")
    token.main(["acme"])
    default = capsys.readouterr().out.strip()
    assert jwt.decode(default, DEFAULT_JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["../acme"], "customer_id must be 1-64 letters"),
        (["acme", "--ttl", "0"], "--ttl must be a positive number of seconds"),
    ],
)
def test_the_cli_refuses_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        token.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# Local routes


def test_the_engine_runs_now_through_its_handler_or_as_of_a_given_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoked: list[tuple[str, dict[str, Any]]] = []
    as_of: list[dt.datetime] = []

    def invoke(function: str, event: dict[str, Any]) -> dict[str, int]:
        invoked.append((function, event))
        return {"due": 0}

    def run_due(now: dt.datetime) -> dict[str, int]:
        as_of.append(now)
        return {"due": 1}

    monkeypatch.setattr(local.actions, "invoke", invoke)
    monkeypatch.setattr(report_engine, "run_due", run_due)
    assert run_report_engine({}) == {"due": 0}
    assert invoked == [("report-engine", local.actions.SCHEDULED_EVENT)]
    assert run_report_engine({"now": "2026-11-24T08:00:00+02:00"}) == {"due": 1}
    assert as_of == [dt.datetime(2026, 11, 24, 6, tzinfo=dt.UTC)]


@pytest.mark.parametrize("raw", ["2026-11-24T06:00:00", "tomorrow", ""])
def test_the_engine_time_must_be_iso_8601_with_a_zone(raw: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_moment(raw, "now")
    assert (raised.value.status, raised.value.code) == (400, "invalid_now")
    assert parse_moment("2026-11-24T06:00:00Z", "now") == dt.datetime(
        2026, 11, 24, 6, tzinfo=dt.UTC
    )


@mock_aws
def test_sent_emails_lists_what_ses_accepted_by_recipient() -> None:
    ses = boto3.client("ses", region_name=REGION)
    ses.verify_domain_identity(Domain="example.com")
    for recipient in ("a@acme.example.com", "b@acme.example.com"):
        ses.send_raw_email(
            Source="reports@example.com",
            Destinations=[recipient],
            RawMessage={
                "Data": raw_message(
                    "reports@example.com",
                    recipient,
                    Content(f"report for {recipient}", "text", "<p>html</p>"),
                    "http://127.0.0.1:8080/email/unsubscribe?token=t",
                    "report",
                )
            },
        )
    emails = sent_emails()
    assert [email["to"] for email in emails[-2:]] == [
        ["a@acme.example.com"],
        ["b@acme.example.com"],
    ]
    [mine] = sent_emails("b@acme.example.com")
    assert (mine["subject"], mine["kind"], mine["from"]) == (
        "report for b@acme.example.com",
        "report",
        "reports@example.com",
    )
    assert mine["html"].startswith("<p>html</p>")
    assert mine["unsubscribe_url"] == "http://127.0.0.1:8080/email/unsubscribe?token=t"
    assert mine["list_unsubscribe"] == f"<{mine['unsubscribe_url']}>"
    assert mine["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"


# The report-jobs poller


@pytest.mark.parametrize("crash", [False, True])
@mock_aws
def test_the_poller_deletes_the_messages_the_engine_finished(
    monkeypatch: pytest.MonkeyPatch, crash: bool
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="jobs", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    for report in ("r1", "r2", "r3"):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"report_id": report}))
    received: list[dict[str, Any]] = []

    def engine(function: str, event: dict[str, Any]) -> dict[str, Any]:
        assert function == "report-engine"
        received.extend(event["Records"])
        if crash:
            raise RuntimeError("engine crashed")
        failed = [r["messageId"] for r in event["Records"] if "r2" in r["body"]]
        return {"batchItemFailures": [{"itemIdentifier": message} for message in failed]}

    monkeypatch.setattr(local.jobs, "invoke", engine)
    poller = ReportJobPoller(queue)
    finished = sum(poller.poll_once(wait_seconds=0) for _ in range(3))
    assert [json.loads(record["body"])["report_id"] for record in received] == ["r1", "r2", "r3"]
    assert {record["eventSource"] for record in received} == {"aws:sqs"}
    assert {record["eventSourceARN"] for record in received} == {poller.queue_arn}
    left = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    if crash:
        assert finished == 0
        assert len(left) == 3
    else:
        assert finished == 2
        assert [json.loads(message["Body"])["report_id"] for message in left] == ["r2"]


def fair_queue(sqs: Any) -> str:
    queue = sqs.create_queue(QueueName="jobs", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    return queue


def send_job(sqs: Any, queue: str, tenant: str, report: str) -> None:
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=json.dumps({"customer_id": tenant, "report_id": report}),
        MessageGroupId=tenant,
    )


@mock_aws
def test_a_second_tenant_is_served_before_the_first_tenants_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = fair_queue(sqs)
    for n in range(5):  # acme's maximum of pending reports
        send_job(sqs, queue, "acme", f"acme-{n}")
    served: list[str] = []

    def engine(function: str, event: dict[str, Any]) -> dict[str, Any]:
        (record,) = event["Records"]  # one job at a time
        served.append(json.loads(record["body"])["report_id"])
        if len(served) == 1:
            # globex asks for a small report while acme's first one renders.
            send_job(sqs, queue, "globex", "globex-0")
        return {"batchItemFailures": []}

    monkeypatch.setattr(local.jobs, "invoke", engine)
    poller = ReportJobPoller(queue)
    while poller.poll_once(wait_seconds=0):
        pass

    # Next after the job in progress, not behind acme's other four.
    assert served == ["acme-0", "globex-0", "acme-1", "acme-2", "acme-3", "acme-4"]
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


@mock_aws
def test_waiting_tenants_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = fair_queue(sqs)
    for n in range(3):
        send_job(sqs, queue, "acme", f"acme-{n}")
    for n in range(2):
        send_job(sqs, queue, "globex", f"globex-{n}")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"report_id": "ungrouped"}))
    served: list[str] = []

    def engine(function: str, event: dict[str, Any]) -> dict[str, Any]:
        served.extend(json.loads(record["body"])["report_id"] for record in event["Records"])
        return {"batchItemFailures": []}

    monkeypatch.setattr(local.jobs, "invoke", engine)
    poller = ReportJobPoller(queue)
    while poller.poll_once(wait_seconds=0):
        pass

    # A message without a group is a tenant of its own, as in an SQS fair queue.
    assert served == ["acme-0", "globex-0", "ungrouped", "acme-1", "globex-1", "acme-2"]


# Listening


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_kernel_queues_128_connections_before_the_front_door_accepts_them() -> None:
    # socketserver's default backlog of 5 made 20 clients opening new
    # connections wait a second for the kernel's SYN retry.
    server = listen(0)
    try:
        port = server.server_address[1]
        listing = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        # State, Recv-Q, Send-Q: for a listening socket Send-Q is its backlog.
        assert listing[0] == "LISTEN"
        assert int(listing[2]) == LISTEN_BACKLOG >= 128
    finally:
        server.server_close()


def test_a_taken_port_is_refused_by_name() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse) as refused:
            listen(port)
    assert str(refused.value) == f"port {port} is in use"


def test_make_run_on_a_taken_port_says_so_in_one_line_before_starting_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**os.environ, "PORT": str(port)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr == f"port {port} is in use; set PORT=... (PORT=0 picks a free one)\n"
    assert result.stdout == ""  # no emulator started, nothing seeded
