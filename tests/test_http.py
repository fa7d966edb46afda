"""handlers.shared.http: what every API handler does to every request and response."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.shared.http import (
    PREFLIGHT_ROUTES,
    Request,
    handle,
    is_json_media_type,
    json_response,
)
from handlers.shared.routes import PREFLIGHT_ROUTE

ECHO = "POST /analytics/echo"


def echo(request: Request) -> dict[str, Any]:
    return json_response(200, {"tenant": request.tenant, "body": request.json_body()})


def fail(request: Request) -> dict[str, Any]:
    raise RuntimeError("boom")


ROUTES = {ECHO: echo, "GET /analytics/fail": fail, **PREFLIGHT_ROUTES}


def event(
    route_key: str,
    tenant: str | None = "acme",
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    method, _, path = route_key.partition(" ")
    context: dict[str, Any] = {"requestId": "req-1", "http": {"method": method, "path": path}}
    if tenant is not None:
        context["authorizer"] = {"lambda": {"customer_id": tenant}}
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "headers": headers or {},
        "body": body,
        "isBase64Encoded": False,
        "requestContext": context,
    }


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        "APPLICATION/JSON ; charset=utf-8",
    ],
)
def test_json_with_or_without_a_charset_in_any_case_is_json(content_type: str) -> None:
    # RFC 9110, 8.3.1: "The type and subtype tokens are case-insensitive."
    assert is_json_media_type(content_type)
    response = handle(event(ECHO, headers={"content-type": content_type}, body='{"a":1}'), ROUTES)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"tenant": "acme", "body": {"a": 1}}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/jsonp",
        "application / json",
        "application/json,text/plain",  # two Content-Type headers, joined by API Gateway
    ],
)
def test_a_json_body_sent_as_anything_else_is_a_415(content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = handle(event(ECHO, headers=headers, body='{"a":1}'), ROUTES)
    assert response["statusCode"] == 415
    assert json.loads(response["body"]) == {
        "error": f"Content-Type must be application/json; got {content_type or ''!r}",
        "code": "unsupported_media_type",
    }


TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-.", min_size=1)


@given(parameters=st.text(max_size=40), type_=TOKEN, subtype=TOKEN)
def test_parameters_never_change_the_media_type(parameters: str, type_: str, subtype: str) -> None:
    assert is_json_media_type(f"application/json;{parameters}")
    other = f"{type_}/{subtype}"
    assert is_json_media_type(f"{other};{parameters}") == (other.lower() == "application/json")


@pytest.mark.parametrize(
    ("route_key", "tenant", "headers", "status"),
    [
        (ECHO, "acme", {"content-type": "application/json"}, 200),
        (ECHO, "acme", {}, 415),
        (ECHO, None, {"content-type": "application/json"}, 401),
        ("GET /analytics/fail", "acme", {}, 500),
        ("GET /analytics/nowhere", "acme", {}, 404),
        (PREFLIGHT_ROUTE.key, None, {}, 204),
    ],
)
def test_every_response_forbids_content_sniffing(
    route_key: str, tenant: str | None, headers: dict[str, str], status: int
) -> None:
    response = handle(event(route_key, tenant, headers, body="{}"), ROUTES)
    assert response["statusCode"] == status
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"


def test_the_preflight_route_is_answered_without_a_tenant_and_nothing_else_is() -> None:
    origin = {"origin": "https://portal.example.com"}
    preflight = handle(event(PREFLIGHT_ROUTE.key, None, origin), ROUTES)
    assert (preflight["statusCode"], preflight["body"]) == (204, "")
    # Any other route key without the authorizer's tenant is refused.
    refused = handle(event(ECHO, None, {"content-type": "application/json"}), ROUTES)
    assert refused["statusCode"] == 401
    # A handler without the preflight route does not serve it.
    elsewhere = handle(event(PREFLIGHT_ROUTE.key, None, origin), {ECHO: echo})
    assert (elsewhere["statusCode"], json.loads(elsewhere["body"])["code"]) == (
        404,
        "route_not_found",
    )
