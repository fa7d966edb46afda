"""The deployment validator against a deployment built in moto to match a stack's outputs.

Every resource is built from the same definitions the program deploys
(tables, function catalogue, routes, bucket rules, the stack's config file),
so a healthy build must pass every check; each failing case breaks one thing
and must show up as exactly that failure while every other check still runs.

Where moto differs from AWS the build works around it deliberately:
- DynamoDB: moto ignores SSESpecification on UpdateTable, so tables get it at
  CreateTable (from `create_table_request`, the request `create_tables` sends).
- SNS: moto confirms every subscription at once (no PendingConfirmation), so
  the pending case rewrites the ListSubscriptionsByTopic answer.
- S3: moto's PutBucketLogging reads the log bucket's policy statement by
  statement and fails on a `Principal: "*"` before it reaches the log-delivery
  one, so the log bucket gets its policy with that statement first (the order
  of statements means nothing to S3).
- CloudWatch Logs: moto has no DisassociateKmsKey, so a log group loses its
  key by being created again.
The smoke test talks to a local HTTP server standing in for the API.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from components import bucket_rules
from components.api import ANALYTICS_SCHEDULES
from components.functions import (
    ALL_FUNCTIONS,
    ARCHITECTURE,
    PHASE2_MONITOR,
    RUNTIME,
    reserved_concurrency,
)
from components.phase2_monitor import SCHEDULE_EXPRESSION, monitor_config, schedule_window
from handlers.authorizer import Authorizer, SecretKeys, TokenRejected, TokenSettings
from handlers.shared.routes import CUSTOM, DEPLOYED_ROUTES
from handlers.shared.tables import ALL_TABLES, create_table_request
from ops import validate_deployment
from ops.checks import aws as aws_view
from ops.checks import expectations
from ops.checks.aws import AwsView
from ops.checks.base import CheckResult, Status
from ops.checks.expectations import Expectations, load_expectations, load_stack_settings
from ops.checks.operations import schedule_checks
from ops.checks.outputs import StackOutputs
from ops.checks.report import summarize, table
from ops.checks.smoke_token import MintedToken
from tests.pulumi_program import STACKS, committed_deployment, runbook_stack_file

REGION = "us-east-1"
ACCOUNT = "123456789012"
SMOKE_TOKEN = "smoke-test-token"
# The moment the deployment is built and validated: both read this clock, so
# the Phase 2 schedule's expected state never depends on the day the suite runs.
NOW = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)
SMOKE_BODY = {"customer_id": "smoke", "generated_at": "2026-11-23T14:00:00Z"}
# A few of the program's alarms, one of them on a Phase 2 resource.
ALARMS = (
    "analytics-query-errors",
    "analytics-aggregator-not-running",
    "analytics-api-5xx-rate",
    "phase2-aurora-cpu",
)
REPORT_JOBS_DLQ = "analytics-report-jobs-dlq"
SHARDS_DLQ = "analytics-aggregator-shards-dlq"
ASYNC_FAILURES = "analytics-async-failures"
EMAIL_FEEDBACK_DLQ = "analytics-email-feedback-dlq"
DEAD_LETTER_QUEUES = (REPORT_JOBS_DLQ, SHARDS_DLQ, ASYNC_FAILURES, EMAIL_FEEDBACK_DLQ)
# moto resets boto3's default session on every mock_aws(); one session kept for
# the module loads the service models once.
SESSION = boto3.session.Session()


PORTALS = ("https://portal.staging.securebase.example.com", "https://portal.securebase.example.com")


def only_the_given_token(authorization: str) -> bool:
    return authorization == f"Bearer {SMOKE_TOKEN}"


class FakeApi(BaseHTTPRequestHandler):
    """API Gateway's answers as the smoke test sees them: 401 without a token."""

    broken_paths: set[str] = set()
    # Whether the API lets an `Authorization` header in: by default exactly the given token.
    accepts = staticmethod(only_the_given_token)
    # Origins whose preflights are allowed: each stack's portal.
    cors_origins: tuple[str, ...] = PORTALS

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        if self.headers.get("Origin") in self.cors_origins:
            self.send_header("Access-Control-Allow-Origin", self.headers["Origin"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if "Authorization" not in self.headers:
            self._answer(401, {"message": "Unauthorized"})
        elif not FakeApi.accepts(self.headers["Authorization"]):
            self._answer(403, {"message": "Forbidden"})
        elif self.path in self.broken_paths:
            self._answer(500, {"error": "Internal error", "code": "internal_error"})
        else:
            self._answer(200, SMOKE_BODY)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on the validator's output, not the server's."""


@pytest.fixture(scope="module", autouse=True)
def stack_files_after_the_runbook(tmp_path_factory) -> Iterator[Path]:
    """The validator reads the stack files as the runbook leaves them: secrets encrypted."""
    root = tmp_path_factory.mktemp("repository")
    for stack in STACKS:
        (root / f"Pulumi.{stack}.yaml").write_text(runbook_stack_file(stack))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(expectations, "REPO_ROOT", root)
        yield root


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def healthy_api() -> Iterator[None]:
    FakeApi.broken_paths = set()
    yield
    FakeApi.broken_paths = set()
    FakeApi.cors_origins = PORTALS
    FakeApi.accepts = staticmethod(only_the_given_token)


@dataclass
class Deployment:
    stack: str
    outputs: dict[str, Any]
    clients: dict[str, Any] = field(default_factory=dict)
    logs_key_arn: str = ""

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = SESSION.client(service, region_name=REGION)
        return self.clients[service]

    def name(self, what: str) -> str:
        return f"securebase-{self.stack}-{what}"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def build_deployment(stack: str, api_url: str) -> Deployment:
    """What `pulumi up` leaves behind for `stack`, with the outputs it exports."""
    settings = load_stack_settings(stack)
    production = settings.is_production
    deployment = Deployment(stack, outputs={})
    d = deployment
    outputs = d.outputs

    dynamodb = d.client("dynamodb")
    tables = {}
    for spec in ALL_TABLES:
        name = d.name(spec.name)
        dynamodb.create_table(
            **create_table_request(spec, name),
            SSESpecification={"Enabled": True},
            DeletionProtectionEnabled=production,
        )
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        if not spec.is_cache:
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        tables[spec.name] = name
    outputs["table_names"] = tables
    outputs["table_arns"] = {
        key: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}" for key, name in tables.items()
    }

    kms = d.client("kms")
    key_arn = None
    if production:
        key_arn = _rotating_key(kms, "analytics data")
    log_bucket = _access_log_bucket(d, settings.log_retention_days)
    outputs["access_log_bucket"] = log_bucket
    outputs["reports_bucket"] = _secure_bucket(
        d, d.name(f"reports-{ACCOUNT}"), settings.report_retention_days, key_arn, log_bucket
    )
    outputs["monitor_bucket"] = _secure_bucket(
        d, d.name(f"phase2-monitor-{ACCOUNT}"), 30, key_arn, log_bucket
    )

    sqs = d.client("sqs")
    dead_letter_urls = {
        d.name(queue): sqs.create_queue(QueueName=d.name(queue))["QueueUrl"]
        for queue in DEAD_LETTER_QUEUES
    }
    outputs["dead_letter_queue_urls"] = dead_letter_urls
    for output, queue, dead_letter, receives in (
        ("report_jobs_queue_url", "analytics-report-jobs", REPORT_JOBS_DLQ, 3),
        (
            "aggregator_shards_queue_url",
            "analytics-aggregator-shards",
            SHARDS_DLQ,
            settings.aggregator.shard_max_attempts,
        ),
    ):
        outputs[output] = sqs.create_queue(
            QueueName=d.name(queue),
            Attributes={"RedrivePolicy": _redrive(d, dead_letter, receives)},
        )["QueueUrl"]

    lambda_ = d.client("lambda")
    layers = {
        layer: lambda_.publish_layer_version(
            LayerName=d.name(f"analytics-{layer}"),
            Content={"ZipFile": _zip()},
            CompatibleRuntimes=[RUNTIME],
            CompatibleArchitectures=[ARCHITECTURE],
        )["LayerVersionArn"]
        for layer in ("reporting", "auth")
    }
    outputs["layer_arns"] = layers

    iam = d.client("iam")
    functions, log_groups = {}, {}
    for spec in ALL_FUNCTIONS:
        name = spec.function_name(f"securebase-{stack}")
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=LAMBDA_TRUST)
        lambda_.create_function(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=role["Role"]["Arn"],
            Handler=spec.handler,
            Code={"ZipFile": _zip()},
            Architectures=[ARCHITECTURE],
            MemorySize=spec.memory_mb,
            Timeout=spec.timeout_seconds,
            Layers=[layers[layer] for layer in spec.layers],
            TracingConfig={"Mode": "Active"},
            Environment={"Variables": {"ENVIRONMENT": stack}},
        )
        if spec.asynchronous:
            lambda_.put_function_event_invoke_config(
                FunctionName=name,
                MaximumEventAgeInSeconds=3600,
                DestinationConfig={"OnFailure": {"Destination": _queue_arn(d, ASYNC_FAILURES)}},
            )
        reserved = reserved_concurrency(spec, settings)
        if reserved is not None:
            lambda_.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=reserved
            )
        functions[spec.key] = name
        log_groups[spec.key] = spec.log_group_name(f"securebase-{stack}")
    log_groups["api-access"] = f"/aws/apigateway/{d.name('analytics-api-access')}"
    d.logs_key_arn = _rotating_key(kms, "analytics log groups")
    for group in log_groups.values():
        _log_group(d, group, settings.log_retention_days, d.logs_key_arn)
    outputs["function_names"] = functions
    outputs["log_group_names"] = log_groups

    outputs["api_id"] = _http_api(
        d, settings.api_throttle_rate_limit, settings.api_throttle_burst_limit
    )
    outputs["api_url"] = api_url

    scheduler = d.client("scheduler")
    window = schedule_window(settings.phase2.window_start, settings.phase2.window_days, NOW)
    schedules = {
        **{
            s.function.key: (d.name(f"analytics-{s.name_suffix}"), s.expression, True)
            for s in ANALYTICS_SCHEDULES
        },
        PHASE2_MONITOR.key: (d.name("phase2-monitor"), SCHEDULE_EXPRESSION, window.enabled),
    }
    for key, (name, expression, enabled) in schedules.items():
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression=expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            State="ENABLED" if enabled else "DISABLED",
            Target={
                "Arn": _function_arn(functions[key]),
                "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/{name}-scheduler",
                "DeadLetterConfig": {"Arn": _queue_arn(d, ASYNC_FAILURES)},
                "RetryPolicy": {"MaximumRetryAttempts": 2},
            },
        )
    outputs["schedule_names"] = {key: name for key, (name, _, _) in schedules.items()}

    sns = d.client("sns")
    topic = sns.create_topic(
        Name=d.name("analytics-alerts"), Attributes={"KmsMasterKeyId": "alias/aws/sns"}
    )["TopicArn"]
    for email in settings.alert_emails:
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=email)
    outputs["alerts_topic_arn"] = topic

    cloudwatch = d.client("cloudwatch")
    alarm_names = [d.name(alarm) for alarm in ALARMS]
    for alarm in alarm_names:
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Statistic="Sum",
            Period=3600,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
            AlarmActions=[topic],
        )
    outputs["alarm_names"] = alarm_names

    dashboards = {"analytics": d.name("analytics"), "phase2": d.name("phase2")}
    for name in dashboards.values():
        cloudwatch.put_dashboard(
            DashboardName=name,
            DashboardBody=json.dumps(
                {"widgets": [{"type": "text", "properties": {"markdown": name}}]}
            ),
        )
    outputs["dashboard_names"] = dashboards
    outputs["monitor_config"] = monitor_config(settings.phase2)
    return deployment


def _rotating_key(kms: Any, description: str) -> str:
    key_arn = kms.create_key(Description=description)["KeyMetadata"]["Arn"]
    kms.enable_key_rotation(KeyId=key_arn)
    return key_arn


def _log_group(d: Deployment, name: str, retention_days: int, key_arn: str | None) -> None:
    logs = d.client("logs")
    logs.create_log_group(logGroupName=name, **({"kmsKeyId": key_arn} if key_arn else {}))
    logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)


def _access_log_bucket(d: Deployment, expiration_days: int) -> str:
    """The log bucket: the SecureBucket rules with SSE-S3, letting S3 log delivery in."""
    name = d.name(f"access-logs-{ACCOUNT}")
    _bucket_with_rules(d.client("s3"), name, expiration_days, None)
    _let_log_delivery_in(d, name)
    return name


def _let_log_delivery_in(d: Deployment, log_bucket: str) -> None:
    policy = json.loads(
        bucket_rules.access_log_bucket_policy(f"arn:aws:s3:::{log_bucket}", ACCOUNT, d.name("*"))
    )
    policy["Statement"].reverse()
    d.client("s3").put_bucket_policy(Bucket=log_bucket, Policy=json.dumps(policy))


def _secure_bucket(
    d: Deployment, name: str, expiration_days: int, key_arn: str | None, log_bucket: str
) -> str:
    """A bucket with the SecureBucket rules (components.bucket_rules), logging its access."""
    s3 = d.client("s3")
    _bucket_with_rules(s3, name, expiration_days, key_arn)
    s3.put_bucket_policy(Bucket=name, Policy=bucket_rules.tls_only_policy(f"arn:aws:s3:::{name}"))
    _log_access(d, name, log_bucket)
    return name


def _log_access(d: Deployment, bucket: str, log_bucket: str) -> None:
    d.client("s3").put_bucket_logging(
        Bucket=bucket,
        BucketLoggingStatus={
            "LoggingEnabled": {
                "TargetBucket": log_bucket,
                "TargetPrefix": bucket_rules.access_log_prefix(bucket),
            }
        },
    )


def _bucket_with_rules(s3: Any, name: str, expiration_days: int, key_arn: str | None) -> None:
    s3.create_bucket(Bucket=name)
    default: dict[str, Any] = (
        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
        if key_arn
        else {"SSEAlgorithm": bucket_rules.ACCESS_LOG_ENCRYPTION}
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bool(key_arn)}
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=name, PublicAccessBlockConfiguration=bucket_rules.PUBLIC_ACCESS_BLOCK
    )
    s3.put_bucket_ownership_controls(
        Bucket=name,
        OwnershipControls={"Rules": [{"ObjectOwnership": bucket_rules.OBJECT_OWNERSHIP}]},
    )
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={"Rules": [bucket_rules.lifecycle_rule(expiration_days)]},
    )


def _http_api(d: Deployment, rate_limit: float, burst_limit: int) -> str:
    """The HTTP API: authorizer, one integration per function, every route, the stage."""
    gateway, lambda_ = d.client("apigatewayv2"), d.client("lambda")
    functions = d.outputs["function_names"]
    api_id = gateway.create_api(Name=d.name("analytics-api"), ProtocolType="HTTP")["ApiId"]
    authorizer_id = gateway.create_authorizer(
        ApiId=api_id,
        Name="jwt",
        AuthorizerType="REQUEST",
        AuthorizerPayloadFormatVersion="2.0",
        EnableSimpleResponses=True,
        IdentitySource=["$request.header.Authorization"],
        AuthorizerUri=_invoke_uri(functions["authorizer"]),
    )["AuthorizerId"]
    integrations = {
        key: gateway.create_integration(
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationUri=_function_arn(functions[key]),
            PayloadFormatVersion="2.0",
        )["IntegrationId"]
        for key in sorted({route.function for route in DEPLOYED_ROUTES})
    }
    for route in DEPLOYED_ROUTES:
        authorizer = {"AuthorizerId": authorizer_id} if route.authorization == "CUSTOM" else {}
        gateway.create_route(
            ApiId=api_id,
            RouteKey=route.key,
            AuthorizationType=route.authorization,
            Target=f"integrations/{integrations[route.function]}",
            **authorizer,
        )
    access_logs = d.outputs["log_group_names"]["api-access"]
    gateway.create_stage(
        ApiId=api_id,
        StageName="$default",
        AutoDeploy=True,
        AccessLogSettings={
            "DestinationArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{access_logs}",
            "Format": '{"requestId":"$context.requestId","status":"$context.status"}',
        },
        DefaultRouteSettings={
            "ThrottlingRateLimit": rate_limit,
            "ThrottlingBurstLimit": burst_limit,
        },
    )
    for key in ("authorizer", *integrations):
        lambda_.add_permission(
            FunctionName=functions[key],
            StatementId="api-gateway-invoke",
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/*",
        )
    return api_id


def _function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def _invoke_uri(function_name: str) -> str:
    return (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
        f"{_function_arn(function_name)}/invocations"
    )


def _redrive(d: Deployment, dead_letter: str, receives: int) -> str:
    return json.dumps(
        {"deadLetterTargetArn": _queue_arn(d, dead_letter), "maxReceiveCount": str(receives)}
    )


def _shard_receives(receives: int) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        d.client("sqs").set_queue_attributes(
            QueueUrl=d.outputs["aggregator_shards_queue_url"],
            Attributes={"RedrivePolicy": _redrive(d, SHARDS_DLQ, receives)},
        )

    return change


def _queue_arn(d: Deployment, queue: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{d.name(queue)}"


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    @property
    def checks(self) -> list[dict[str, str]]:
        return self.report["checks"]

    def failures(self) -> dict[str, str]:
        return {c["check"]: c["detail"] for c in self.checks if c["status"] == "FAIL"}


def validate(
    deployment: Deployment,
    tmp_path: Path,
    *extra: str,
    token: str = SMOKE_TOKEN,
    clock: Callable[[], dt.datetime] = lambda: NOW,
) -> Run:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(deployment.outputs))
    argv = ["--stack", deployment.stack, "--outputs", str(outputs), "--json", "--timeout", "5"]
    # An empty --token also overrides a SMOKE_TEST_TOKEN in the developer's shell.
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        exit_code = validate_deployment.main([*argv, "--token", token, *extra], clock=clock)
    return Run(exit_code, stdout.getvalue())


@dataclass(frozen=True)
class World:
    staging: Deployment
    production: Deployment


@pytest.fixture(scope="module")
def world(api_url: str) -> Iterator[World]:
    """Both stacks in one mocked account (their names never collide), built once.

    Tests that break something repair it before the next test runs.
    """
    with mock_aws():
        yield World(build_deployment("staging", api_url), build_deployment("production", api_url))


@pytest.fixture
def staging(world: World) -> Deployment:
    return world.staging


@pytest.fixture(scope="module")
def healthy_staging(world: World, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return validate(world.staging, tmp_path_factory.mktemp("healthy"))


def test_a_healthy_staging_deployment_passes_every_check(healthy_staging: Run) -> None:
    run = healthy_staging

    assert run.exit_code == 0
    assert run.failures() == {}
    assert {c["status"] for c in run.checks} == {"PASS"}
    assert run.report["ok"] is True
    assert len(run.checks) >= 40
    # Every group of the issue is covered, for every resource the program defines.
    names = [c["check"] for c in run.checks]
    assert sum(n.startswith("table ") for n in names) == 5 * 3 + 4 + 4  # TTL x4, PITR x4
    assert sum(n.startswith("function ") and n.endswith(": active") for n in names) == len(
        ALL_FUNCTIONS
    )
    assert sum(n.startswith("route ") for n in names) == len(DEPLOYED_ROUTES)
    # Two checks per GET route behind the authorizer, and the preflight.
    assert sum(c["group"] == "smoke" for c in run.checks) == 2 * len(SMOKE_ROUTES) + 1 == 11
    # Every bucket but the log bucket logs its access there; every log group has the key.
    assert [n for n in names if n.endswith(": access logs to the log bucket")] == [
        "bucket reports: access logs to the log bucket",
        "bucket monitor: access logs to the log bucket",
    ]
    assert {
        "bucket access-logs: SSE-S3 encryption",
        "bucket access-logs: S3 log delivery allowed for this account",
        "bucket access-logs: does not log its own access",
    } <= set(names)
    assert sum(n.endswith(": encrypted with a rotating customer managed key") for n in names) == (
        len(ALL_FUNCTIONS) + 1
    )


def test_a_healthy_production_deployment_passes_the_production_only_checks(
    world: World, healthy_staging: Run, tmp_path: Path
) -> None:
    run = validate(world.production, tmp_path)

    assert run.exit_code == 0, run.failures()
    details = {c["check"]: c["detail"] for c in run.checks}
    assert details["table metrics: deletion protection"] == "enabled"
    assert details["bucket reports: default encryption"].startswith("aws:kms with arn:aws:kms:")
    assert details["bucket reports: KMS key rotation"].startswith("automatic rotation on")
    # Production adds deletion protection (5 tables) and key rotation (2 buckets).
    assert len(run.checks) == len(healthy_staging.checks) + 7


def test_the_table_output_is_aligned_with_a_summary_line(
    staging: Deployment, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(staging.outputs))
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        exit_code = validate_deployment.main(
            ["--stack", "staging", "--outputs", str(outputs), "--token", SMOKE_TOKEN],
            clock=lambda: NOW,
        )

    lines = stdout.getvalue().splitlines()
    assert exit_code == 0
    assert lines[0].split() == ["STATUS", "CHECK", "DETAIL"]
    detail_column = lines[0].index("DETAIL")
    assert all(line[detail_column - 2 : detail_column] == "  " for line in lines[1:-2])
    assert lines[-2] == ""
    assert lines[-1].startswith("OK: staging: ")
    assert lines[-1].endswith(" passed, 0 failed, 0 warnings, 0 skipped")


@dataclass(frozen=True)
class Breakage:
    """Something wrong with a deployment, the one check that must catch it, and the fix."""

    check: str
    detail: str
    apply: Callable[[Deployment], None]
    repair: Callable[[Deployment], None]


def _point_in_time_recovery(enabled: bool) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        d.client("dynamodb").update_continuous_backups(
            TableName=d.name("metrics"),
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled},
        )

    return change


def _drop_tls_policy(d: Deployment) -> None:
    d.client("s3").delete_bucket_policy(Bucket=d.outputs["reports_bucket"])


def _restore_tls_policy(d: Deployment) -> None:
    bucket = d.outputs["reports_bucket"]
    d.client("s3").put_bucket_policy(
        Bucket=bucket, Policy=bucket_rules.tls_only_policy(f"arn:aws:s3:::{bucket}")
    )


def _stop_access_logging(d: Deployment) -> None:
    d.client("s3").put_bucket_logging(Bucket=d.outputs["reports_bucket"], BucketLoggingStatus={})


def _restore_access_logging(d: Deployment) -> None:
    _log_access(d, d.outputs["reports_bucket"], d.outputs["access_log_bucket"])


def _keep_log_delivery_out(d: Deployment) -> None:
    log_bucket = d.outputs["access_log_bucket"]
    d.client("s3").put_bucket_policy(
        Bucket=log_bucket, Policy=bucket_rules.tls_only_policy(f"arn:aws:s3:::{log_bucket}")
    )


def _restore_log_delivery(d: Deployment) -> None:
    _let_log_delivery_in(d, d.outputs["access_log_bucket"])


def _query_log_group_key(encrypted: bool) -> Callable[[Deployment], None]:

    def change(d: Deployment) -> None:
        group = d.outputs["log_group_names"]["query"]
        d.client("logs").delete_log_group(logGroupName=group)
        retention = load_stack_settings(d.stack).log_retention_days
        _log_group(d, group, retention, d.logs_key_arn if encrypted else None)

    return change


def _query_runtime(runtime: str) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        d.client("lambda").update_function_configuration(
            FunctionName=d.outputs["function_names"]["query"], Runtime=runtime
        )

    return change


COSTS_ROUTE = "GET /analytics/costs"


def _delete_costs_route(d: Deployment) -> None:
    gateway, api_id = d.client("apigatewayv2"), d.outputs["api_id"]
    route = next(
        r for r in gateway.get_routes(ApiId=api_id)["Items"] if r["RouteKey"] == COSTS_ROUTE
    )
    gateway.delete_route(ApiId=api_id, RouteId=route["RouteId"])


def _recreate_costs_route(d: Deployment) -> None:
    gateway, api_id = d.client("apigatewayv2"), d.outputs["api_id"]
    usage = next(
        r
        for r in gateway.get_routes(ApiId=api_id)["Items"]
        if r["RouteKey"] == "GET /analytics/usage"
    )
    gateway.create_route(
        ApiId=api_id,
        RouteKey=COSTS_ROUTE,
        AuthorizationType="CUSTOM",
        AuthorizerId=usage["AuthorizerId"],
        Target=usage["Target"],  # the query function's integration
    )


PREFLIGHT_ROUTE = "OPTIONS /{proxy+}"


def _preflight_authorization(authorized: bool) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        gateway, api_id = d.client("apigatewayv2"), d.outputs["api_id"]
        routes = gateway.get_routes(ApiId=api_id)["Items"]
        preflight = next(r for r in routes if r["RouteKey"] == PREFLIGHT_ROUTE)
        gateway.delete_route(ApiId=api_id, RouteId=preflight["RouteId"])
        usage = next(r for r in routes if r["RouteKey"] == "GET /analytics/usage")
        authorizer = (
            {"AuthorizationType": "CUSTOM", "AuthorizerId": usage["AuthorizerId"]}
            if authorized
            else {"AuthorizationType": "NONE"}
        )
        gateway.create_route(
            ApiId=api_id, RouteKey=PREFLIGHT_ROUTE, Target=preflight["Target"], **authorizer
        )

    return change


def _first_alarm(state: str) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        d.client("cloudwatch").set_alarm_state(
            AlarmName=d.outputs["alarm_names"][0], StateValue=state, StateReason="Threshold Crossed"
        )

    return change


def _preflights_allowed_from(origins: tuple[str, ...]) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        FakeApi.cors_origins = origins

    return change


def _compliance_route_answers(paths: set[str]) -> Callable[[Deployment], None]:
    def change(d: Deployment) -> None:
        FakeApi.broken_paths = paths

    return change


BREAKAGES = {
    "no-pitr": Breakage(
        "table metrics: point-in-time recovery",
        "point-in-time recovery is DISABLED, expected ENABLED",
        _point_in_time_recovery(False),
        _point_in_time_recovery(True),
    ),
    "no-tls-policy": Breakage(
        "bucket reports: TLS-only policy",
        "GetBucketPolicy failed: NoSuchBucketPolicy: The bucket policy does not exist",
        _drop_tls_policy,
        _restore_tls_policy,
    ),
    "no-access-logging": Breakage(
        "bucket reports: access logs to the log bucket",
        "server access logging is off",
        _stop_access_logging,
        _restore_access_logging,
    ),
    "no-log-delivery": Breakage(
        "bucket access-logs: S3 log delivery allowed for this account",
        "no statement lets logging.s3.amazonaws.com s3:PutObject into the bucket",
        _keep_log_delivery_out,
        _restore_log_delivery,
    ),
    "unencrypted-log-group": Breakage(
        "log group query: encrypted with a rotating customer managed key",
        "/aws/lambda/securebase-staging-analytics-query is encrypted with a CloudWatch owned key",
        _query_log_group_key(encrypted=False),
        _query_log_group_key(encrypted=True),
    ),
    "wrong-runtime": Breakage(
        "function query: runtime and handler",
        "runtime python3.12, expected python3.11",
        _query_runtime("python3.12"),
        _query_runtime(RUNTIME),
    ),
    "missing-route": Breakage(
        f"route {COSTS_ROUTE}: authorized, to query",
        "route is missing",
        _delete_costs_route,
        _recreate_costs_route,
    ),
    "authorized-preflight": Breakage(
        f"route {PREFLIGHT_ROUTE}: no authorizer, to query",
        "authorization CUSTOM, expected NONE; authorizer ",
        _preflight_authorization(authorized=True),
        _preflight_authorization(authorized=False),
    ),
    "alarm": Breakage(
        "alarm securebase-staging-analytics-query-errors: present, notifies, not in ALARM",
        "in ALARM since ",
        _first_alarm("ALARM"),
        _first_alarm("OK"),
    ),
    "shard-receives": Breakage(
        "queue aggregator-shards: encrypted, redrives to a DLQ after 3 receives",
        "maxReceiveCount 5, expected 3",
        _shard_receives(5),
        _shard_receives(3),
    ),
    "preflight-not-allowed": Breakage(
        "CORS preflight for GET /analytics/usage from"
        " https://portal.staging.securebase.example.com: 204, allowed, no token",
        "HTTP 204 but Access-Control-Allow-Origin is None",
        _preflights_allowed_from(()),
        _preflights_allowed_from(PORTALS),
    ),
    "smoke-500": Breakage(
        "GET /analytics/compliance with a token: 200 JSON",
        'HTTP 500: {"error": "Internal error", "code": "internal_error"}',
        _compliance_route_answers({"/analytics/compliance"}),
        _compliance_route_answers(set()),
    ),
}


@pytest.fixture(params=list(BREAKAGES))
def breakage(request: pytest.FixtureRequest, staging: Deployment) -> Iterator[Breakage]:
    broken = BREAKAGES[request.param]
    broken.apply(staging)
    try:
        yield broken
    finally:
        broken.repair(staging)


def test_each_breakage_is_reported_as_its_own_failure_while_every_other_check_runs(
    staging: Deployment, healthy_staging: Run, breakage: Breakage, tmp_path: Path
) -> None:
    run = validate(staging, tmp_path)

    assert run.exit_code == 1
    assert list(run.failures()) == [breakage.check]
    assert run.failures()[breakage.check].startswith(breakage.detail)
    assert run.report["ok"] is False
    # Nothing stopped early: the same checks ran, and everything else still passes.
    assert [c["check"] for c in run.checks] == [c["check"] for c in healthy_staging.checks]
    assert run.report["counts"] == {
        "PASS": len(healthy_staging.checks) - 1,
        "FAIL": 1,
        "WARN": 0,
        "SKIP": 0,
    }


def test_a_pending_email_subscription_fails_the_alerts_check(
    staging: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirmed_subscriptions = aws_view.AwsView.subscriptions

    def first_one_pending(view: aws_view.AwsView, topic_arn: str) -> list[dict[str, Any]]:
        subscriptions = confirmed_subscriptions(view, topic_arn)
        subscriptions[0]["SubscriptionArn"] = "PendingConfirmation"
        return subscriptions

    monkeypatch.setattr(aws_view.AwsView, "subscriptions", first_one_pending)

    run = validate(staging, tmp_path)

    assert run.exit_code == 1
    assert run.failures() == {
        "alerts topic: subscriptions confirmed": "awaiting confirmation: devops@securebase.example.com"
    }


def test_messages_in_a_dead_letter_queue_warn_without_failing(
    staging: Deployment, tmp_path: Path
) -> None:
    sqs = staging.client("sqs")
    url = staging.outputs["dead_letter_queue_urls"][staging.name("analytics-async-failures")]
    sqs.send_message(QueueUrl=url, MessageBody='{"failed": true}')
    try:
        run = validate(staging, tmp_path)
    finally:
        sqs.purge_queue(QueueUrl=url)

    assert run.exit_code == 0
    assert {c["check"]: c["detail"] for c in run.checks if c["status"] == "WARN"} == {
        "dead-letter queue securebase-staging-analytics-async-failures: empty": (
            "1 message(s) waiting: inspect and redrive or purge"
        )
    }
    assert run.report["ok"] is True


SMOKE_ROUTES = [
    r.key
    for r in DEPLOYED_ROUTES
    if r.method == "GET" and "{" not in r.path and r.authorization == CUSTOM
]


def test_without_a_token_the_200_checks_are_skipped_and_the_401_checks_still_run(
    staging: Deployment, tmp_path: Path
) -> None:
    run = validate(staging, tmp_path, token="")

    assert run.exit_code == 0
    assert {c["check"]: c["status"] for c in run.checks if c["group"] == "smoke"} == {
        "CORS preflight for GET /analytics/usage from"
        " https://portal.staging.securebase.example.com: 204, allowed, no token": "PASS",
        **{f"{key} with a token: 200 JSON": "SKIP" for key in SMOKE_ROUTES},
        **{f"{key} without a token: 401": "PASS" for key in SMOKE_ROUTES},
    }


def test_a_wrong_token_fails_every_200_check_and_the_summary_file_says_so(
    staging: Deployment, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"

    run = validate(staging, tmp_path, "--summary-file", str(summary), token="not-the-token")

    assert run.exit_code == 1
    assert run.failures() == {
        f"{key} with a token: 200 JSON": 'HTTP 403: {"message": "Forbidden"}'
        for key in SMOKE_ROUTES
    }
    text = summary.read_text()
    assert text.startswith("### Deployment validation: staging\n")
    assert (
        '| FAIL | GET /analytics/usage with a token: 200 JSON | HTTP 403: {"message": "Forbidden"} |'
        in text
    )
    assert "<details><summary>All checks</summary>" in text


SIGNING_KEY = "staging-signing-key-for-the-smoke-test"
MINT_CHECK = "smoke token: minted for tenant smoke-test"
STAGING_SECRET = "securebase/staging/jwt-signing-key"


@pytest.fixture
def signing_key(staging: Deployment) -> Iterator[str]:
    """Staging's HS256 key in Secrets Manager, where `jwtSecretName` says it is."""
    secrets = staging.client("secretsmanager")
    assert load_stack_settings("staging").jwt.secret_name == STAGING_SECRET
    secrets.create_secret(Name=STAGING_SECRET, SecretString=json.dumps({"jwt_secret": SIGNING_KEY}))
    yield SIGNING_KEY
    secrets.delete_secret(SecretId=STAGING_SECRET, ForceDeleteWithoutRecovery=True)


def test_mint_token_signs_a_token_the_real_authorizer_accepts_for_the_smoke_test_tenant(
    staging: Deployment,
    signing_key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jwt_settings = load_stack_settings("staging").jwt
    authorizer = Authorizer(
        TokenSettings(
            issuer=jwt_settings.issuer,
            audience=jwt_settings.audience,
            tenant_claim=jwt_settings.tenant_claim,
            max_lifetime_seconds=jwt_settings.max_token_lifetime_hours * 3600,
        ),
        SecretKeys(STAGING_SECRET, lambda: staging.client("secretsmanager")),
    )
    seen: list[str] = []
    tenants: list[str] = []

    def accepts(authorization: str) -> bool:
        seen.append(authorization)
        try:
            tenants.append(authorizer.verify(authorization).tenant)
        except TokenRejected:
            return False
        return True

    FakeApi.accepts = staticmethod(accepts)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")  # the most the validator ever logs

    # PyJWT checks `exp` and `iat` against the real time, so this run's clock is the
    # real one; the date-dependent checks (the Phase 2 schedule) are not asserted here.
    run = validate(
        staging, tmp_path, "--mint-token", token="", clock=lambda: dt.datetime.now(dt.UTC)
    )

    assert {c["check"]: c["status"] for c in run.checks if c["group"] == "smoke"} == {
        MINT_CHECK: "PASS",
        "CORS preflight for GET /analytics/usage from"
        " https://portal.staging.securebase.example.com: 204, allowed, no token": "PASS",
        **{f"{key} with a token: 200 JSON": "PASS" for key in SMOKE_ROUTES},
        **{f"{key} without a token: 401": "PASS" for key in SMOKE_ROUTES},
    }
    details = {c["check"]: c["detail"] for c in run.checks}
    assert (
        details[MINT_CHECK] == f"HS256 with {STAGING_SECRET}, tenant smoke-test, valid 15 minutes"
    )
    assert tenants == ["smoke-test"] * len(SMOKE_ROUTES)
    # One token for the run, never in what the validator prints.
    (authorization,) = set(seen)
    token = authorization.removeprefix("Bearer ")
    printed = capsys.readouterr()
    for text in (run.stdout, printed.out, printed.err, caplog.text):
        assert token not in text
        assert signing_key not in text


def test_the_minted_token_is_issued_by_the_validators_clock_and_lives_15_minutes(
    staging: Deployment, signing_key: str
) -> None:
    jwt_settings = load_stack_settings("staging").jwt

    token = MintedToken(jwt_settings, AwsView(REGION), lambda: NOW).value()

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        signing_key,
        algorithms=["HS256"],
        audience="securebase-analytics",
        issuer="https://auth.staging.securebase.example.com",
        options={"verify_exp": False},  # issued at NOW, which the real time has passed
    )
    assert header["alg"] == "HS256"
    issued = int(NOW.timestamp())
    assert claims == {
        "iss": "https://auth.staging.securebase.example.com",
        "aud": "securebase-analytics",
        "sub": "deployment-validator@smoke-test",
        "customer_id": "smoke-test",
        "iat": issued,
        "exp": issued + 15 * 60,
    }
    assert claims["exp"] - claims["iat"] <= jwt_settings.max_token_lifetime_hours * 3600
    minted = MintedToken(jwt_settings, AwsView(REGION), lambda: NOW)
    assert minted.value() == token  # the same claims and key: the same token
    assert repr(minted) == f"MintedToken(secret_name={STAGING_SECRET!r})"


def test_a_missing_signing_key_fails_the_minting_check_and_skips_the_200_checks(
    staging: Deployment, tmp_path: Path
) -> None:
    run = validate(staging, tmp_path, "--mint-token", token="")

    assert run.exit_code == 1
    assert run.failures() == {
        MINT_CHECK: f"the signing key secret {STAGING_SECRET} (jwtSecretName) does not exist"
        " in us-east-1"
    }
    assert {
        c["check"]: (c["status"], c["detail"])
        for c in run.checks
        if c["check"].endswith("with a token: 200 JSON")
    } == {
        f"{key} with a token: 200 JSON": (
            "SKIP",
            "no token: minting one failed (see the smoke token check)",
        )
        for key in SMOKE_ROUTES
    }


def test_without_permission_to_read_the_key_the_minting_check_names_secret_and_permission(
    staging: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    denied = (
        "User: arn:aws:sts::123456789012:assumed-role/staging-deploy/GitHubActions is not"
        " authorized to perform: secretsmanager:GetSecretValue on resource:"
        f" {STAGING_SECRET} because no identity-based policy allows the"
        " secretsmanager:GetSecretValue action"
    )
    calls: list[str] = []

    def access_denied(self: AwsView, secret_id: str) -> str:
        calls.append(secret_id)
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": denied}}, "GetSecretValue"
        )

    monkeypatch.setattr(AwsView, "secret_string", access_denied)

    run = validate(staging, tmp_path, "--mint-token", token="")

    assert run.exit_code == 1
    assert run.failures() == {
        MINT_CHECK: f"cannot read the signing key secret {STAGING_SECRET}: AccessDeniedException:"
        f" {denied}; the credentials need secretsmanager:GetSecretValue on it"
    }
    assert calls == [STAGING_SECRET]  # read once, not once per route
    assert "Traceback" not in run.stdout


def test_a_given_token_wins_over_minting_and_is_sent_unchanged(
    staging: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AwsView, "secret_string", lambda self, secret_id: pytest.fail("read"))

    by_flag = validate(staging, tmp_path, "--mint-token", token=SMOKE_TOKEN)
    monkeypatch.setenv("SMOKE_TEST_TOKEN", SMOKE_TOKEN)
    outputs = tmp_path / "outputs.json"
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        by_variable = validate_deployment.main(
            ["--stack", "staging", "--outputs", str(outputs), "--json", "--mint-token"],
            clock=lambda: NOW,
        )

    assert by_flag.exit_code == 0, by_flag.failures()
    assert MINT_CHECK not in {c["check"] for c in by_flag.checks}
    assert by_variable == 0
    assert MINT_CHECK not in stdout.getvalue()


def test_mint_token_on_a_jwks_stack_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stack_files_after_the_runbook: Path,
) -> None:
    stack_file = (stack_files_after_the_runbook / "Pulumi.staging.yaml").read_text()
    jwks_stack = stack_file.replace(
        f"securebase-analytics:jwtSecretName: {STAGING_SECRET}",
        "securebase-analytics:jwtJwksUrl: https://auth.staging.securebase.example.com/jwks.json",
    )
    assert jwks_stack != stack_file
    (tmp_path / "Pulumi.staging.yaml").write_text(jwks_stack)
    monkeypatch.setattr(expectations, "REPO_ROOT", tmp_path)
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")

    argv = ["--stack", "staging", "--outputs", str(outputs), "--token", "", "--mint-token"]
    assert validate_deployment.main(argv, clock=lambda: NOW) == 2
    assert capsys.readouterr().err == (
        "error: --mint-token needs an HS256 stack (jwtSecretName); staging checks tokens with"
        " jwtJwksUrl: pass --token instead\n"
    )


def test_a_missing_output_fails_the_checks_that_need_it_and_only_those(
    staging: Deployment, tmp_path: Path
) -> None:
    without_api = Deployment(
        "staging", {k: v for k, v in staging.outputs.items() if k != "api_id"}, staging.clients
    )

    run = validate(without_api, tmp_path)

    failures = run.failures()
    assert run.exit_code == 1
    assert set(failures.values()) == {"stack output 'api_id' is missing"}
    assert {c["group"] for c in run.checks if c["check"] in failures} == {"api"}
    assert len(failures) == sum(c["group"] == "api" for c in run.checks)


def test_outputs_can_come_from_stdin(staging: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(staging.outputs)))
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        exit_code = validate_deployment.main(
            ["--stack", "staging", "--outputs", "-", "--json", "--token", SMOKE_TOKEN],
            clock=lambda: NOW,
        )

    assert exit_code == 0
    assert json.loads(stdout.getvalue())["stack"] == "staging"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "error: the stack outputs are not JSON"),
        ("[1, 2]", "error: the stack outputs must be a JSON object"),
    ],
)
def test_unreadable_outputs_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(content)

    assert validate_deployment.main(["--stack", "staging", "--outputs", str(outputs)]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_a_missing_outputs_file_and_an_unknown_stack_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.json")

    assert validate_deployment.main(["--stack", "staging", "--outputs", missing]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot read --outputs {missing}: No such file or directory\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        validate_deployment.main(["--stack", "dev", "--outputs", "-"])
    assert exit_info.value.code == 2


_PRINTABLE = st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), max_size=40)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Status)), _PRINTABLE.filter(bool), _PRINTABLE),
        min_size=1,
        max_size=20,
    )
)
def test_the_table_aligns_any_results_and_the_summary_counts_them(
    rows: list[tuple[Status, str, str]],
) -> None:
    results = [CheckResult("group", name, status, detail) for status, name, detail in rows]

    lines = table(results).splitlines()
    summary = summarize("staging", results)

    check_column, detail_column = lines[0].index("CHECK"), lines[0].index("DETAIL")
    for line, (status, name, detail) in zip(lines[1:], rows, strict=True):
        assert line[:check_column].rstrip() == status.value
        assert line[check_column:detail_column].rstrip() == name
        assert line[detail_column:] == detail
    assert summary.total == len(rows)
    assert summary.ok == (Status.FAIL not in {status for status, _, _ in rows})


