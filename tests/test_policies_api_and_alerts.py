"""API Gateway v2, log group, alarm and SNS rules."""

from __future__ import annotations

import json

import jsonschema
import pytest

from handlers.shared.routes import PREFLIGHT_ROUTE, UNAUTHENTICATED_ROUTE_KEYS
from policies.rules import ALL_POLICIES
from policy_check.engine import CONFIG_DIR, reconcile
from tests.test_policies_harness import UNKNOWN, Spec, check_resource, check_stack

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
ROUTE = "aws:apigatewayv2/route:Route"
STAGE = "aws:apigatewayv2/stage:Stage"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:securebase-production-analytics-alerts"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/alerts"


def check(rule: str, resource_type: str, props: dict, **kwargs) -> list[str]:
    return check_resource(POLICIES[rule], resource_type, props, **kwargs)


def route(key: str = "GET /analytics/usage", **overrides) -> dict:
    return {
        "apiId": "a1b2c3d4e5",
        "routeKey": key,
        "target": "integrations/abc",
        "authorizationType": "CUSTOM",
        "authorizerId": "auth1",
        **overrides,
    }


def test_authorized_routes_and_preflight_pass():
    assert check("apigateway-route-authorization", ROUTE, route()) == []
    preflight = route("OPTIONS /analytics/usage", authorizationType="NONE", authorizerId=None)
    assert check("apigateway-route-authorization", ROUTE, preflight) == []
    # The authorizer's id is unknown until it exists.
    assert check("apigateway-route-authorization", ROUTE, route(authorizerId=UNKNOWN)) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"authorizationType": "NONE", "authorizerId": None}, "has authorizationType NONE: anyone can call it"),
        ({"authorizationType": None, "authorizerId": None}, "has authorizationType NONE: anyone can call it"),
        ({"authorizerId": None}, "is CUSTOM but names no authorizer"),
    ],
)  # fmt: skip
def test_every_other_route_is_authorized(overrides, problem):
    [message] = check("apigateway-route-authorization", ROUTE, route(**overrides), name="usage")
    assert message.startswith(
        f"aws:apigatewayv2/route:Route 'usage': route 'GET /analytics/usage' {problem}"
    )


def test_the_default_route_needs_authorization_too():
    assert (
        check("apigateway-route-authorization", ROUTE, route("$default", authorizationType="NONE"))
        != []
    )


UNSUBSCRIBE = "GET /links/unsubscribe"
SIGNED_LINKS = {"signedLinkRoutes": [UNSUBSCRIBE]}


def test_a_listed_signed_link_route_may_go_without_the_authorizer():
    unauthenticated = route(UNSUBSCRIBE, authorizationType="NONE", authorizerId=None)
    assert (
        check("apigateway-route-authorization", ROUTE, unauthenticated, config=SIGNED_LINKS) == []
    )
    # Listing one route exempts exactly that method and path.
    for key in ("POST /links/unsubscribe", "GET /links/unsubscribe/x", "GET /links", "$default"):
        [message] = check(
            "apigateway-route-authorization",
            ROUTE,
            route(key, authorizationType="NONE", authorizerId=None),
            config=SIGNED_LINKS,
        )
        assert f"route {key!r} has authorizationType NONE: anyone can call it" in message
    # Unlisted, the same route is a violation.
    assert check("apigateway-route-authorization", ROUTE, unauthenticated) != []


@pytest.mark.parametrize("key", ["ANY /links/{proxy+}", "$default", "OPTIONS /links", "/links"])
def test_a_catch_all_cannot_be_listed_as_a_signed_link_route(key):
    config = {"apigateway-route-authorization": {"signedLinkRoutes": [key]}}
    with pytest.raises(jsonschema.ValidationError):
        reconcile(ALL_POLICIES, config)


def test_the_stacks_list_exactly_the_signed_link_routes_of_the_route_table():
    signed_links = [key for key in UNAUTHENTICATED_ROUTE_KEYS if key != PREFLIGHT_ROUTE.key]
    for path in sorted(CONFIG_DIR.glob("*.json")):
        config = json.loads(path.read_text())["apigateway-route-authorization"]
        assert config == {"signedLinkRoutes": signed_links}, path.name


ACCESS_FORMAT = json.dumps({"requestId": "$context.requestId", "status": "$context.status"})


def stage(**overrides) -> dict:
    return {
        "apiId": "a1b2c3d4e5",
        "name": "$default",
        "autoDeploy": True,
        "accessLogSettings": {
            "destinationArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/access",
            "format": ACCESS_FORMAT,
        },
        "defaultRouteSettings": {"throttlingBurstLimit": 400, "throttlingRateLimit": 200},
        **overrides,
    }


def test_a_logged_throttled_stage_passes():
    assert check("apigateway-stage-access-logging", STAGE, stage()) == []
    assert check("apigateway-stage-throttling", STAGE, stage()) == []


def test_access_logs_are_required_and_json():
    [message] = check("apigateway-stage-access-logging", STAGE, stage(accessLogSettings=None))
    assert "access logging is off" in message
    clf = stage(
        accessLogSettings={
            "destinationArn": "arn:x",
            "format": "$context.requestId $context.status",
        }
    )
    [message] = check("apigateway-stage-access-logging", STAGE, clf)
    assert "its access log format is not JSON" in message
    # Numbers may stand unquoted: the logged line is still JSON.
    numeric = stage(
        accessLogSettings={"destinationArn": "arn:x", "format": '{"status":$context.status}'}
    )
    assert check("apigateway-stage-access-logging", STAGE, numeric) == []
    unknown = stage(accessLogSettings={"destinationArn": UNKNOWN, "format": ACCESS_FORMAT})
    assert check("apigateway-stage-access-logging", STAGE, unknown) == []


