"""API Gateway v2 (HTTP API): every route authorized, stages logged and throttled.

Two kinds of route may go without an authorizer, as AWS documents and nothing
else: CORS preflights (`OPTIONS`), which browsers send without credentials
("To support unauthorized OPTIONS requests, add an OPTIONS /{proxy+} route to
your API that doesn't require authorization",
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html),
and the routes the stack's policy config lists as verifying a signed link
themselves (an email confirmation or one-click unsubscribe link carries its
own proof; its recipient has no token).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Setting, known

API = "aws:apigatewayv2/api:Api"
ROUTE = "aws:apigatewayv2/route:Route"
STAGE = "aws:apigatewayv2/stage:Stage"
AUTHORIZED = ("JWT", "CUSTOM", "AWS_IAM")
_CONTEXT_VARIABLE = re.compile(r"\$context\.[A-Za-z0-9_.]+")


SIGNED_LINK_ROUTES = Setting(
    "signedLinkRoutes",
    "Route keys (exact, one method and path: 'GET /links/unsubscribe') whose function "
    "verifies a signed link itself, so they need no authorizer. Never ANY or $default.",
    {
        "type": "array",
        "items": {"type": "string", "pattern": "^(GET|POST|PUT|PATCH|DELETE|HEAD) /"},
    },
    [],
)


def _route_authorization(route: Resource, config: Config) -> Iterator[Finding]:
    key, kind = route.get("routeKey"), route.get("authorizationType")
    if not known(key) or not known(kind):
        return
    # Browsers send CORS preflights without credentials; they must pass unauthorized.
    if isinstance(key, str) and key.startswith("OPTIONS "):
        return
    if key in config.strings(SIGNED_LINK_ROUTES.name):
        return
    if kind not in AUTHORIZED:
        yield Finding(
            route,
            f"route {key!r} has authorizationType {kind or 'NONE'}: anyone can call it",
            "set authorizationType 'CUSTOM' (or 'JWT') with the API's authorizerId",
        )
    elif kind in ("JWT", "CUSTOM") and route.get("authorizerId") is None:
        yield Finding(
            route,
            f"route {key!r} is {kind} but names no authorizer",
            "set authorizerId to the API's authorizer",
        )


def _access_log_format_is_json(log_format: str) -> bool:
    # $context variables may stand unquoted for numbers; the result must be a JSON object.
    try:
        return isinstance(json.loads(_CONTEXT_VARIABLE.sub("0", log_format)), dict)
    except json.JSONDecodeError:
        return False


def _stage_access_logging(stage: Resource, config: Config) -> Iterator[Finding]:
    settings = stage.get("accessLogSettings")
    if settings is UNKNOWN:
        return
    destination, log_format = (
        stage.get("accessLogSettings", "destinationArn"),
        stage.get("accessLogSettings", "format"),
    )
    if settings is None or destination is None or log_format is None:
        yield Finding(
            stage,
            "access logging is off: there is no record of who called the API",
            "set accessLogSettings with destinationArn of a managed log group and a JSON format",
        )
    elif isinstance(log_format, str) and not _access_log_format_is_json(log_format):
        yield Finding(
            stage,
            "its access log format is not JSON, so logs cannot be queried by field",
            "write the format as a JSON object of $context variables",
        )


def _stage_throttling(stage: Resource, config: Config) -> Iterator[Finding]:
    defaults = stage.get("defaultRouteSettings")
    if defaults is UNKNOWN:
        return
    missing = [
        field
        for field in ("throttlingBurstLimit", "throttlingRateLimit")
        if stage.get("defaultRouteSettings", field) in (None, 0)
    ]
    if missing:
        yield Finding(
            stage,
            f"default route throttling is not set ({missing}): one caller can exhaust the "
            "account's API and Lambda concurrency",
            "set defaultRouteSettings.throttlingBurstLimit and throttlingRateLimit from the "
            "stack config",
        )


def _cors(api: Resource, config: Config) -> Iterator[Finding]:
    origins = api.get("corsConfiguration", "allowOrigins")
    if isinstance(origins, list) and "*" in origins:
        yield Finding(
            api,
            "its CORS configuration allows every origin",
            "list the portal origins in corsConfiguration.allowOrigins",
        )


POLICIES = [
    ResourceRule(
        name="apigateway-route-authorization",
        description="Every HTTP API route requires authorization, except CORS preflights "
        "(OPTIONS) and the listed routes that verify a signed link themselves.",
        remediation="Set authorizationType 'CUSTOM' or 'JWT' and authorizerId on every route.",
        severity=Severity.CRITICAL,
        resource_types=[ROUTE],
        check=_route_authorization,
        settings=[SIGNED_LINK_ROUTES],
    ),
    ResourceRule(
        name="apigateway-stage-access-logging",
        description="Every stage writes JSON access logs to a log group.",
        remediation="Set accessLogSettings.destinationArn (a log group with retention) and a JSON format.",
        severity=Severity.HIGH,
        resource_types=[STAGE],
        check=_stage_access_logging,
    ),
    ResourceRule(
        name="apigateway-stage-throttling",
        description="Every stage throttles requests by default.",
        remediation="Set defaultRouteSettings.throttlingBurstLimit and throttlingRateLimit.",
        severity=Severity.MEDIUM,
        resource_types=[STAGE],
        check=_stage_throttling,
    ),
    ResourceRule(
        name="apigateway-cors-restricted",
        description="HTTP APIs allow cross-origin requests from named origins only.",
        remediation="List the allowed origins in corsConfiguration.allowOrigins instead of '*'.",
        severity=Severity.MEDIUM,
        resource_types=[API],
        check=_cors,
    ),
]
