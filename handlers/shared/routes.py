"""The HTTP API's routes and the function behind each (pure data).

One list for everything that needs it: AnalyticsApi creates these routes, the
local front door dispatches on them, the deployment validator checks them and
the OpenAPI description is tested against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway syntax: /analytics/reports/{id}
    function: str  # function key in components.functions

    @property
    def key(self) -> str:
        """API Gateway's route key: `GET /analytics/usage`."""
        return f"{self.method} {self.path}"

    @property
    def source_arn_path(self) -> str:
        """The part of an execute-api ARN this route is invoked through: `GET/analytics/reports/*`."""
        return f"{self.method}{re.sub(r'{[^}]+}', '*', self.path)}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when `method path` is this route, else None."""
        if method != self.method:
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
DEFAULT_ROUTE_KEY = "$default"
DEFAULT_ROUTE_FUNCTION = "query"


def resolve(method: str, path: str) -> tuple[str, str, dict[str, str]]:
    """(route key, function key, path parameters) for a request."""
    for route in ROUTES:
        parameters = route.match(method, path)
        if parameters is not None:
            return route.key, route.function, parameters
    return DEFAULT_ROUTE_KEY, DEFAULT_ROUTE_FUNCTION, {}
