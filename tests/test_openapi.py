"""handlers/openapi.yaml: valid OpenAPI 3.1, exactly the API's routes, exact schemas.

The schemas are held to what the handlers do: every example in the document
validates, bodies the API never sends are rejected, and the request patterns
accept exactly what the handlers' own parsers accept. Real responses of the
local stack are validated against it in test_local_e2e.py, and schemathesis
fuzzes the stack from it in test_local_fuzz.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator

from handlers.query import parse_breakdown
from handlers.shared.http import ApiError
from handlers.shared.mail.links import CONFIRM, InvalidLink, LinkSigner, MalformedLink
from handlers.shared.periods import parse_period
from handlers.shared.reports.ids import new_id
from handlers.shared.reports.schedules import WEEKDAYS, is_valid_email, parse_schedule
from handlers.shared.reports.store import page_size, page_start
from handlers.shared.routes import ROUTES, SIGNED_LINK_ROUTES
from tests.openapi_document import (
    JSON,
    component_validator,
    document,
    operations,
    pointer,
    resolve,
    validator_at,
)


def schema(name: str) -> dict[str, Any]:
    return document()["components"]["schemas"][name]


def is_valid(name: str, instance: Any) -> bool:
    return component_validator(name).is_valid(instance)


def test_the_document_is_valid_openapi_3_1() -> None:
    assert document()["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(document()).iter_errors()]
    assert errors == []


def test_it_describes_exactly_the_routes_the_api_serves() -> None:
    described = {(method, path) for method, path, _ in operations()}
    assert described == {(route.method, route.path) for route in (*ROUTES, *SIGNED_LINK_ROUTES)}


@pytest.mark.parametrize(
    ("method", "path"), [(route.method, route.path) for route in SIGNED_LINK_ROUTES]
)
def test_signed_link_routes_need_no_bearer_token_and_take_the_link_token(
    method: str, path: str
) -> None:
    operation = resolve(pointer("paths", path, method.lower()))
    assert operation["security"] == []
    parameters = resolve(pointer("paths", path))["parameters"]
    assert parameters == [{"$ref": "#/components/parameters/linkToken"}]
    assert {"200", "400", "410"} <= set(operation["responses"])


@pytest.mark.parametrize(("method", "path"), [(route.method, route.path) for route in ROUTES])
def test_every_operation_declares_its_path_parameters_and_the_gateway_answers(
    method: str, path: str
) -> None:
    operation = resolve(pointer("paths", path, method.lower()))
    declared = set()
    for parameter in operation.get("parameters", []):
        parameter = resolve(parameter["$ref"]) if "$ref" in parameter else parameter
        if parameter["in"] == "path":
            declared.add(parameter["name"])
    assert declared == set(re.findall(r"{([^}]+)}", path))
    assert operation.get("security", document()["security"]) == [{"bearerAuth": []}]
    # API Gateway's own answers: no token, a rejected token, throttling.
    assert {"401", "403", "429"} <= set(operation["responses"])
    assert operation["operationId"]


# API Gateway's own answers, made before any handler runs.
GATEWAY_RESPONSES = {"Unauthorized", "Forbidden", "TooManyRequests"}
NOSNIFF_REF = "#/components/headers/X-Content-Type-Options"
RETRY_AFTER_REF = "#/components/headers/Retry-After"


def test_every_operation_with_a_body_documents_the_415() -> None:
    with_body = {(method, path) for method, path, op in operations() if "requestBody" in op}
    assert with_body == {("POST", "/analytics/reports"), ("POST", "/analytics/schedules")}
    for method, path in with_body:
        operation = resolve(pointer("paths", path, method.lower()))
        assert set(operation["requestBody"]["content"]) == {JSON}
        assert operation["responses"]["415"] == {
            "$ref": "#/components/responses/UnsupportedMediaType"
        }


def test_every_handler_response_documents_nosniff() -> None:
    assert resolve(NOSNIFF_REF)["schema"] == {"type": "string", "const": "nosniff"}
    responses = [
        (f"{method} {path} {status}", response)
        for method, path, operation in operations()
        for status, response in operation["responses"].items()
        if "$ref" not in response
    ] + [
        (name, response)
        for name, response in document()["components"]["responses"].items()
        if name not in GATEWAY_RESPONSES
    ]
    for where, response in responses:
        headers = dict(response.get("headers", {}))
        # The API's own 429s also say when to retry.
        if headers.get("Retry-After") == {"$ref": RETRY_AFTER_REF}:
            del headers["Retry-After"]
        assert headers == {"X-Content-Type-Options": {"$ref": NOSNIFF_REF}}, where


def test_the_pending_reports_quota_is_a_429_with_retry_after() -> None:
    operation = resolve(pointer("paths", "/analytics/reports", "post"))
    assert operation["responses"]["429"] == {"$ref": "#/components/responses/TooManyPendingReports"}
    quota = resolve("#/components/responses/TooManyPendingReports")
    assert quota["headers"]["Retry-After"] == {"$ref": RETRY_AFTER_REF}
    assert "too_many_pending_reports" in quota["description"]


def _examples() -> list[tuple[str, Any]]:
    """(schema location, example) for every example of a JSON body in the document."""
    found = []

    def collect(media_location: str, media: dict[str, Any]) -> None:
        schema_location = f"{media_location}/schema"
        if "example" in media:
            found.append((schema_location, media["example"]))
        for example in media.get("examples", {}).values():
            found.append((schema_location, example["value"]))

    for method, path, operation in operations():
        base = pointer("paths", path, method.lower())
        body = operation.get("requestBody", {}).get("content", {})
        if JSON in body:
            collect(f"{base}/requestBody/content/{pointer(JSON)[2:]}", body[JSON])
        for status, response in operation["responses"].items():
            if "$ref" not in response and JSON in response.get("content", {}):
                content = f"{base}/responses/{status}/content/{pointer(JSON)[2:]}"
                collect(content, response["content"][JSON])
    for name, response in document()["components"]["responses"].items():
        if JSON in response.get("content", {}):  # the email links' pages are HTML
            content = pointer("components", "responses", name, "content", JSON)
            collect(content, response["content"][JSON])
    return found


EXAMPLES = _examples()


def test_the_document_has_examples_for_every_kind_of_body() -> None:
    locations = " ".join(location for location, _ in EXAMPLES)
    for fragment in ("usage", "compliance", "costs", "reports", "schedules", "BadRequest"):
        assert fragment in locations


@pytest.mark.parametrize(("location", "example"), EXAMPLES, ids=[loc for loc, _ in EXAMPLES])
def test_every_example_matches_its_schema(location: str, example: Any) -> None:
    errors = [error.message for error in validator_at(location).iter_errors(example)]
    assert errors == []


# The schemas reject what the API never sends.

REPORT = {
    "id": "01M84G0H74RPGX32QJQ4608KD4",
    "type": "summary",
    "format": "pdf",
    "period": "7d",
    "status": "ready",
    "filename": "securebase-acme-summary-7d-2026-11-23.pdf",
    "size_bytes": 7343,
    "rows": 7,
    "created_at": "2026-11-23T15:22:22Z",
    "completed_at": "2026-11-23T15:22:23Z",
    "url": "http://127.0.0.1:35669/bucket/acme/report.pdf?X-Amz-Signature=abc",
    "expires_at": "2026-11-23T15:37:23Z",
    "error": None,
    "created_by": "alice@acme.example.com",
}


def test_a_report_is_ready_with_a_url_or_not_ready_without_one() -> None:
    assert is_valid("Report", REPORT)
    assert not is_valid("Report", {**REPORT, "url": None})
    pending = {**REPORT, "status": "pending", "url": None, "expires_at": None}
    assert is_valid("Report", {**pending, "size_bytes": None, "completed_at": None})
    assert not is_valid("Report", {**pending, "url": REPORT["url"]})
    assert not is_valid("Report", {**REPORT, "surprise": 1})
    assert not is_valid("Report", {key: REPORT[key] for key in REPORT if key != "error"})
    assert not is_valid("Report", {**REPORT, "created_at": "2026-11-23 15:22:22"})
    assert not is_valid("Report", {**REPORT, "format": "excel"})  # always answered as xlsx
    failed = {**pending, "status": "failed", "error": "rendering the PDF file failed"}
    assert is_valid("ReportFailure", {**failed, "code": "report_failed"})
    assert not is_valid("ReportFailure", {**failed, "code": "report_failed", "status": "ready"})


def test_usage_series_points_are_daily_or_hourly_never_both() -> None:
    figures = {"api_calls": 1, "storage_gb": 2.5, "compute_hours": 0, "data_transfer_gb": 0.1}
    assert is_valid("DailyUsagePoint", {"date": "2026-11-23", "partial": True, **figures})
    assert is_valid(
        "HourlyUsagePoint", {"hour": "2026-11-23T05:00:00Z", "partial": False, **figures}
    )
    assert not is_valid("DailyUsagePoint", {"date": "2026-11-23", **figures})  # partial required
    assert not is_valid(
        "DailyUsagePoint", {"date": "2026-11-23", "partial": False, "extra": 1, **figures}
    )
    assert not is_valid("UsageMetrics", {**figures, "date": "2026-11-23"})
    assert not is_valid("UsageMetrics", {**figures, "api_calls": 1.5})


def test_errors_have_exactly_a_message_and_a_code() -> None:
    assert is_valid("Error", {"error": "limit must be ...", "code": "invalid_limit"})
    assert is_valid("Error", {"error": "...", "code": "invalid_Idempotency-Key"})
    assert not is_valid("Error", {"error": "no code"})
    assert not is_valid("Error", {"error": "x", "code": "x", "message": "x"})
    assert not is_valid("GatewayError", {"error": "x", "code": "x"})


# Request schemas accept exactly what the handlers accept.

SCHEDULE = {"format": "csv", "time_utc": "06:00", "recipients": ["ops@acme.example.com"]}
SCHEDULES = [
    {**SCHEDULE, "frequency": "daily"},
    {**SCHEDULE, "frequency": "weekly", "day_of_week": "monday"},
    {**SCHEDULE, "frequency": "monthly", "day_of_month": 28},
    {**SCHEDULE, "frequency": "weekly", "day_of_week": "friday", "type": "detailed"},
    {**SCHEDULE, "frequency": "daily", "format": "excel", "period": "12m"},
]
NOT_SCHEDULES = [
    {**SCHEDULE, "frequency": "weekly"},  # no day_of_week
    {**SCHEDULE, "frequency": "daily", "day_of_week": "monday"},
    {**SCHEDULE, "frequency": "monthly", "day_of_month": 29},
    {**SCHEDULE, "frequency": "monthly", "day_of_month": 1, "day_of_week": "monday"},
    {**SCHEDULE, "frequency": "hourly"},
    {**SCHEDULE, "frequency": "daily", "time_utc": "24:00"},
    {**SCHEDULE, "frequency": "daily", "recipients": []},
    {**SCHEDULE, "frequency": "daily", "recipients": ["not-an-address"]},
    {**SCHEDULE, "frequency": "daily", "recipients": [f"r{n}@acme.example.com" for n in range(11)]},
    {**SCHEDULE, "frequency": "daily", "period": "13m"},
    {**SCHEDULE, "frequency": "daily", "surprise": True},
]


@pytest.mark.parametrize("body", SCHEDULES)
def test_schedule_bodies_the_schema_accepts_the_handler_accepts(body: dict[str, Any]) -> None:
    assert is_valid("ScheduleRequest", body)
    parse_schedule(copy.deepcopy(body))


@pytest.mark.parametrize("body", NOT_SCHEDULES)
def test_schedule_bodies_the_schema_rejects_the_handler_rejects(body: dict[str, Any]) -> None:
    assert not is_valid("ScheduleRequest", body)
    with pytest.raises(ApiError) as raised:
        parse_schedule(copy.deepcopy(body))
    assert raised.value.status == 400


def _period_accepted(raw: str) -> bool:
    try:
        parse_period(raw)
    except ApiError:
        return False
    return True


@given(st.from_regex(r"\A[0-9]{1,4}[dwmDWMx]\Z") | st.text(max_size=6))
def test_the_period_pattern_matches_exactly_the_periods_the_api_accepts(raw: str) -> None:
    assert is_valid("Period", raw) == _period_accepted(raw)


def _parameter_schema(path: str, name: str) -> Any:
    operation = resolve(pointer("paths", path, "get"))
    parameters = [
        resolve(parameter["$ref"]) if "$ref" in parameter else parameter
        for parameter in operation["parameters"]
    ]
    return next(parameter for parameter in parameters if parameter["name"] == name)["schema"]


def _accepts(parse: Any, raw: str) -> bool:
    try:
        parse(raw)
    except ApiError:
        return False
    return True


@given(
    st.sampled_from(["category", "service", "region", "Region", "", " region"])
    | st.text(max_size=8)
)
def test_the_breakdown_enum_is_exactly_what_the_api_accepts(raw: str) -> None:
    enum = _parameter_schema("/analytics/costs", "breakdown")["enum"]
    assert (raw in enum) == _accepts(parse_breakdown, raw)


@given(st.builds(new_id) | st.text(max_size=30) | st.just(new_id() + "\n"))
def test_the_next_cursor_is_any_id_and_nothing_else(raw: str) -> None:
    assert _parameter_schema("/analytics/reports", "next") == {"$ref": "#/components/schemas/Id"}
    assert is_valid("Id", raw) == _accepts(page_start, raw)


class _KmsRefusingEveryMac:
    def verify_mac(self, **_: Any) -> dict[str, bool]:
        return {"MacValid": False}


def _is_malformed_link(raw: str) -> bool:
    """The consent routes' 400 (malformed) rather than their 403 (not genuine)."""
    signer = LinkSigner(_KmsRefusingEveryMac(), "link-key")
    try:
        signer.verify(raw, CONFIRM, dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    except MalformedLink:
        return True
    except InvalidLink:
        return False
    raise AssertionError("a token the refusing key accepted")


@given(
    st.from_regex(r"\A[A-Za-z0-9_-]{1,8}\.[A-Za-z0-9_-]{1,8}\Z")
    | st.text(alphabet="Aa9_-.=+/ \n", max_size=12)
    | st.sampled_from(["a" * 1020 + ".abc", "a" * 1021 + ".abc"])
)
def test_the_link_token_schema_is_exactly_the_shape_the_links_accept(raw: str) -> None:
    token = validator_at(pointer("components", "parameters", "linkToken", "schema"))
    assert token.is_valid(raw) == (not _is_malformed_link(raw))


@given(st.integers(-5, 200).map(str) | st.text(max_size=4))
def test_the_limit_schema_is_exactly_what_the_api_accepts(raw: str) -> None:
    limit = _parameter_schema("/analytics/reports", "limit")
    documented = (
        raw.isascii() and raw.isdigit() and limit["minimum"] <= int(raw) <= limit["maximum"]
    )
    assert documented == _accepts(page_size, raw)


@given(st.from_regex(r"\A[0-9]{1,2}:[0-9]{1,2}\Z") | st.text(max_size=6))
def test_the_time_pattern_matches_exactly_the_times_the_api_accepts(raw: str) -> None:
    body = {**SCHEDULE, "frequency": "daily", "time_utc": raw}
    try:
        parse_schedule(body)
        accepted = True
    except ApiError:
        accepted = False
    if raw == raw.strip():
        assert is_valid("TimeOfDay", raw) == accepted


ATOM_CHARS = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
# Near-addresses: dots anywhere in the local part (at its ends, doubled), local
# parts around the 64-character limit, domains with and without dots.
near_addresses = st.one_of(
    st.from_regex(r"\A\.?[a-z]{1,3}(\.{1,2}[a-z]{1,3}){0,2}\.?@acme\.example\Z"),
    st.from_regex(rf"\A[{ATOM_CHARS}]{{1,60}}(\.[{ATOM_CHARS}]{{1,10}}){{0,3}}@acme\.example\Z"),
    st.from_regex(rf"\A[.{ATOM_CHARS}]{{1,70}}@([a-z0-9-]{{1,20}}\.?){{1,4}}\Z"),
)


def _accepted_by_the_api(address: str) -> bool:
    try:
        parse_schedule({**SCHEDULE, "frequency": "daily", "recipients": [address]})
    except ApiError:
        return False
    return True


@given(near_addresses | st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=20))
def test_the_schema_and_the_api_agree_on_addresses(address: str) -> None:
    # Python's `$` (which jsonschema uses) also matches before a final
    # newline, ECMA-262's does not: such strings are left out.
    assert is_valid("Recipients", [address]) == is_valid_email(address)
    if address == address.strip():
        assert is_valid_email(address) == _accepted_by_the_api(address)


