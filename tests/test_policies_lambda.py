"""Lambda rules: functions, layers, permissions and the stack rules around them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.rules import ALL_POLICIES
from policies.rules.lambda_ import secret_kind
from tests.test_policies_harness import UNKNOWN, Spec, check_resource, check_stack

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
FUNCTION = "aws:lambda/function:Function"
LAYER = "aws:lambda/layerVersion:LayerVersion"
PERMISSION = "aws:lambda/permission:Permission"
ROLE = "aws:iam/role:Role"
QUEUE = "aws:sqs/queue:Queue"
ACCOUNT = "123456789012"
ENGINE = "securebase-production-analytics-report-engine"
ENGINE_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{ENGINE}"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:securebase-production-analytics-report-jobs"
FAILURES_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:securebase-production-analytics-async-failures"


def function(name: str = ENGINE, **overrides) -> dict:
    """A function as components.api deploys it."""
    return {
        "name": name,
        "role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "runtime": "python3.11",
        "architectures": ["arm64"],
        "handler": "handlers.report_engine.handler",
        "memorySize": 1536,
        "timeout": 300,
        "tracingConfig": {"mode": "Active"},
        "environment": {
            "variables": {
                "ENVIRONMENT": "production",
                "METRICS_TABLE": "securebase-production-metrics",
                "REPORTS_KMS_KEY_ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "REPORT_JOBS_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/securebase-production-analytics-report-jobs",
                "JWT_SECRET_ID": "securebase/production/jwt-signing-key",
                "USAGE_METRIC_NAMES": json.dumps({"api_calls": "ApiCalls", "storage_gb": "StorageBytes"}),
                "CORS_ALLOWED_ORIGINS": "https://portal.securebase.example.com",
            }
        },
        "loggingConfig": {"logFormat": "JSON", "logGroup": f"/aws/lambda/{name}"},
        **overrides,
    }  # fmt: skip


def check(rule: str, resource_type: str, props: dict, **kwargs) -> list[str]:
    return check_resource(POLICIES[rule], resource_type, props, **kwargs)


@pytest.mark.parametrize(
    "rule",
    [
        "lambda-function-runtime",
        "lambda-function-memory-and-timeout",
        "lambda-function-tracing",
        "lambda-function-no-secrets-in-environment",
    ],
)
def test_a_catalogue_function_passes(rule):
    assert check(rule, FUNCTION, function()) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"runtime": "python3.9"}, "runtime 'python3.9' is not supported here"),
        ({"architectures": ["x86_64"]}, "architectures is ['x86_64']"),
        ({"architectures": None}, "architectures is unset (x86_64)"),
    ],
)
def test_runtimes_and_architectures_come_from_the_allow_lists(overrides, problem):
    [message] = check("lambda-function-runtime", FUNCTION, function(**overrides))
    assert problem in message


def test_the_runtime_allow_list_is_config():
    config = {"allowedRuntimes": ["python3.12"], "allowedArchitectures": ["arm64"]}
    assert check("lambda-function-runtime", FUNCTION, function(), config=config) != []


def test_layers_are_built_for_allowed_runtimes():
    layer = {
        "layerName": "reporting",
        "compatibleRuntimes": ["python3.11"],
        "compatibleArchitectures": ["arm64"],
    }
    assert check("lambda-function-runtime", LAYER, layer) == []
    [message] = check(
        "lambda-function-runtime", LAYER, {**layer, "compatibleRuntimes": ["python3.8"]}
    )
    assert "compatibleRuntimes is ['python3.8']" in message


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"memorySize": None}, "memorySize is not set, so Lambda's default applies"),
        ({"timeout": None}, "timeout is not set, so Lambda's default applies"),
        ({"memorySize": 4096}, "memorySize 4096 MB is outside 128-3008 MB"),
        ({"timeout": 1}, "timeout 1 s is outside 3-900 s"),
    ],
)
def test_memory_and_timeout_are_explicit_and_bounded(overrides, problem):
    [message] = check("lambda-function-memory-and-timeout", FUNCTION, function(**overrides))
    assert problem in message


def test_tracing_must_be_active():
    [message] = check(
        "lambda-function-tracing", FUNCTION, function(tracingConfig={"mode": "PassThrough"})
    )
    assert "X-Ray tracing is PassThrough" in message
    assert check("lambda-function-tracing", FUNCTION, function(tracingConfig=None)) != []


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("AWS_KEY", "AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
        ("SIGNING_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "a private key"),
        ("DATABASE_URL", "postgres://app:s3cr3t-pass@db.internal:5432/app", "credentials in a URL"),
        ("OPTIONS", "mode=fast;password=hunter22", "a password, token or key assignment"),
        ("WEBHOOK", "xoxb-123456789012-abcdefghijkl", "a Slack token"),
        ("JWT_SECRET", "hunter2", "a literal value in a variable named like a secret"),
        ("SESSION", "Zk8pQ2x7Lm4Rt9Vb3Nc6Yh1Jd5Gs0Wq8Ea2Ui7Oo", "a long random-looking string"),
    ],
)
def test_secret_looking_values_are_reported_without_echoing_them(name, value, kind):
    props = function(environment={"variables": {"ENVIRONMENT": "production", name: value}})
    [message] = check("lambda-function-no-secrets-in-environment", FUNCTION, props)
    assert f"environment variable {name} holds what looks like {kind}" in message
    assert value not in message


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:securebase/jwt-AbCdEf",
        "securebase/production/jwt-signing-key",
        "/securebase/production/jwt",
    ],
)
def test_a_secret_named_variable_may_hold_a_reference(value):
    assert secret_kind("JWT_SECRET", value) is None


@given(
    st.text(
        alphabet=st.characters(whitelist_categories=("Ll",), whitelist_characters="-_."),
        max_size=80,
    )
)
def test_lowercase_names_and_identifiers_are_never_secrets(value):
    assert secret_kind("METRICS_TABLE", value) is None


def test_unknown_environment_values_are_not_judged():
    props = function(environment={"variables": {"TOKEN_ARN": UNKNOWN}})
    assert check("lambda-function-no-secrets-in-environment", FUNCTION, props) == []


def permission(**overrides) -> dict:
    return {
        "function": ENGINE,
        "action": "lambda:InvokeFunction",
        "principal": "apigateway.amazonaws.com",
        "sourceArn": f"arn:aws:execute-api:us-east-1:{ACCOUNT}:a1b2c3d4e5/*/GET/analytics/schedules",
        **overrides,
    }


def test_a_route_scoped_permission_passes():
    assert check("lambda-invocation-scoped", PERMISSION, permission()) == []
    # During preview the API's execution ARN is unknown: still scoped.
    assert check("lambda-invocation-scoped", PERMISSION, permission(sourceArn=UNKNOWN)) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"principal": "*"}, "it lets any principal ('*') invoke the function"),
        ({"sourceArn": None}, "apigateway.amazonaws.com may invoke the function from any resource"),
        ({"action": "lambda:*"}, "it grants 'lambda:*'"),
        ({"functionUrlAuthType": "NONE"}, "it opens the function URL without authentication"),
    ],
)
def test_invocation_is_never_public(overrides, problem):
    messages = check("lambda-invocation-scoped", PERMISSION, permission(**overrides))
    assert any(problem in message for message in messages), messages


def test_function_urls_require_iam():
    url = "aws:lambda/functionUrl:FunctionUrl"
    assert (
        check(
            "lambda-invocation-scoped",
            url,
            {"functionName": ENGINE, "authorizationType": "AWS_IAM"},
        )
        == []
    )
    [message] = check(
        "lambda-invocation-scoped", url, {"functionName": ENGINE, "authorizationType": "NONE"}
    )
    assert "anyone can call it" in message


# --- stack rules ------------------------------------------------------------------------------


def scheduled_engine(**invoke_config) -> list[Spec]:
    specs = [
        Spec(FUNCTION, "engine", function()),
        Spec(
            "aws:scheduler/schedule:Schedule",
            "schedule",
            {"name": "every-15-minutes", "target": {"arn": ENGINE_ARN}},
            depends_on=["engine"],
        ),
    ]
    if invoke_config:
        specs.append(
            Spec(
                "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
                "engine-async",
                {"functionName": ENGINE, **invoke_config},
                depends_on=["engine"],
            )
        )
    return specs


def test_a_scheduled_function_sends_failures_to_a_queue():
    rule = POLICIES["lambda-async-failure-destination"]
    with_destination = scheduled_engine(
        destinationConfig={"onFailure": {"destination": FAILURES_ARN}}
    )
    assert check_stack(rule, with_destination) == []
    [(name, message)] = check_stack(rule, scheduled_engine())
    assert name == "engine"
    assert "it is invoked asynchronously but a failed event is dropped" in message


def test_a_dead_letter_config_is_an_alternative():
    rule = POLICIES["lambda-async-failure-destination"]
    specs = scheduled_engine()
    specs[0] = Spec(FUNCTION, "engine", function(deadLetterConfig={"targetArn": FAILURES_ARN}))
    assert check_stack(rule, specs) == []


def test_a_synchronous_function_needs_no_failure_destination():
    rule = POLICIES["lambda-async-failure-destination"]
    assert (
        check_stack(
            rule, [Spec(FUNCTION, "query", function("securebase-production-analytics-query"))]
        )
        == []
    )


def test_a_schedule_target_unknown_during_preview_is_not_judged():
    rule = POLICIES["lambda-async-failure-destination"]
    specs = scheduled_engine()
    specs[1] = Spec(specs[1].type, "schedule", {"target": {"arn": UNKNOWN}})
    assert check_stack(rule, specs) == []


def role(name: str) -> Spec:
    return Spec(ROLE, f"{name}-role", {"name": name, "assumeRolePolicy": "{}"})


def test_every_function_has_its_own_role():
    rule = POLICIES["lambda-function-dedicated-role"]
    query = "securebase-production-analytics-query"
    own = [
        Spec(FUNCTION, "engine", function()),
        role(ENGINE),
        Spec(FUNCTION, "query", function(query)),
        role(query),
    ]
    assert check_stack(rule, own) == []
    shared = [
        Spec(FUNCTION, "engine", function()),
        Spec(FUNCTION, "query", function(query, role=f"arn:aws:iam::{ACCOUNT}:role/{ENGINE}")),
        role(ENGINE),
    ]
    found = check_stack(rule, shared)
    assert sorted(name for name, _ in found) == ["engine", "query"]
    assert "it shares role" in found[0][1]
    external = [
        Spec(FUNCTION, "engine", function(role=f"arn:aws:iam::{ACCOUNT}:role/somewhere-else"))
    ]
    [(_, message)] = check_stack(rule, external)
    assert "its role is not created in this stack" in message


def test_roles_are_matched_through_dependencies_when_arns_are_unknown():
    rule = POLICIES["lambda-function-dedicated-role"]
    specs = [
        role(ENGINE),
        Spec(
            FUNCTION,
            "engine",
            function(role=UNKNOWN),
            property_dependencies={"role": [f"{ENGINE}-role"]},
        ),
    ]
    assert check_stack(rule, specs) == []


def queue(name: str, **overrides) -> dict:
    return {"name": name, "sqsManagedSseEnabled": True, **overrides}


def consumer_stack(mapping: dict, jobs: dict) -> list[Spec]:
    return [
        Spec(FUNCTION, "engine", function()),
        Spec(QUEUE, "jobs", jobs),
        Spec(
            "aws:lambda/eventSourceMapping:EventSourceMapping",
            "consumer",
            {"eventSourceArn": QUEUE_ARN, "functionName": ENGINE_ARN, **mapping},
            depends_on=["engine", "jobs"],
        ),
    ]


GOOD_JOBS = queue(
    "securebase-production-analytics-report-jobs",
    visibilityTimeoutSeconds=1800,
    redrivePolicy=json.dumps({"deadLetterTargetArn": f"{QUEUE_ARN}-dlq", "maxReceiveCount": 3}),
)


def test_a_queue_consumer_reports_partial_failures_and_has_a_dlq():
    rule = POLICIES["lambda-event-source-failure-handling"]
    good = consumer_stack({"functionResponseTypes": ["ReportBatchItemFailures"]}, GOOD_JOBS)
    assert check_stack(rule, good) == []
    bad = consumer_stack(
        {}, queue("securebase-production-analytics-report-jobs", visibilityTimeoutSeconds=300)
    )
    found = check_stack(rule, bad)
    assert [name for name, _ in found] == ["consumer", "jobs", "jobs"]
    assert "one failed message makes the whole batch be retried" in found[0][1]
    assert "has no dead-letter queue" in found[1][1]
    assert (
        "its visibility timeout (300 s) is under 6x the timeout of 'engine' (1800 s)" in found[2][1]
    )


def test_the_event_source_is_matched_through_dependencies_when_arns_are_unknown():
    rule = POLICIES["lambda-event-source-failure-handling"]
    specs = consumer_stack(
        {
            "functionResponseTypes": ["ReportBatchItemFailures"],
            "eventSourceArn": UNKNOWN,
            "functionName": UNKNOWN,
        },
        GOOD_JOBS,
    )
    assert check_stack(rule, specs) == []


def test_stream_sources_need_an_on_failure_destination():
    rule = POLICIES["lambda-event-source-failure-handling"]
    stream = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/2026"
    specs = [
        Spec(FUNCTION, "engine", function()),
        Spec(
            "aws:lambda/eventSourceMapping:EventSourceMapping",
            "stream",
            {"eventSourceArn": stream, "functionName": ENGINE},
        ),
    ]
    [(name, message)] = check_stack(rule, specs)
    assert name == "stream"
    assert "records that keep failing are dropped" in message


def test_function_url_cors_names_its_origins():
    url = "aws:lambda/functionUrl:FunctionUrl"
    props = {
        "functionName": ENGINE,
        "authorizationType": "AWS_IAM",
        "cors": {"allowOrigins": ["*"]},
    }
    [message] = check("lambda-invocation-scoped", url, props)
    assert "the function URL's CORS configuration allows every origin" in message


def test_a_queue_consumer_caps_its_concurrency():
    rule = POLICIES["lambda-event-source-bounded-concurrency"]
    capped = {"scalingConfig": {"maximumConcurrency": 2}}
    assert check_stack(rule, consumer_stack(capped, GOOD_JOBS)) == []
    [(name, message)] = check_stack(rule, consumer_stack({}, GOOD_JOBS))
    assert name == "consumer"
    assert "it may run up to 1,250 invocations at once" in message
    assert "Fix: set scalingConfig.maximumConcurrency (2 to 1000)" in message


def test_a_queue_consumer_never_outruns_the_functions_reserved_concurrency():
    rule = POLICIES["lambda-event-source-bounded-concurrency"]
    shards = {"scalingConfig": {"maximumConcurrency": 20}}
    reserved = [
        Spec(FUNCTION, "engine", function(reservedConcurrentExecutions=reserve))
        for reserve in (20, 5)
    ]
    matching, short = ([spec, *consumer_stack(shards, GOOD_JOBS)[1:]] for spec in reserved)
    assert check_stack(rule, matching) == []
    [(name, message)] = check_stack(rule, short)
    assert name == "consumer"
    assert (
        "its maximum concurrency (20) is above the reserved concurrency of 'engine' (5)" in message
    )
    assert "each counts towards the queue's maxReceiveCount" in message


def test_concurrency_unknown_during_preview_is_not_judged():
    rule = POLICIES["lambda-event-source-bounded-concurrency"]
    unknown = {"scalingConfig": {"maximumConcurrency": UNKNOWN}}
    assert check_stack(rule, consumer_stack(unknown, GOOD_JOBS)) == []
    streams = [
        Spec(FUNCTION, "engine", function()),
        Spec(
            "aws:lambda/eventSourceMapping:EventSourceMapping",
            "stream",
            {"eventSourceArn": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/1"},
        ),
    ]
    assert check_stack(rule, streams) == []
