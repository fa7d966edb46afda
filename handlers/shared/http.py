"""API Gateway HTTP API (payload 2.0) requests and responses, shared by the API handlers.

The tenant comes only from the authorizer's context; a `customer_id` in the
query string or body is never read. Only the routes handlers.shared.routes
lists as unauthenticated (the CORS preflight) are served without one. Errors
are `{"error", "code"}` JSON with a 4xx status for anything the client sent;
`handle` turns any other exception into a logged 500 that reveals nothing, and
puts `X-Content-Type-Options: nosniff` on every response.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from handlers.shared import env
from handlers.shared.metrics_layout import is_valid_tenant_id
from handlers.shared.routes import PREFLIGHT_ROUTE, UNAUTHENTICATED_ROUTE_KEYS

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
JSON_MEDIA_TYPE = "application/json"
# Browsers must not guess another type (HTML, script) from a body's bytes.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


class ApiError(Exception):
    """A client-facing error: status, machine code and a human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})  # e.g. Retry-After on a 429


def bad_request(parameter: str, allowed: str, got: object = None) -> ApiError:
    """400 naming the parameter, what it accepts and (when given) what was sent."""
    message = f"{parameter} must be {allowed}"
    if got is not None:
        message += f"; got {str(got)[:100]!r}"
    return ApiError(400, f"invalid_{parameter}", message)


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


@dataclass(frozen=True)
class Request:
    method: str
    route_key: str  # "GET /analytics/reports/{id}"
    path: str
    tenant: str  # empty only on the unauthenticated routes, which must not read it
    query: Mapping[str, str]
    path_parameters: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    request_id: str
    origin: str | None = None
    subject: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def json_body(self) -> dict[str, Any]:
        """The body of a route that takes JSON: 413 when too large, 415 unless it is sent as
        `application/json`, 400 unless it is a JSON object (empty: `{}`)."""
        if len(self.body) > MAX_BODY_BYTES:
            raise ApiError(
                413, "body_too_large", f"request body must be at most {MAX_BODY_BYTES} bytes"
            )
        content_type = self.header("Content-Type")
        if not is_json_media_type(content_type):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type must be {JSON_MEDIA_TYPE}; got {str(content_type or '')[:100]!r}",
            )
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        # RecursionError: deeply nested arrays or objects exhaust the decoder's stack.
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(400, "invalid_json", "request body must be a JSON object") from None
        if not isinstance(value, dict):
            raise ApiError(400, "invalid_json", "request body must be a JSON object")
        return value

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def created_by(self) -> str | None:
        """Who made the request, as stored in `created_by`: the token's `sub` (None without)."""
        return self.subject or None


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json`, with any parameters (a charset): RFC 9110 section 8.3.1, "The type
    and subtype tokens are case-insensitive"; no whitespace around the `/`."""
    if content_type is None:
        return False
    media_type = content_type.split(";", 1)[0].strip(" \t")
    return media_type.lower() == JSON_MEDIA_TYPE


def parse_request(event: Mapping[str, Any]) -> Request:
    """Reads a payload 2.0 event. Raises ApiError(401) without an authorized tenant,
    except on the routes API Gateway serves without the authorizer."""
    context = event.get("requestContext") or {}
    authorizer = (context.get("authorizer") or {}).get("lambda") or {}
    tenant = authorizer.get("customer_id")
    route_key = str(event.get("routeKey") or "")
    if route_key in UNAUTHENTICATED_ROUTE_KEYS:
        tenant = ""
    elif not is_valid_tenant_id(tenant):
        # API Gateway only calls us after the authorizer allowed the request;
        # reaching here means a misconfigured route, never a client input.
        raise ApiError(401, "unauthorized", "the request carries no authorized tenant")
    http = context.get("http") or {}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw_body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except ValueError:
            raise ApiError(400, "invalid_body", "request body is not valid base64") from None
    else:
        body = raw_body.encode("utf-8")
    return Request(
        method=str(http.get("method") or "GET").upper(),
        route_key=route_key,
        path=str(http.get("path") or event.get("rawPath") or ""),
        tenant=tenant,
        query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        path_parameters={str(k): str(v) for k, v in (event.get("pathParameters") or {}).items()},
        headers=headers,
        body=body,
        request_id=str(context.get("requestId") or ""),
        origin=headers.get("origin"),
        subject=authorizer.get("sub"),
    )


def allowed_origins() -> tuple[str, ...]:
    raw = env.optional(env.CORS_ALLOWED_ORIGINS, "") or ""
    return tuple(origin.strip() for origin in raw.split(",") if origin.strip())


def cors_headers(origin: str | None) -> dict[str, str]:
    """CORS headers for an allowed origin; `Vary: Origin` always, for caches."""
    headers = {"Vary": "Origin"}
    if origin and origin in allowed_origins():
        headers.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Headers": "Authorization,Content-Type,Idempotency-Key",
                "Access-Control-Allow-Methods": "GET,POST,DELETE,OPTIONS",
                "Access-Control-Max-Age": "600",
            }
        )
    return headers


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(body: Any) -> str:
    return json.dumps(body, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def json_response(
    status: int, body: Any, origin: str | None = None, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            **cors_headers(origin),
            **(headers or {}),
        },
        "body": to_json(body),
    }


def error_response(error: ApiError, origin: str | None = None) -> dict[str, Any]:
    return json_response(
        error.status, {"error": error.message, "code": error.code}, origin, error.headers
    )


def no_content(origin: str | None = None) -> dict[str, Any]:
    return {"statusCode": 204, "headers": cors_headers(origin), "body": ""}


def preflight(request: Request) -> dict[str, Any]:
    """The CORS preflight route: 204; API Gateway adds the configured CORS headers."""
    return no_content(request.origin)


Route = Callable[[Request], dict[str, Any]]

# The query function is the preflight route's integration (handlers.shared.routes).
PREFLIGHT_ROUTES: Mapping[str, Route] = {PREFLIGHT_ROUTE.key: preflight}


def handle(event: Mapping[str, Any], routes: Mapping[str, Route]) -> dict[str, Any]:
    """Dispatches on `routeKey`; every failure becomes a JSON error response."""
    response = _dispatch(event, routes)
    response["headers"] = {**(response.get("headers") or {}), **NOSNIFF}
    return response


def _dispatch(event: Mapping[str, Any], routes: Mapping[str, Route]) -> dict[str, Any]:
    origin = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}.get("origin")
    try:
        request = parse_request(event)
        route = routes.get(request.route_key)
        if route is None:
            # The `$default` route catches every path the API does not serve.
            raise ApiError(404, "route_not_found", f"no route {request.method} {request.path}")
        return route(request)
    except ApiError as error:
        return error_response(error, origin)
    except Exception:
        request_id = ((event.get("requestContext") or {}).get("requestId")) or ""
        logger.exception(
            "unhandled error", extra={"route": event.get("routeKey"), "request_id": request_id}
        )
        return error_response(
            ApiError(500, "internal_error", f"internal error (request {request_id})"), origin
        )