LONG_DOMAIN = ".".join(["d" * 63] * 3)  # 191 characters


@pytest.mark.parametrize(
    "address",
    [
        "a..b@acme.example.com",
        ".a@acme.example.com",
        "a.@acme.example.com",
        "." + "@acme.example.com",
        "x" * 65 + "@acme.example.com",
        "x" * 63 + "@" + LONG_DOMAIN,  # 255 characters
        "a@acme",
        "a@-acme.com",
        "a b@acme.com",
        "a@acme.com.",
        "a@acme.com\n",
    ],
)
def test_addresses_the_schema_rejects_the_api_rejects(address: str) -> None:
    assert not is_valid_email(address)
    if not address.endswith("\n"):  # see above: Python's `$`
        assert not is_valid("Recipients", [address])


@pytest.mark.parametrize(
    "address",
    [
        "x" * 64 + "@acme.example.com",
        "x" * 62 + "@" + LONG_DOMAIN,  # 254 characters
        "first.last+reports@acme.example.com",
        "o'brien@acme.example.com",
    ],
)
def test_addresses_at_the_limits_are_accepted_by_both(address: str) -> None:
    assert is_valid("Recipients", [address])
    assert is_valid_email(address)


def test_ids_are_the_ids_the_api_makes() -> None:
    assert is_valid("Id", new_id())
    assert not is_valid("Id", "report-1")
    assert set(schema("Weekday")["enum"]) == set(WEEKDAYS)


def _links() -> dict[tuple[str, str], set[str]]:
    """(source operationId, target operationId) -> the target parameters the link fills."""
    links: dict[tuple[str, str], set[str]] = {}
    for _, _, operation in operations():
        for response in operation["responses"].values():
            response = resolve(response["$ref"]) if "$ref" in response else response
            for link in response.get("links", {}).values():
                key = (operation["operationId"], link["operationId"])
                links.setdefault(key, set()).update(link.get("parameters", {}))
    return links


def test_links_declare_the_report_and_schedule_flows() -> None:
    assert set(_links()) == {
        ("createReport", "getReport"),
        ("getReport", "listReports"),
        ("createSchedule", "getSchedule"),
        ("createSchedule", "deleteSchedule"),
        ("getSchedule", "deleteSchedule"),
    }


def test_links_fill_the_targets_path_parameters_and_name_real_operations() -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in operations()}
    for (_, target), filled in _links().items():
        declared = {
            (resolve(p["$ref"]) if "$ref" in p else p)["name"]
            for p in by_id[target].get("parameters", [])
            if (resolve(p["$ref"]) if "$ref" in p else p)["in"] == "path"
        }
        assert filled == declared, target