def _set_schedule_state(d: Deployment, key: str, state: str) -> None:
    scheduler = d.client("scheduler")
    current = scheduler.get_schedule(Name=d.outputs["schedule_names"][key])
    scheduler.update_schedule(
        Name=current["Name"],
        ScheduleExpression=current["ScheduleExpression"],
        FlexibleTimeWindow=current["FlexibleTimeWindow"],
        Target=current["Target"],
        State=state,
    )


def test_after_the_observation_window_the_monitor_schedule_must_be_disabled(
    staging: Deployment,
) -> None:
    settings = load_stack_settings("staging")
    window_end = dt.datetime.combine(settings.phase2.window_end, dt.time(), tzinfo=dt.UTC)
    expect = Expectations("staging", settings, now=window_end + dt.timedelta(days=1))
    (monitor,) = [
        check
        for check in schedule_checks(StackOutputs(staging.outputs), expect, AwsView(REGION))
        if check.name.startswith("schedule phase2-monitor")
    ]
    built_state = staging.client("scheduler").get_schedule(
        Name=staging.outputs["schedule_names"]["phase2-monitor"]
    )["State"]

    try:
        _set_schedule_state(staging, "phase2-monitor", "ENABLED")
        still_enabled = monitor.run()
        _set_schedule_state(staging, "phase2-monitor", "DISABLED")
        disabled = monitor.run()
    finally:
        _set_schedule_state(staging, "phase2-monitor", built_state)

    assert (
        monitor.name == "schedule phase2-monitor: disabled, rate(6 hours), with a dead-letter queue"
    )
    assert (still_enabled.status, still_enabled.detail) == (
        Status.FAIL,
        "state ENABLED, expected DISABLED",
    )
    assert disabled.status is Status.PASS
    assert disabled.detail.startswith(
        f"DISABLED (the observation window ended on {settings.phase2.window_end}), rate(6 hours)"
    )


