"""The HTTP API: routes behind the authorizer (all but the listed unauthenticated ones),
the stage, and who may invoke what."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from handlers.shared.routes import CUSTOM, Route
from ops.checks.aws import AwsView
from ops.checks.base import Check, CheckError, Outcome, failed, passed, verdict
from ops.checks.expectations import (
    API_ACCESS_LOG_KEY,
    AUTHORIZATION_IDENTITY_SOURCE,
    Expectations,
)
from ops.checks.outputs import StackOutputs

STAGE = "$default"
APIGATEWAY_SERVICE = "apigateway.amazonaws.com"


def api_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    checks = [
        Check("api", "api: HTTP API", partial(_api, aws, outputs, expect)),
        Check("api", "api: JWT request authorizer", partial(_authorizer, aws, outputs)),
    ]
    for route in expect.routes:
        access = "authorized" if route.authorization == CUSTOM else "no authorizer"
        checks.append(
            Check(
                "api",
                f"route {route.key}: {access}, to {route.function}",
                partial(_route, aws, outputs, route),
            )
        )
    checks += [
        Check(
            "api",
            "api: no unexpected routes",
            partial(_no_extra_routes, aws, outputs, {route.key for route in expect.routes}),
        ),
        Check("api", f"stage {STAGE}: auto-deploy", partial(_auto_deploy, aws, outputs)),
        Check("api", f"stage {STAGE}: access logs", partial(_access_logs, aws, outputs)),
        Check("api", f"stage {STAGE}: throttling", partial(_throttling, aws, outputs, expect)),
    ]
    for function_key in expect.api_functions:
        checks.append(
            Check(
                "api",
                f"function {function_key}: API Gateway grants scoped to this API",
                partial(_invoke_permission, aws, outputs, function_key),
            )
        )
    return checks


def _api_id(outputs: StackOutputs) -> str:
    return outputs.text("api_id")


def _api(aws: AwsView, outputs: StackOutputs, expect: Expectations) -> Outcome:
    api = aws.api(_api_id(outputs))
    problems = []
    if api.get("ProtocolType") != "HTTP":
        problems.append(f"protocol {api.get('ProtocolType')}, expected HTTP")
    expected_name = expect.resource_name("analytics-api")
    if api.get("Name") != expected_name:
        problems.append(f"name {api.get('Name')}, expected {expected_name}")
    return verdict(problems, f"{api.get('Name')} ({api.get('ApiId')}) at {api.get('ApiEndpoint')}")


def _the_authorizer(aws: AwsView, outputs: StackOutputs) -> dict[str, Any]:
    """The one authorizer the routes use."""
    api_id = _api_id(outputs)
    used = sorted({r["AuthorizerId"] for r in aws.routes(api_id) if r.get("AuthorizerId")})
    if len(used) != 1:
        raise CheckError(f"the routes use {len(used)} authorizers {used}, expected exactly one")
    return aws.authorizer(api_id, used[0])


def _authorizer(aws: AwsView, outputs: StackOutputs) -> Outcome:
    authorizer = _the_authorizer(aws, outputs)
    function_arn = aws.function_arn(outputs.entry("function_names", "authorizer"))
    problems = []
    if authorizer.get("AuthorizerType") != "REQUEST":
        problems.append(f"type {authorizer.get('AuthorizerType')}, expected REQUEST")
    if authorizer.get("AuthorizerPayloadFormatVersion") != "2.0":
        problems.append(
            f"payload format {authorizer.get('AuthorizerPayloadFormatVersion')}, expected 2.0"
        )
    if not authorizer.get("EnableSimpleResponses"):
        problems.append("simple responses are off")
    if AUTHORIZATION_IDENTITY_SOURCE not in authorizer.get("IdentitySource", []):
        problems.append(
            f"identity source {authorizer.get('IdentitySource')} lacks {AUTHORIZATION_IDENTITY_SOURCE}"
        )
    if function_arn not in authorizer.get("AuthorizerUri", ""):
        problems.append(f"invokes {authorizer.get('AuthorizerUri')}, not the authorizer function")
    return verdict(
        problems,
        f"{authorizer.get('Name')}: REQUEST, payload 2.0, simple responses, Authorization header",
    )


def _route(aws: AwsView, outputs: StackOutputs, expected: Route) -> Outcome:
    api_id = _api_id(outputs)
    function_key = expected.function
    route = next((r for r in aws.routes(api_id) if r["RouteKey"] == expected.key), None)
    if route is None:
        return failed("route is missing")
    problems = []
    # AWS reports a route without authorization as NONE (or leaves the field out).
    authorization = route.get("AuthorizationType") or "NONE"
    if authorization != expected.authorization:
        problems.append(f"authorization {authorization}, expected {expected.authorization}")
    authorizer_id = route.get("AuthorizerId")
    authorizer_arn = aws.function_arn(outputs.entry("function_names", "authorizer"))
    if expected.authorization != CUSTOM:
        if authorizer_id is not None:
            problems.append(f"authorizer {authorizer_id}, expected none")
    elif authorizer_id is None:
        problems.append("no authorizer")
    elif authorizer_arn not in aws.authorizer(api_id, authorizer_id).get("AuthorizerUri", ""):
        problems.append(f"authorizer {authorizer_id} does not invoke the authorizer function")
    target = route.get("Target", "")
    integration = aws.integrations(api_id).get(target.removeprefix("integrations/"))
    function_arn = aws.function_arn(outputs.entry("function_names", function_key))
    if integration is None:
        problems.append(f"target {target or 'none'} is not an integration of the API")
    else:
        if (
            integration.get("IntegrationType") != "AWS_PROXY"
            or integration.get("PayloadFormatVersion") != "2.0"
        ):
            problems.append(
                f"integration {integration.get('IntegrationType')} payload "
                f"{integration.get('PayloadFormatVersion')}, expected AWS_PROXY 2.0"
            )
        if function_arn not in integration.get("IntegrationUri", ""):
            problems.append(
                f"integrates {integration.get('IntegrationUri')}, expected {function_key}"
            )
    access = f"CUSTOM ({authorizer_id})" if expected.authorization == CUSTOM else "NONE"
    return verdict(problems, f"{access} -> {function_key}")


def _no_extra_routes(aws: AwsView, outputs: StackOutputs, expected: set[str]) -> Outcome:
    extra = sorted(
        r["RouteKey"] for r in aws.routes(_api_id(outputs)) if r["RouteKey"] not in expected
    )
    if extra:
        return failed(f"routes handlers/shared/routes.py does not define: {', '.join(extra)}")
    return passed(f"{len(expected)} routes, all expected")


def _stage(aws: AwsView, outputs: StackOutputs) -> dict[str, Any]:
    return aws.stage(_api_id(outputs), STAGE)


def _auto_deploy(aws: AwsView, outputs: StackOutputs) -> Outcome:
    stage = _stage(aws, outputs)
    return (
        passed("on")
        if stage.get("AutoDeploy")
        else failed("auto-deploy is off: route changes would not go live")
    )


def _access_logs(aws: AwsView, outputs: StackOutputs) -> Outcome:
    settings = _stage(aws, outputs).get("AccessLogSettings") or {}
    destination = settings.get("DestinationArn", "")
    log_group = outputs.entry("log_group_names", API_ACCESS_LOG_KEY)
    if not destination:
        return failed("access logging is off")
    if destination.removesuffix(":*").split(":log-group:", 1)[-1] != log_group:
        return failed(f"access logs go to {destination}, expected {log_group}")
    if not settings.get("Format"):
        return failed("access log format is empty")
    return passed(f"to {log_group}")


def _throttling(aws: AwsView, outputs: StackOutputs, expect: Expectations) -> Outcome:
    route_settings = _stage(aws, outputs).get("DefaultRouteSettings") or {}
    rate, burst = (
        route_settings.get("ThrottlingRateLimit"),
        route_settings.get("ThrottlingBurstLimit"),
    )
    wanted_rate, wanted_burst = (
        expect.settings.api_throttle_rate_limit,
        expect.settings.api_throttle_burst_limit,
    )
    if (
        rate is not None
        and burst is not None
        and float(rate) == wanted_rate
        and int(burst) == wanted_burst
    ):
        return passed(f"{rate:g} requests/s, burst {burst}")
    return failed(f"rate {rate}, burst {burst}; expected {wanted_rate:g}, {wanted_burst}")


def _invoke_permission(aws: AwsView, outputs: StackOutputs, function_key: str) -> Outcome:
    """Every API Gateway grant on the function is scoped to this API's execution ARN."""
    name = outputs.entry("function_names", function_key)
    api_id = _api_id(outputs)
    account = aws.function_arn(name).split(":")[4]
    api_arn_prefix = f"arn:aws:execute-api:{aws.region}:{account}:{api_id}/"
    grants = [
        statement
        for statement in _policy_statements(aws, name)
        if _principal_service(statement) == APIGATEWAY_SERVICE
    ]
    if not grants:
        return failed("API Gateway may not invoke it: the route or authorizer would answer 500")
    unscoped = [
        statement.get("Sid", "?")
        for statement in grants
        if not _source_arn(statement).startswith(api_arn_prefix)
    ]
    if unscoped:
        return failed(f"grants not scoped to {api_arn_prefix}*: {', '.join(unscoped)}")
    return passed(f"{len(grants)} grant(s) scoped to {api_arn_prefix}*")


def _policy_statements(aws: AwsView, function_name: str) -> list[dict[str, Any]]:
    statements = aws.function_policy(function_name).get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _principal_service(statement: dict[str, Any]) -> str | None:
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        return principal.get("Service")
    return principal


def _source_arn(statement: dict[str, Any]) -> str:
    for operator in ("ArnLike", "ArnEquals", "StringLike", "StringEquals"):
        value = statement.get("Condition", {}).get(operator, {}).get("AWS:SourceArn")
        if value:
            return value if isinstance(value, str) else json.dumps(value)
    return ""
