"""The query API: GET /analytics/usage, /analytics/compliance and /analytics/costs.

It also answers the CORS preflight route (`OPTIONS /{proxy+}`, without the
authorizer): 204, with no AWS call; and the `$default` route, where API
Gateway sends every request no other route matches: a method that a path of
the API does not serve is a 405 with `Allow`, anything else a 404.

API Gateway HTTP API, payload 2.0, behind the JWT authorizer: the tenant is
the authorizer's `customer_id` and nothing else (a `customer_id` query
parameter is ignored). A request costs one cache read; on a miss, one Query
on the metrics table and one cache write (see handlers.shared.analytics for
what the bodies contain and handlers.shared.query_cache for the cache).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from handlers.shared import analytics, api_gateway, env, telemetry
from handlers.shared.http import (
    PREFLIGHT_ROUTES,
    ApiError,
    Request,
    Route,
    bad_request,
    handle,
    json_response,
)
from handlers.shared.metrics_reader import MetricsReader
from handlers.shared.periods import parse_period
from handlers.shared.query_cache import QueryCache, cache_key
from handlers.shared.routes import DEFAULT_ROUTE, DEPLOYED_ROUTES, ROUTES, SIGNED_LINK_ROUTES

USAGE_PATH = "/analytics/usage"
COMPLIANCE_PATH = "/analytics/compliance"
COSTS_PATH = "/analytics/costs"
DEFAULT_BREAKDOWN = "category"

telemetry.configure_logging()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_breakdown(raw: str | None) -> str:
    """One of the documented values exactly (None: the default); else ApiError(400)."""
    value = DEFAULT_BREAKDOWN if raw is None else raw
    if value not in analytics.BREAKDOWNS:
        raise bad_request("breakdown", "one of " + ", ".join(analytics.BREAKDOWNS), raw)
    return value


def not_served(request: Request) -> dict[str, Any]:
    """The `$default` route: requests that no route of the API matches (no AWS call).

    On a path the API serves, the method is the wrong one: 405 with the methods
    the path does serve in `Allow` (RFC 9110, section 15.5.6: "The origin server
    MUST generate an Allow header field in a 405 response containing a list of
    the target resource's currently supported methods."), OPTIONS included, which
    the preflight route serves on every path. Any other path: 404.
    """
    if not api_gateway.allowed_methods((*ROUTES, *SIGNED_LINK_ROUTES), request.path):
        raise ApiError(404, "route_not_found", f"no route {request.method} {request.path}")
    allowed = ", ".join(api_gateway.allowed_methods(DEPLOYED_ROUTES, request.path))
    return json_response(
        405,
        {
            "error": f"{request.path} does not serve {request.method}; it serves {allowed}",
            "code": "method_not_allowed",
        },
        request.origin,
        headers={"Allow": allowed},
    )


class QueryApi:
    """The three routes over a metrics reader and a response cache, and the preflight."""

    def __init__(
        self,
        reader: MetricsReader,
        cache: QueryCache,
        clock: Callable[[], dt.datetime] = utc_now,
    ):
        self._reader = reader
        self._cache = cache
        self._clock = clock

    @classmethod
    def from_environment(
        cls, dynamodb_client: Any, clock: Callable[[], dt.datetime] = utc_now
    ) -> QueryApi:
        return cls(
            MetricsReader(dynamodb_client, env.require(env.METRICS_TABLE)),
            QueryCache(
                dynamodb_client,
                env.require(env.CACHE_TABLE),
                env.require_int(env.CACHE_TTL_SECONDS),
            ),
            clock,
        )

    @property
    def routes(self) -> dict[str, Route]:
        return {
            f"GET {USAGE_PATH}": self.usage,
            f"GET {COMPLIANCE_PATH}": self.compliance,
            f"GET {COSTS_PATH}": self.costs,
            **PREFLIGHT_ROUTES,
            DEFAULT_ROUTE.key: not_served,
        }

    def usage(self, request: Request) -> dict[str, Any]:
        period = parse_period(request.query.get("period"))
        return self._answer(
            request,
            USAGE_PATH,
            {"period": period.normalised},
            lambda now: analytics.usage_body(
                request.tenant,
                period,
                self._reader.usage_for_period(request.tenant, period, now),
                now,
            ),
            echo={"period": period.label},
        )

    def costs(self, request: Request) -> dict[str, Any]:
        period = parse_period(request.query.get("period"))
        breakdown = parse_breakdown(request.query.get("breakdown"))
        return self._answer(
            request,
            COSTS_PATH,
            {"period": period.normalised, "breakdown": breakdown},
            lambda now: analytics.costs_body(
                request.tenant,
                period,
                breakdown,
                self._reader.costs_for_period(request.tenant, period, now),
                now,
            ),
            echo={"period": period.label},
        )

    def compliance(self, request: Request) -> dict[str, Any]:
        return self._answer(
            request,
            COMPLIANCE_PATH,
            {},
            lambda now: analytics.compliance_body(
                request.tenant, self._reader.recent_compliance(request.tenant, now), now
            ),
        )

    def _answer(
        self,
        request: Request,
        path: str,
        parameters: Mapping[str, str],
        build: Callable[[dt.datetime], dict[str, Any]],
        echo: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The cached body, or a fresh one that is then cached.

        `echo` holds what the caller wrote rather than its normalised form
        (`4w` shares `28d`'s entry but answers `"period": "4w"`).
        """
        now = self._clock()
        key = cache_key(request.tenant, path, parameters)
        body = self._cache.get(key, int(now.timestamp()))
        if body is None:
            body = build(now)
            self._cache.put(key, body, int(now.timestamp()))
        return json_response(200, {**body, **(echo or {})}, request.origin)


_api: QueryApi | None = None


def _query_api() -> QueryApi:
    """One client and API per container, created on first use (not at import)."""
    global _api
    if _api is None:
        # The clock is looked up here, not bound as a default, so a test can fix it.
        _api = QueryApi.from_environment(boto3.client("dynamodb"), clock=utc_now)
    return _api


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, _query_api().routes)
