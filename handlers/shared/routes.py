"""The HTTP API's routes, the function behind each, and who may call them (pure data).

One list for everything that needs it: AnalyticsApi deploys these routes, the
local front door selects among them (handlers.shared.api_gateway), the
handlers let through without a tenant exactly the routes listed as
unauthenticated, the deployment validator and the policy pack check them and
the OpenAPI description is tested against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DEFAULT_ROUTE_KEY = "$default"

# API Gateway's authorization types for a route: the Lambda authorizer, or none.
CUSTOM = "CUSTOM"
NONE = "NONE"
Authorization = Literal["CUSTOM", "NONE"]


@dataclass(frozen=True)
class Route:
    method: str  # empty for the `$default` route; `ANY` matches every method
    path: str  # API Gateway syntax: /analytics/reports/{id}, /{proxy+}
    function: str  # function key in components.functions
    authorization: Authorization = CUSTOM

    @property
    def is_default(self) -> bool:
        return not self.method

    @property
    def key(self) -> str:
        """API Gateway's route key: `GET /analytics/usage`, or `$default`."""
        return DEFAULT_ROUTE_KEY if self.is_default else f"{self.method} {self.path}"

    @property
    def slug(self) -> str:
        """`GET /analytics/reports/{id}` -> `get-analytics-reports-id`, for resource names."""
        if self.is_default:
            return "default"
        return "-".join([self.method.lower(), *re.findall(r"[a-z0-9]+", self.path)])

    @property
    def source_arn_path(self) -> str:
        """What follows `<execution arn>/<stage>/` when API Gateway invokes this route:
        `GET/analytics/reports/*` (path parameters become `*`), or `$default`."""
        if self.is_default:
            return DEFAULT_ROUTE_KEY
        return f"{self.method}{re.sub(r'{[^}]+}', '*', self.path)}"


ROUTES: tuple[Route, ...] = (
    Route("GET", "/analytics/usage", "query"),
    Route("GET", "/analytics/compliance", "query"),
    Route("GET", "/analytics/costs", "query"),
    Route("POST", "/analytics/reports", "reporter"),
    Route("GET", "/analytics/reports", "reporter"),
    Route("GET", "/analytics/reports/{id}", "reporter"),
    Route("POST", "/analytics/schedules", "report-engine"),
    Route("GET", "/analytics/schedules", "report-engine"),
    Route("GET", "/analytics/schedules/{id}", "report-engine"),
    Route("DELETE", "/analytics/schedules/{id}", "report-engine"),
)

# Browsers send CORS preflights without credentials. Without this route the
# authorized `$default` route would catch them and answer 401; AWS's CORS
# guide for HTTP APIs (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html):
# "To support unauthorized OPTIONS requests, add an OPTIONS /{proxy+} route to
# your API that doesn't require authorization and attach an integration to the
# route." The query function answers it 204; API Gateway adds the CORS headers.
PREFLIGHT_ROUTE = Route("OPTIONS", "/{proxy+}", "query", authorization=NONE)

# Requests that match no route reach the query function through the
# authorized `$default` route ("The $default route catches requests that don't
# explicitly match other routes in your API", http-api-develop-routes.html). It
# answers in the API's error format (API Gateway's own would be
# `{"message": "Not Found"}`): 405 with `Allow` for a method that a path of
# these routes does not serve, else 404.
DEFAULT_ROUTE = Route("", DEFAULT_ROUTE_KEY, "query")

# The links in report emails (handlers.email_consent): opened by people who
# have no token, so served without the authorizer; each verifies its link's
# signature itself. The GETs show a page, the POSTs act.
SIGNED_LINK_ROUTES: tuple[Route, ...] = (
    Route("GET", "/email/confirm", "email-consent", authorization=NONE),
    Route("POST", "/email/confirm", "email-consent", authorization=NONE),
    Route("GET", "/email/unsubscribe", "email-consent", authorization=NONE),
    Route("POST", "/email/unsubscribe", "email-consent", authorization=NONE),
)

DEPLOYED_ROUTES: tuple[Route, ...] = (
    *ROUTES,
    *SIGNED_LINK_ROUTES,
    PREFLIGHT_ROUTE,
    DEFAULT_ROUTE,
)

# The routes API Gateway lets through without the authorizer: the CORS
# preflight, and only routes that verify a signed link themselves.
# tests/test_api.py pins this list; policies/config/*.json lists the signed-link
# ones for the policy pack's `apigateway-route-authorization` rule.
UNAUTHENTICATED_ROUTE_KEYS: tuple[str, ...] = tuple(
    route.key for route in DEPLOYED_ROUTES if route.authorization == NONE
)