def test_a_phase2_alarm_in_alarm_warns_without_failing_the_deployment(
    staging: Deployment, tmp_path: Path
) -> None:
    phase2_alarm = staging.name("phase2-aurora-cpu")
    cloudwatch = staging.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=phase2_alarm, StateValue="ALARM", StateReason="CPU 93%")
    try:
        run = validate(staging, tmp_path)
    finally:
        cloudwatch.set_alarm_state(AlarmName=phase2_alarm, StateValue="OK", StateReason="ok")

    assert run.exit_code == 0
    (warning,) = [c for c in run.checks if c["status"] == "WARN"]
    assert warning["check"] == f"alarm {phase2_alarm}: present, notifies, not in ALARM"
    assert warning["detail"].startswith("Phase 2 in ALARM since ")
    assert warning["detail"].endswith(": CPU 93%")


@pytest.fixture(scope="module")
def program_outputs() -> dict[str, dict[str, Any]]:
    """What `__main__.py` exports for each stack, run under Pulumi's mocks."""
    return {stack: committed_deployment(stack).outputs for stack in ("staging", "production")}


def test_the_built_deployment_exports_what_the_program_exports(
    world: World, program_outputs: dict[str, dict[str, Any]]
) -> None:
    """The moto build mirrors `__main__.py`'s exports, so the validator reads real names."""
    program = program_outputs["staging"]
    built = world.staging.outputs

    assert sorted(built) == sorted(program)
    for key, value in program.items():
        assert type(built[key]) is type(value), key
        if isinstance(value, dict):
            assert sorted(built[key]) == sorted(value), key
    for key in (
        "table_names",
        "table_arns",
        "reports_bucket",
        "monitor_bucket",
        "access_log_bucket",
        "function_names",
        "log_group_names",
        "schedule_names",
        "dashboard_names",
        "alerts_topic_arn",
        "report_jobs_queue_url",
        "aggregator_shards_queue_url",
        "dead_letter_queue_urls",
        "monitor_config",
    ):
        assert built[key] == program[key], key
    assert set(built["alarm_names"]) <= set(program["alarm_names"])
    # Layer versions and the API id are AWS's to choose; their shape is the program's.
    assert [arn.rsplit(":", 1)[0] for arn in built["layer_arns"].values()] == [
        arn.rsplit(":", 1)[0] for arn in program["layer_arns"].values()
    ]


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_real_stacks_get_well_over_40_checks(
    stack: str, program_outputs: dict[str, dict[str, Any]]
) -> None:
    outputs = StackOutputs(program_outputs[stack])
    expect = load_expectations(stack, now=NOW)

    checks = validate_deployment.all_checks(outputs, expect, AwsView(REGION), SMOKE_TOKEN, 1.0)

    names = [check.name for check in checks]
    assert len(names) == len(set(names)) >= 40
    for alarm in outputs.names("alarm_names"):
        assert f"alarm {alarm}: present, notifies, not in ALARM" in names
    for queue in outputs.mapping("dead_letter_queue_urls"):
        assert f"dead-letter queue {queue}: empty" in names


