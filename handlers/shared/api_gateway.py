"""What API Gateway (HTTP API) does around the integrations: route selection and CORS (pure).

One model of the deployed API. The local front door answers with it, and the
tests hold it against the routes and CORS configuration AnalyticsApi deploys
(both built from handlers/shared/routes.py and `cors_configuration`), so a
routing or CORS mistake shows up locally and under mocks, not in a browser.

Route selection, from "Create routes for HTTP APIs in API Gateway"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html):

- "API Gateway selects the route with the most-specific match, using the
  following priorities: 1. Full match for a route and method. 2. Match for a
  route and method with a greedy path variable ({proxy+}). 3. The $default
  route." and "If no routes match a request, API Gateway returns
  {"message":"Not Found"} to the client."
- "you can use the ANY method to match all methods that you haven't defined
  for a resource": on the same path, a route's own method comes before ANY.
- "A greedy path variable catches all child resources of a route. [...] The
  greedy path variable must be at the end of the resource path."

CORS, from "Configure CORS for HTTP APIs in API Gateway"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html):

- "If you configure CORS for an API, API Gateway automatically sends a response
  to preflight OPTIONS requests, even if there isn't an OPTIONS route
  configured for your API." Only when no route matches, though: "The $default
  route catches requests for all methods and routes that you haven't
  explicitly defined, including OPTIONS requests." So a matched route (and its
  authorizer) answers a preflight; `select` returns the automatic answer only
  when nothing matched.
- "For a CORS request, API Gateway adds the configured CORS headers to the
  response from an integration." and "If you configure CORS for an API, API
  Gateway ignores CORS headers returned from your backend integration."

Where the documentation is silent the model picks one reading and says so:
among several full (or several greedy) matches the more literal path wins,
segment by segment from the left, and a longer greedy prefix wins; a greedy
variable needs at least one character (`/{proxy+}` does not match `/`);
a preflight is what the Fetch standard calls one (`OPTIONS` with `Origin` and
`Access-Control-Request-Method`, https://fetch.spec.whatwg.org/#cors-preflight-request);
preflight answers carry Allow-Methods, Allow-Headers and Max-Age, every CORS
answer Allow-Origin, and only for a configured origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from handlers.shared.routes import CUSTOM, Route

ANY_METHOD = "ANY"
NOT_FOUND_BODY = b'{"message":"Not Found"}'

# What browsers may send to the API (AnalyticsApi deploys exactly these).
CORS_ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = ("authorization", "content-type", "idempotency-key")
CORS_MAX_AGE_SECONDS = 600


@dataclass(frozen=True)
class CorsConfiguration:
    """An HTTP API's `corsConfiguration` (the parts this API sets)."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = CORS_ALLOW_METHODS
    allow_headers: tuple[str, ...] = CORS_ALLOW_HEADERS
    max_age_seconds: int = CORS_MAX_AGE_SECONDS

    def headers(self, request_headers: Mapping[str, str], preflight: bool) -> dict[str, str]:
        """The CORS headers API Gateway adds for a request (lower-case header names)."""
        origin = request_headers.get("origin")
        if origin is None or origin not in self.allow_origins:
            return {}
        headers = {"Access-Control-Allow-Origin": origin}
        if preflight:
            headers.update(
                {
                    "Access-Control-Allow-Methods": ",".join(self.allow_methods),
                    "Access-Control-Allow-Headers": ",".join(self.allow_headers),
                    "Access-Control-Max-Age": str(self.max_age_seconds),
                }
            )
        return headers


def cors_configuration(allow_origins: Iterable[str]) -> CorsConfiguration:
    """The API's CORS configuration for a stack's origins."""
    return CorsConfiguration(allow_origins=tuple(allow_origins))


def is_preflight(method: str, request_headers: Mapping[str, str]) -> bool:
    """A CORS preflight (Fetch standard): OPTIONS with Origin and Access-Control-Request-Method."""
    return (
        method == "OPTIONS"
        and "origin" in request_headers
        and "access-control-request-method" in request_headers
    )


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: Mapping[str, str]

    @property
    def needs_authorizer(self) -> bool:
        return self.route.authorization == CUSTOM


