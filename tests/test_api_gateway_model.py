"""handlers.shared.api_gateway: API Gateway's route selection and CORS, case by documented case.

The cases come from AWS's "Create routes for HTTP APIs in API Gateway"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html)
and "Configure CORS for HTTP APIs in API Gateway"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html);
each test quotes the sentence it checks. Then the property that matters for
this API: with the deployed route table, only preflights skip the authorizer.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.shared.api_gateway import (
    CorsConfiguration,
    GatewayAnswer,
    RouteMatch,
    allowed_methods,
    integration_response_headers,
    is_preflight,
    select,
    select_route,
)
from handlers.shared.routes import (
    CUSTOM,
    DEFAULT_ROUTE,
    DEPLOYED_ROUTES,
    NONE,
    PREFLIGHT_ROUTE,
    ROUTES,
    Route,
)

ORIGIN = "https://portal.example.com"
CORS = CorsConfiguration(allow_origins=(ORIGIN,))
PREFLIGHT = {"origin": ORIGIN, "access-control-request-method": "GET"}

# The example API of "Routing API requests".
DOCUMENTED_ROUTES = (
    Route("GET", "/pets/dog/{id}", "dog"),
    Route("GET", "/pets/{proxy+}", "pets"),
    Route("ANY", "/{proxy+}", "any"),
    Route("", "$default", "default"),
)


def selected(routes: tuple[Route, ...], method: str, path: str) -> RouteMatch:
    match = select_route(routes, method, path)
    assert match is not None
    return match


@pytest.mark.parametrize(
    ("method", "path", "route_key", "parameters"),
    [
        # "The request fully matches this route."
        ("GET", "/pets/dog/1", "GET /pets/dog/{id}", {"id": "1"}),
        # "The request doesn't fully match a route. The route with a GET method
        # and a greedy path variable catches this request."
        ("GET", "/pets/cat/1", "GET /pets/{proxy+}", {"proxy": "cat/1"}),
        # "The ANY method matches all methods that you haven't defined for a
        # route. Routes with greedy path variables have higher priority than
        # the $default route."
        ("POST", "/test/5", "ANY /{proxy+}", {"proxy": "test/5"}),
    ],
)
def test_the_documented_routing_examples(
    method: str, path: str, route_key: str, parameters: dict[str, str]
) -> None:
    match = selected(DOCUMENTED_ROUTES, method, path)
    assert (match.route.key, dict(match.path_parameters)) == (route_key, parameters)


def test_a_path_variable_catches_one_segment() -> None:
    # "the GET /pets/{petID} route catches a GET request that a client submits to .../pets/6"
    routes = (Route("GET", "/pets/{petID}", "pets"),)
    assert dict(selected(routes, "GET", "/pets/6").path_parameters) == {"petID": "6"}
    assert select_route(routes, "GET", "/pets/6/toys") is None
    assert select_route(routes, "GET", "/pets/") is None
    assert select_route(routes, "POST", "/pets/6") is None


def test_a_greedy_variable_catches_child_resources_only() -> None:
    # "A greedy path variable catches all child resources of a route."
    routes = (Route("GET", "/pets/{proxy+}", "pets"),)
    assert dict(selected(routes, "GET", "/pets/a/b/c").path_parameters) == {"proxy": "a/b/c"}
    assert select_route(routes, "GET", "/pets") is None
    # Our reading (the guide is silent): it needs at least one character.
    assert select_route((PREFLIGHT_ROUTE,), "OPTIONS", "/") is None


def test_any_catches_the_methods_a_resource_does_not_define() -> None:
    # "you can use the ANY method to match all methods that you haven't defined for a resource"
    routes = (Route("ANY", "/pets", "any"), Route("GET", "/pets", "get"))
    assert selected(routes, "GET", "/pets").route.function == "get"
    assert selected(routes, "DELETE", "/pets").route.function == "any"


def test_a_full_match_beats_a_greedy_one_and_greedy_beats_default() -> None:
    # "1. Full match for a route and method. 2. Match for a route and method
    # with a greedy path variable ({proxy+}). 3. The $default route."
    routes = (DEFAULT_ROUTE, Route("GET", "/{proxy+}", "greedy"), Route("GET", "/a/b", "full"))
    assert selected(routes, "GET", "/a/b").route.function == "full"
    assert selected(routes, "GET", "/a/c").route.function == "greedy"
    assert selected(routes, "POST", "/a/b").route.key == "$default"


def test_without_a_match_or_default_api_gateway_answers_not_found() -> None:
    # "If no routes match a request, API Gateway returns {"message":"Not Found"} to the client."
    answer = select((Route("GET", "/pets", "pets"),), CORS, "GET", "/cats", {})
    assert answer == GatewayAnswer(
        404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'
    )


# CORS


def test_without_an_options_route_api_gateway_answers_the_preflight_itself() -> None:
    # "If you configure CORS for an API, API Gateway automatically sends a
    # response to preflight OPTIONS requests, even if there isn't an OPTIONS
    # route configured for your API."
    routes = (Route("GET", "/pets", "pets"),)
    answer = select(routes, CORS, "OPTIONS", "/pets", PREFLIGHT)
    assert answer == GatewayAnswer(
        204,
        {
            "Access-Control-Allow-Origin": ORIGIN,
            "Access-Control-Allow-Methods": "GET,POST,DELETE,OPTIONS",
            "Access-Control-Allow-Headers": "authorization,content-type,idempotency-key",
            "Access-Control-Max-Age": "600",
        },
        b"",
    )
    foreign = select(routes, CORS, "OPTIONS", "/pets", {**PREFLIGHT, "origin": "https://x.example"})
    assert foreign == GatewayAnswer(204, {}, b"")


@pytest.mark.parametrize(
    "routes",
    [
        # "The $default route catches requests for all methods and routes that
        # you haven't explicitly defined, including OPTIONS requests."
        (Route("GET", "/pets", "pets"), DEFAULT_ROUTE),
        # ANY catches OPTIONS as well.
        (Route("ANY", "/{proxy+}", "any"),),
    ],
    ids=["$default", "ANY /{proxy+}"],
)
def test_an_authorized_catch_all_route_takes_the_preflight_to_its_authorizer(
    routes: tuple[Route, ...],
) -> None:
    match = select(routes, CORS, "OPTIONS", "/pets", PREFLIGHT)
    assert isinstance(match, RouteMatch)
    assert match.needs_authorizer


def test_an_unauthorized_options_route_takes_preflights_past_the_default_routes_authorizer() -> (
    None
):
    # "To support unauthorized OPTIONS requests, add an OPTIONS /{proxy+} route
    # to your API that doesn't require authorization and attach an integration
    # to the route."
    routes = (Route("GET", "/pets", "pets"), PREFLIGHT_ROUTE, DEFAULT_ROUTE)
    match = select(routes, CORS, "OPTIONS", "/pets", PREFLIGHT)
    assert isinstance(match, RouteMatch)
    assert (match.route, match.needs_authorizer) == (PREFLIGHT_ROUTE, False)
    assert dict(match.path_parameters) == {"proxy": "pets"}


def test_the_configured_cors_headers_replace_the_integrations() -> None:
    # "For a CORS request, API Gateway adds the configured CORS headers to the
    # response from an integration." "If you configure CORS for an API, API
    # Gateway ignores CORS headers returned from your backend integration."
    returned = {
        "Content-Type": "application/json",
        "Vary": "Origin",
        "Access-Control-Allow-Origin": "*",
        "access-control-allow-credentials": "true",
    }
    request = {"origin": ORIGIN}
    assert integration_response_headers(CORS, "GET", request, returned) == {
        "Content-Type": "application/json",
        "Vary": "Origin",
        "Access-Control-Allow-Origin": ORIGIN,
    }
    foreign = integration_response_headers(CORS, "GET", {"origin": "https://x.example"}, returned)
    assert foreign == {"Content-Type": "application/json", "Vary": "Origin"}
    preflight = integration_response_headers(CORS, "OPTIONS", PREFLIGHT, {})
    assert preflight == CORS.headers(PREFLIGHT, preflight=True)
    assert preflight["Access-Control-Max-Age"] == "600"


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("OPTIONS", PREFLIGHT, True),
        ("OPTIONS", {"origin": ORIGIN}, False),
        ("OPTIONS", {"access-control-request-method": "GET"}, False),
        ("GET", PREFLIGHT, False),
    ],
)
def test_a_preflight_is_options_with_origin_and_a_requested_method(
    method: str, headers: dict[str, str], expected: bool
) -> None:
    assert is_preflight(method, headers) is expected


# The deployed table

segments = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.%", min_size=1, max_size=12),
    min_size=1,
    max_size=5,
)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "TRACE", "PROPFIND"])


@given(methods, segments)
def test_with_the_deployed_routes_every_request_but_options_needs_the_authorizer(
    method: str, parts: list[str]
) -> None:
    match = select(DEPLOYED_ROUTES, CORS, method, "/" + "/".join(parts), {"origin": ORIGIN})
    assert isinstance(match, RouteMatch)
    assert match.route.authorization == CUSTOM


@given(segments | st.sampled_from([["analytics", "usage"], ["analytics", "reports", "01ABC"]]))
def test_with_the_deployed_routes_every_preflight_skips_the_authorizer(parts: list[str]) -> None:
    match = select(DEPLOYED_ROUTES, CORS, "OPTIONS", "/" + "/".join(parts), PREFLIGHT)
    assert isinstance(match, RouteMatch)
    assert (match.route, match.route.authorization) == (PREFLIGHT_ROUTE, NONE)


# What an `Allow` header lists: the methods whose requests reach a route other than `$default`.


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/analytics/usage", ("GET", "OPTIONS")),
        ("/analytics/reports", ("GET", "OPTIONS", "POST")),
        ("/analytics/reports/01ABC", ("GET", "OPTIONS")),
        ("/analytics/schedules/01ABC", ("DELETE", "GET", "OPTIONS")),
        # Only the preflight route serves these; `/` not even that ({proxy+} needs a character).
        ("/analytics/nothing", ("OPTIONS",)),
        ("/analytics/reports/01ABC/more", ("OPTIONS",)),
        ("/", ()),
    ],
)
def test_the_methods_a_path_is_served_with(path: str, methods: tuple[str, ...]) -> None:
    assert allowed_methods(DEPLOYED_ROUTES, path) == methods


def test_a_get_route_does_not_serve_head() -> None:
    # "Routes consist of two parts: an HTTP method and a resource path"; only ANY
    # matches methods a route does not name.
    assert selected(DEPLOYED_ROUTES, "HEAD", "/analytics/usage").route == DEFAULT_ROUTE
    assert "HEAD" not in allowed_methods(DEPLOYED_ROUTES, "/analytics/usage")


def test_allow_lists_named_methods_not_any() -> None:
    assert allowed_methods(DOCUMENTED_ROUTES, "/pets/dog/1") == ("GET",)


@given(methods, segments)
def test_every_method_of_allow_is_served_and_no_other(method: str, parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    reaches_a_route = not selected(DEPLOYED_ROUTES, method, path).route.is_default
    assert reaches_a_route == (method in allowed_methods(DEPLOYED_ROUTES, path))
    assert allowed_methods(ROUTES, path) == tuple(
        sorted(route.method for route in ROUTES if select_route(ROUTES, route.method, path))
    )