def _fake_pulumi(directory: Path, script: str) -> None:
    """A `pulumi` executable first on PATH that runs `script` (sh)."""
    executable = directory / "pulumi"
    executable.write_text(f"#!/bin/sh\n{script}\n")
    executable.chmod(0o755)


def test_without_outputs_it_asks_the_pulumi_cli(
    staging: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(staging.outputs))
    calls = tmp_path / "calls"
    _fake_pulumi(tmp_path, f'echo "$@" > {calls}\ncat {outputs}')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    stdout = io.StringIO()

    with redirect_stdout(stdout):
        exit_code = validate_deployment.main(
            ["--stack", "staging", "--json", "--token", SMOKE_TOKEN],
            clock=lambda: NOW,
        )

    assert exit_code == 0
    assert calls.read_text() == "stack output --json --show-secrets=false --stack staging\n"
    assert json.loads(stdout.getvalue())["ok"] is True


def test_a_failing_or_missing_pulumi_cli_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_pulumi(tmp_path, "echo 'error: no stack named staging found' >&2\nexit 255")
    monkeypatch.setenv("PATH", str(tmp_path))

    assert validate_deployment.main(["--stack", "staging"]) == 2
    assert capsys.readouterr().err == (
        "error: pulumi stack output --json --show-secrets=false --stack staging failed: "
        "error: no stack named staging found\n"
    )

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert validate_deployment.main(["--stack", "staging"]) == 2
    assert capsys.readouterr().err == (
        "error: the Pulumi CLI is not installed; pass --outputs FILE instead\n"
    )


def test_it_runs_as_a_script_as_well_as_a_module_from_any_directory(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    script = [sys.executable, str(root / "ops" / "validate_deployment.py"), "--help"]
    module = [sys.executable, "-m", "ops.validate_deployment", "--help"]

    as_script = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, check=False)
    as_module = subprocess.run(module, cwd=root, capture_output=True, text=True, check=False)

    assert as_script.returncode == 0, as_script.stderr
    assert as_script.stdout.startswith("usage: python -m ops.validate_deployment")
    assert as_script.stdout == as_module.stdout