@dataclass(frozen=True)
class GatewayAnswer:
    """A response API Gateway sends itself, without an integration."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def select(
    routes: Iterable[Route],
    cors: CorsConfiguration,
    method: str,
    path: str,
    request_headers: Mapping[str, str],
) -> RouteMatch | GatewayAnswer:
    """The route that serves `method path`, or what API Gateway answers when none does.

    `request_headers` have lower-case names.
    """
    match = select_route(routes, method, path)
    if match is not None:
        return match
    if is_preflight(method, request_headers):
        return GatewayAnswer(204, cors.headers(request_headers, preflight=True), b"")
    return GatewayAnswer(404, {"Content-Type": "application/json"}, NOT_FOUND_BODY)


def select_route(routes: Iterable[Route], method: str, path: str) -> RouteMatch | None:
    """The most specific route for `method path` (see the module's priorities)."""
    ranked: list[tuple[tuple[object, ...], RouteMatch]] = []
    default: Route | None = None
    for route in routes:
        if route.is_default:
            default = route
            continue
        if route.method not in (method, ANY_METHOD):
            continue
        matched = _match_path(route.path, path)
        if matched is None:
            continue
        specificity, parameters = matched
        method_rank = 1 if route.method == ANY_METHOD else 0
        ranked.append(((*specificity, method_rank), RouteMatch(route, parameters)))
    if ranked:
        return min(ranked, key=lambda candidate: candidate[0])[1]
    return RouteMatch(default, {}) if default is not None else None


def allowed_methods(routes: Iterable[Route], path: str) -> tuple[str, ...]:
    """The methods for which API Gateway selects a route other than `$default` for `path`,
    sorted: what an `Allow` header lists for it. Only named methods: a path an `ANY`
    route matches never reaches `$default`.

    A route serves its own method only ("Routes consist of two parts: an HTTP
    method and a resource path", http-api-develop-routes.html), so a `GET`
    route does not serve `HEAD`.
    """
    routes = tuple(routes)
    methods = {route.method for route in routes if not route.is_default} - {ANY_METHOD}
    return tuple(
        sorted(
            method
            for method in methods
            if (match := select_route(routes, method, path)) is not None
            and not match.route.is_default
        )
    )


def _variable(segment: str) -> str | None:
    """`{id}` -> `id`, `{proxy+}` -> `proxy+`; None for a literal segment."""
    if segment.startswith("{") and segment.endswith("}"):
        return segment[1:-1]
    return None


def _match_path(template: str, path: str) -> tuple[tuple[object, ...], dict[str, str]] | None:
    """(specificity, path parameters) when `path` matches the route path `template`.

    Specificity sorts full matches before greedy ones, then longer greedy
    prefixes first, then literal segments before variables from the left.
    """
    parts = template.split("/")[1:]
    segments = path.split("/")[1:]
    parameters: dict[str, str] = {}
    literal_ranks: list[int] = []
    for index, part in enumerate(parts):
        name = _variable(part)
        if name is not None and name.endswith("+"):
            rest = "/".join(segments[index:])
            if not rest:
                return None
            parameters[name[:-1]] = rest
            return (1, -index, tuple(literal_ranks)), parameters
        if index >= len(segments):
            return None
        segment = segments[index]
        if name is None:
            if segment != part:
                return None
            literal_ranks.append(0)
        else:
            if not segment:
                return None
            parameters[name] = segment
            literal_ranks.append(1)
    if len(segments) != len(parts):
        return None
    return (0, 0, tuple(literal_ranks)), parameters


def integration_response_headers(
    cors: CorsConfiguration,
    method: str,
    request_headers: Mapping[str, str],
    response_headers: Mapping[str, str],
) -> dict[str, str]:
    """An integration's response headers as API Gateway sends them: its CORS headers
    replaced by the configured ones."""
    kept = {
        name: value
        for name, value in response_headers.items()
        if not name.lower().startswith("access-control-")
    }
    return {**kept, **cors.headers(request_headers, is_preflight(method, request_headers))}