def test_stages_throttle_by_default():
    [message] = check(
        "apigateway-stage-throttling",
        STAGE,
        stage(defaultRouteSettings={"throttlingRateLimit": 200}),
    )
    assert "default route throttling is not set (['throttlingBurstLimit'])" in message


def test_cors_names_its_origins():
    api = "aws:apigatewayv2/api:Api"
    named = {
        "protocolType": "HTTP",
        "corsConfiguration": {"allowOrigins": ["https://portal.securebase.example.com"]},
    }
    assert check("apigateway-cors-restricted", api, named) == []
    [message] = check(
        "apigateway-cors-restricted", api, {**named, "corsConfiguration": {"allowOrigins": ["*"]}}
    )
    assert "allows every origin" in message


def test_log_groups_keep_logs_exactly_as_configured():
    group = {"name": "/aws/lambda/securebase-production-analytics-query", "retentionInDays": 30}
    assert check("logs-group-retention", LOG_GROUP, group) == []
    [message] = check(
        "logs-group-retention", LOG_GROUP, group, config={"retentionDays": 14}, name="query-logs"
    )
    assert message == (
        "aws:cloudwatch/logGroup:LogGroup 'query-logs': retention is 30 days, not 14 days. "
        "Fix: set retentionInDays=14 (the stack's logRetentionDays)"
    )
    [message] = check("logs-group-retention", LOG_GROUP, {**group, "retentionInDays": None})
    assert "retention is unset (logs are kept forever), not 30 days" in message


def test_log_group_encryption_with_a_customer_key():
    group = {"name": "/aws/lambda/x", "retentionInDays": 30}
    assert check("logs-group-kms-encryption", LOG_GROUP, {**group, "kmsKeyId": KEY_ARN}) == []
    assert check("logs-group-kms-encryption", LOG_GROUP, {**group, "kmsKeyId": UNKNOWN}) == []
    assert check("logs-group-kms-encryption", LOG_GROUP, group) != []


def test_alarms_notify_someone():
    alarm = {"name": "errors", "actionsEnabled": True, "alarmActions": [TOPIC_ARN]}
    assert check("cloudwatch-alarm-actions", ALARM, alarm) == []
    assert check("cloudwatch-alarm-actions", ALARM, {**alarm, "alarmActions": [UNKNOWN]}) == []
    messages = check(
        "cloudwatch-alarm-actions", ALARM, {**alarm, "actionsEnabled": False, "alarmActions": []}
    )
    assert [m.split(": ", 1)[1].split(".")[0] for m in messages] == [
        "its actions are disabled: it changes state without telling anyone",
        "it has no alarm action: nobody is notified when it fires",
    ]


def test_topics_use_a_customer_managed_key():
    assert check("sns-topic-encryption", TOPIC, {"name": "alerts", "kmsMasterKeyId": KEY_ARN}) == []
    assert check("sns-topic-encryption", TOPIC, {"name": "alerts", "kmsMasterKeyId": UNKNOWN}) == []
    [message] = check("sns-topic-encryption", TOPIC, {"name": "alerts"})
    assert "messages are not encrypted at rest" in message
    [message] = check(
        "sns-topic-encryption", TOPIC, {"name": "alerts", "kmsMasterKeyId": "alias/aws/sns"}
    )
    assert "CloudWatch alarms and other services cannot use" in message


def topic_policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


TLS_DENY = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "sns:Publish",
    "Resource": TOPIC_ARN,
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
ALARMS_PUBLISH = {
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": "sns:Publish",
    "Resource": TOPIC_ARN,
}


def alerts(policy: object) -> list[Spec]:
    return [
        Spec(TOPIC, "alerts", {"name": "securebase-production-analytics-alerts", "kmsMasterKeyId": KEY_ARN}),
        Spec("aws:sns/topicPolicy:TopicPolicy", "alerts-policy", {"arn": TOPIC_ARN, "policy": policy}, depends_on=["alerts"]),
    ]  # fmt: skip


def test_topic_policies_deny_publishing_without_tls():
    rule = POLICIES["sns-topic-tls-only"]
    assert check_stack(rule, alerts(topic_policy(ALARMS_PUBLISH, TLS_DENY))) == []
    [(name, message)] = check_stack(rule, alerts(topic_policy(ALARMS_PUBLISH)))
    assert name == "alerts"
    assert "its policy does not deny publishing without TLS" in message
    assert check_stack(rule, alerts(UNKNOWN)) == []
    assert [n for n, _ in check_stack(rule, alerts(None)[:1])] == ["alerts"]


@pytest.mark.parametrize(
    ("protocol", "needs_dlq"), [("https", True), ("lambda", True), ("sqs", True), ("email", False)]
)
def test_subscriptions_of_programs_have_a_dead_letter_queue(protocol, needs_dlq):
    subscription = "aws:sns/topicSubscription:TopicSubscription"
    props = {"topic": TOPIC_ARN, "protocol": protocol, "endpoint": "x"}
    assert bool(check("sns-subscription-dead-letter-queue", subscription, props)) == needs_dlq
    with_dlq = {
        **props,
        "redrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq"}),
    }
    assert check("sns-subscription-dead-letter-queue", subscription, with_dlq) == []
