"""The HTTP API's routes and the function behind each (pure data).

One list for everything that needs it: AnalyticsApi deploys these routes, the
local front door dispatches on them, the deployment validator checks them and
the OpenAPI description is tested against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_ROUTE_KEY = "$default"


@dataclass(frozen=True)
class Route:
    method: str  # empty for the `$default` route
    path: str  # API Gateway syntax: /analytics/reports/{id}
    function: str  # function key in components.functions

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

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when `method path` is this route, else None."""
        if self.is_default or method != self.method:
            return None
        pattern = "^" + re.sub(r"\\{([a-z_]+)\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


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

# Requests that match no route reach the query function through the
# authorized `$default` route, which answers a JSON 404 in the API's error
# format (API Gateway's own would be `{"message": "Not Found"}`).
DEFAULT_ROUTE = Route("", DEFAULT_ROUTE_KEY, "query")

DEPLOYED_ROUTES: tuple[Route, ...] = (*ROUTES, DEFAULT_ROUTE)


def resolve(method: str, path: str) -> tuple[str, str, dict[str, str]]:
    """(route key, function key, path parameters) of the route that serves a request."""
    for route in ROUTES:
        parameters = route.match(method, path)
        if parameters is not None:
            return route.key, route.function, parameters
    return DEFAULT_ROUTE.key, DEFAULT_ROUTE.function, {}
