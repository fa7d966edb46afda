"""AnalyticsApi under mocks, for both stacks' real config."""

import json
import re
import subprocess
import sys
import textwrap

import pytest

from components.api import integration_timeout_ms
from components.functions import (
    AGGREGATOR_SHARD,
    ALL_FUNCTIONS,
    ANALYTICS_FUNCTIONS,
    AUTHORIZER,
    REPORT_ENGINE,
    FunctionSpec,
)
from components.packaging import function_archive
from handlers.shared import api_gateway
from handlers.shared.api_gateway import CorsConfiguration, RouteMatch
from handlers.shared.routes import DEPLOYED_ROUTES, ROUTES, UNAUTHENTICATED_ROUTE_KEYS, Route
from tests.pulumi_program import (
    ACCOUNT_ID,
    ROOT,
    STACKS,
    Deployment,
    Resource,
    committed_deployment,
    run_program,
)

FUNCTION = "aws:lambda/function:Function"
LAYER = "aws:lambda/layerVersion:LayerVersion"
PERMISSION = "aws:lambda/permission:Permission"
ROUTE = "aws:apigatewayv2/route:Route"
INTEGRATION = "aws:apigatewayv2/integration:Integration"
API_AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
STAGE = "aws:apigatewayv2/stage:Stage"
HTTP_API = "aws:apigatewayv2/api:Api"
QUEUE = "aws:sqs/queue:Queue"
SCHEDULE = "aws:scheduler/schedule:Schedule"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
REGION = "us-east-1"
API_ID = "a1b2c3d4e5"  # what the mocks give the HTTP API
EXECUTION_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}"

EXPECTED_ROUTES = {
    "GET /analytics/usage": "query",
    "GET /analytics/compliance": "query",
    "GET /analytics/costs": "query",
    "POST /analytics/reports": "reporter",
    "GET /analytics/reports": "reporter",
    "GET /analytics/reports/{id}": "reporter",
    "POST /analytics/schedules": "report-engine",
    "GET /analytics/schedules": "report-engine",
    "GET /analytics/schedules/{id}": "report-engine",
    "DELETE /analytics/schedules/{id}": "report-engine",
    # The links in report emails, without the authorizer: each verifies its signed token.
    "GET /email/confirm": "email-consent",
    "POST /email/confirm": "email-consent",
    "GET /email/unsubscribe": "email-consent",
    "POST /email/unsubscribe": "email-consent",
    # Browsers' CORS preflights, without the authorizer: the query function answers 204.
    "OPTIONS /{proxy+}": "query",
    # Every other path: the query function answers the API's JSON 404.
    "$default": "query",
}
# The routes API Gateway serves without the authorizer: the preflight, and the
# routes that verify a signed link themselves; nothing else may join them.
EXPECTED_UNAUTHENTICATED = (
    "GET /email/confirm",
    "POST /email/confirm",
    "GET /email/unsubscribe",
    "POST /email/unsubscribe",
    "OPTIONS /{proxy+}",
)


@pytest.fixture(scope="module", params=STACKS)
def deployment(request) -> Deployment:
    return committed_deployment(request.param)


def function(deployment: Deployment, spec: FunctionSpec) -> Resource:
    name = spec.function_name(f"securebase-{deployment.stack}")
    return deployment.one(FUNCTION, lambda r: r.inputs["name"] == name)


def queue(deployment: Deployment, suffix: str) -> Resource:
    name = f"securebase-{deployment.stack}-analytics-{suffix}"
    return deployment.one(QUEUE, lambda r: r.inputs["name"] == name)


def resource_id(resource: Resource) -> str:
    """The id the mocks give a resource without a provider-like one."""
    return f"{resource.name}-id"


def test_the_component_owns_the_functions_api_queues_and_schedules(deployment):
    component = deployment.one("securebase:analytics:AnalyticsApi")
    children = {r.type for r in deployment.children_of(component)}
    assert {FUNCTION, LAYER, HTTP_API, API_AUTHORIZER, STAGE, ROUTE, QUEUE, SCHEDULE} <= children
    analytics = [function(deployment, spec) for spec in ANALYTICS_FUNCTIONS]
    assert all(f.parent == component.urn for f in analytics)


def test_every_route_exists_and_all_but_the_preflight_go_through_the_authorizer(deployment):
    authorizer = deployment.one(API_AUTHORIZER)
    integrations = {
        integration.inputs["integrationUri"]: integration
        for integration in deployment.of_type(INTEGRATION)
    }
    routes = {r.inputs["routeKey"]: r.inputs for r in deployment.of_type(ROUTE)}
    assert sorted(routes) == sorted(EXPECTED_ROUTES)
    for key, function_key in EXPECTED_ROUTES.items():
        spec = next(s for s in ANALYTICS_FUNCTIONS if s.key == function_key)
        integration = integrations[function(deployment, spec).outputs["invokeArn"]]
        assert routes[key]["apiId"] == API_ID
        assert routes[key]["target"] == f"integrations/{resource_id(integration)}", key
        if key in EXPECTED_UNAUTHENTICATED:
            assert routes[key]["authorizationType"] == "NONE", key
            assert "authorizerId" not in routes[key], key
        else:
            assert routes[key]["authorizationType"] == "CUSTOM", key
            assert routes[key]["authorizerId"] == resource_id(authorizer), key
    unauthenticated = [
        key for key, inputs in routes.items() if inputs["authorizationType"] != "CUSTOM"
    ]
    assert sorted(unauthenticated) == sorted(EXPECTED_UNAUTHENTICATED)


def test_the_routes_served_without_the_authorizer_are_listed_in_one_place():
    assert UNAUTHENTICATED_ROUTE_KEYS == EXPECTED_UNAUTHENTICATED


def deployed_gateway(deployment: Deployment) -> tuple[tuple[Route, ...], CorsConfiguration]:
    """The routes and CORS configuration as deployed, read back into the gateway model."""
    by_invoke_arn = {
        function(deployment, spec).outputs["invokeArn"]: spec.key for spec in ANALYTICS_FUNCTIONS
    }
    targets = {
        f"integrations/{resource_id(integration)}": by_invoke_arn[
            integration.inputs["integrationUri"]
        ]
        for integration in deployment.of_type(INTEGRATION)
    }
    routes = []
    for route in deployment.of_type(ROUTE):
        key = route.inputs["routeKey"]
        method, path = ("", key) if key == "$default" else key.split(" ", 1)
        authorization = route.inputs["authorizationType"]
        routes.append(Route(method, path, targets[route.inputs["target"]], authorization))
    cors = deployment.one(HTTP_API).inputs["corsConfiguration"]
    return tuple(routes), CorsConfiguration(
        allow_origins=tuple(cors["allowOrigins"]),
        allow_methods=tuple(cors["allowMethods"]),
        allow_headers=tuple(cors["allowHeaders"]),
        max_age_seconds=int(cors["maxAge"]),
    )


def concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "01M84G0H74RPGX32QJQ4608KD4", path)


def test_the_deployed_api_is_the_route_table_and_answers_browsers_preflights(deployment):
    routes, cors = deployed_gateway(deployment)
    assert set(routes) == set(DEPLOYED_ROUTES)
    origin = cors.allow_origins[0]
    for route in ROUTES:
        path = concrete(route.path)
        preflight_headers = {
            "origin": origin,
            "access-control-request-method": route.method,
            "access-control-request-headers": "authorization,content-type",
        }
        preflight = api_gateway.select(routes, cors, "OPTIONS", path, preflight_headers)
        assert isinstance(preflight, RouteMatch)
        assert (preflight.route.key, preflight.needs_authorizer) == ("OPTIONS /{proxy+}", False)
        answered = api_gateway.integration_response_headers(cors, "OPTIONS", preflight_headers, {})
        assert answered["Access-Control-Allow-Origin"] == origin
        assert route.method in answered["Access-Control-Allow-Methods"].split(",")
        assert {"authorization", "content-type"} <= set(
            answered["Access-Control-Allow-Headers"].split(",")
        )
        foreign = {**preflight_headers, "origin": "https://evil.example"}
        assert api_gateway.integration_response_headers(cors, "OPTIONS", foreign, {}) == {}
        # The request itself still goes through the authorizer.
        actual = api_gateway.select(routes, cors, route.method, path, {"origin": origin})
        assert isinstance(actual, RouteMatch)
        assert (actual.route.key, actual.needs_authorizer) == (route.key, True)


def test_the_authorizer_checks_the_authorization_header_and_caches_five_minutes(deployment):
    authorizer = deployment.one(API_AUTHORIZER).inputs
    assert authorizer == {
        "apiId": API_ID,
        "name": f"securebase-{deployment.stack}-analytics-jwt",
        "authorizerType": "REQUEST",
        "authorizerUri": function(deployment, AUTHORIZER).outputs["invokeArn"],
        "authorizerPayloadFormatVersion": "2.0",
        "enableSimpleResponses": True,
        "identitySources": ["$request.header.Authorization"],
        "authorizerResultTtlInSeconds": 300,
    }


def test_integrations_are_lambda_proxy_v2_within_the_gateway_limit(deployment):
    integrations = deployment.of_type(INTEGRATION)
    assert len(integrations) == 4
    for integration in integrations:
        inputs = integration.inputs
        target = deployment.one(
            FUNCTION, lambda f, i=inputs: f.outputs["invokeArn"] == i["integrationUri"]
        )
        timeout = target.inputs["timeout"]
        assert inputs["integrationType"] == "AWS_PROXY"
        assert inputs["integrationMethod"] == "POST"
        assert inputs["payloadFormatVersion"] == "2.0"
        assert inputs["timeoutMilliseconds"] == min(timeout * 1000, 30000)
        assert inputs["timeoutMilliseconds"] <= 30000


@pytest.mark.parametrize(
    ("timeout", "expected"), [(5, 5000), (28, 28000), (30, 30000), (300, 30000)]
)
def test_integration_timeout_waits_for_the_function_up_to_30_seconds(timeout, expected):
    spec = FunctionSpec(key="x", module="handlers.x", memory_mb=128, timeout_seconds=timeout)
    assert integration_timeout_ms(spec) == expected


def test_the_api_allows_the_configured_origins_only(deployment):
    api = deployment.one(HTTP_API).inputs
    origins = {
        "staging": [
            "https://portal.staging.securebase.example.com",
            "https://localhost:5173",
        ],
        "production": ["https://portal.securebase.example.com"],
    }[deployment.stack]
    assert api["name"] == f"securebase-{deployment.stack}-analytics-api"
    assert api["protocolType"] == "HTTP"
    assert api["corsConfiguration"] == {
        "allowOrigins": origins,
        "allowMethods": ["GET", "POST", "DELETE", "OPTIONS"],
        "allowHeaders": ["authorization", "content-type", "idempotency-key"],
        "maxAge": 600,
    }


def test_the_default_stage_logs_json_and_throttles_from_config(deployment):
    stage = deployment.one(STAGE)
    inputs = stage.inputs
    access_logs = deployment.one(
        LOG_GROUP,
        lambda r: (
            r.inputs["name"]
            == f"/aws/apigateway/securebase-{deployment.stack}-analytics-api-access"
        ),
    )
    assert inputs["name"] == "$default"
    assert inputs["autoDeploy"] is True
    assert inputs["accessLogSettings"]["destinationArn"] == access_logs.outputs["arn"]
    log_format = json.loads(inputs["accessLogSettings"]["format"])
    assert {
        "requestId": "$context.requestId",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "responseLatency": "$context.responseLatency",
        "integrationErrorMessage": "$context.integrationErrorMessage",
        "customerId": "$context.authorizer.customer_id",
    }.items() <= log_format.items()
    rate, burst = {"staging": (50.0, 100.0), "production": (200.0, 400.0)}[deployment.stack]
    assert inputs["defaultRouteSettings"] == {
        "throttlingRateLimit": rate,
        "throttlingBurstLimit": burst,
        "detailedMetricsEnabled": True,
    }
    # Deployed after the routes, so the first deployment already serves them.
    route_urns = {r.urn for r in deployment.of_type(ROUTE)}
    assert route_urns <= set(stage.dependencies)


@pytest.mark.parametrize("spec", ALL_FUNCTIONS, ids=lambda s: s.key)
def test_every_function_runs_the_catalogue_sizing_with_tracing(deployment, spec):
    resource = function(deployment, spec)
    inputs = resource.inputs
    assert inputs["runtime"] == "python3.11"
    assert inputs["architectures"] == ["arm64"]
    assert inputs["handler"] == f"{spec.module}.handler"
    assert inputs["memorySize"] == spec.memory_mb
    assert inputs["timeout"] == spec.timeout_seconds
    # The shard function reserves what the shard queue's mapping may run at once.
    reserved = (
        {"staging": 5, "production": 20}[deployment.stack]
        if spec is AGGREGATOR_SHARD
        else spec.reserved_concurrency
    )
    assert inputs.get("reservedConcurrentExecutions") == reserved
    assert inputs["tracingConfig"] == {"mode": "Active"}
    assert inputs["sourceCodeHash"] == function_archive(spec).base64_sha256


@pytest.mark.parametrize("spec", ALL_FUNCTIONS, ids=lambda s: s.key)
def test_every_function_logs_json_to_its_own_group_created_first(deployment, spec):
    resource = function(deployment, spec)
    group = deployment.one(
        LOG_GROUP, lambda r: r.inputs["name"] == f"/aws/lambda/{resource.inputs['name']}"
    )
    assert resource.inputs["loggingConfig"] == {
        "logFormat": "JSON",
        "logGroup": group.inputs["name"],
    }
    assert group.urn in resource.dependencies


def test_every_function_has_a_role_of_its_own(deployment):
    roles = [function(deployment, spec).inputs["role"] for spec in ALL_FUNCTIONS]
    assert len(set(roles)) == len(ALL_FUNCTIONS)
    for spec, role in zip(ALL_FUNCTIONS, roles, strict=True):
        assert (
            role
            == f"arn:aws:iam::{ACCOUNT_ID}:role/{spec.function_name(f'securebase-{deployment.stack}')}"
        )


def expected_environment(env: str, key: str) -> dict[str, str]:
    prefix = f"securebase-{env}"
    production = env == "production"
    cors = (
        "https://portal.securebase.example.com"
        if production
        else "https://portal.staging.securebase.example.com,https://localhost:5173"
    )
    domain = "securebase.example.com" if production else "staging.securebase.example.com"
    reports = {
        "REPORTS_BUCKET": f"{prefix}-reports-{ACCOUNT_ID}",
        "REPORT_URL_EXPIRY_SECONDS": "900",
        "REPORT_RETENTION_DAYS": "90",
        **(
            {
                "REPORTS_KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/analytics-data-data-key-key-id"
            }
            if production
            else {}
        ),
    }
    common = {"ENVIRONMENT": env, "LOG_LEVEL": "INFO", "METRICS_NAMESPACE": "SecureBase/Analytics"}
    email_link_key = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/analytics-api-email-link-key-key-id"
    aggregating = {
        "METRICS_TABLE": f"{prefix}-metrics",
        "USAGE_NAMESPACE": "SecureBase/Platform",
        "USAGE_TENANT_DIMENSION": "CustomerId",
        "USAGE_METRIC_NAMES": json.dumps(
            {
                "api_calls": "ApiCalls",
                "storage_gb": "StorageBytes",
                "compute_hours": "ComputeSeconds",
                "data_transfer_gb": "DataTransferBytes",
            }
        ),
        "HOURLY_RETENTION_DAYS": "7" if env == "staging" else "35",
        "AGGREGATOR_WRITE_CONCURRENCY": "4",
    }
    own = {
        "authorizer": {
            "JWT_ISSUER": f"https://auth.{domain}",
            "JWT_AUDIENCE": "securebase-analytics",
            "JWT_TENANT_CLAIM": "customer_id",
            "JWT_MAX_LIFETIME_SECONDS": "43200",
            "CUSTOMERS_TABLE": f"{prefix}-customers",
            "JWT_SECRET_ID": f"securebase/{env}/jwt-signing-key",
        },
        "query": {
            "METRICS_TABLE": f"{prefix}-metrics",
            "CACHE_TABLE": f"{prefix}-report-cache",
            "CACHE_TTL_SECONDS": "300",
            "CORS_ALLOWED_ORIGINS": cors,
        },
        "reporter": {
            "METRICS_TABLE": f"{prefix}-metrics",
            "REPORTS_TABLE": f"{prefix}-reports",
            "CACHE_TABLE": f"{prefix}-report-cache",
            **reports,
            "REPORT_JOBS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{prefix}-analytics-report-jobs",
            "REPORT_MAX_PENDING_PER_TENANT": "5",
            "CORS_ALLOWED_ORIGINS": cors,
        },
        "report-engine": {
            "METRICS_TABLE": f"{prefix}-metrics",
            "REPORTS_TABLE": f"{prefix}-reports",
            "SCHEDULES_TABLE": f"{prefix}-report-schedules",
            **reports,
            "REPORT_SENDER": f"reports@{domain}",
            "CORS_ALLOWED_ORIGINS": cors,
            "REPORT_EMAILS_TABLE": f"{prefix}-report-emails",
            "CUSTOMERS_TABLE": f"{prefix}-customers",
            "REPORT_RECIPIENT_DOMAINS": "",
            "REPORT_EMAILS_PER_DAY": "200",
            "SES_CONFIGURATION_SET": f"{prefix}-analytics-report-email",
            "EMAIL_LINK_KEY_ID": email_link_key,
            "EMAIL_LINKS_BASE_URL": f"https://{API_ID}.execute-api.{REGION}.amazonaws.com",
        },
        "email-consent": {
            "REPORT_EMAILS_TABLE": f"{prefix}-report-emails",
            "EMAIL_LINK_KEY_ID": email_link_key,
        },
        "aggregator": {
            **aggregating,
            "CUSTOMERS_TABLE": f"{prefix}-customers",
            "COST_REFRESH_HOURS": "6",
            "AGGREGATOR_SHARD_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{prefix}-analytics-aggregator-shards",
            "AGGREGATOR_SHARD_THRESHOLD": "5000",
            "AGGREGATOR_TENANTS_PER_SHARD": "1000",
        },
        "aggregator-shard": {**aggregating, "AGGREGATOR_SHARD_MAX_ATTEMPTS": "3"},
    }[key]
    return {**common, **own}


@pytest.mark.parametrize("spec", ANALYTICS_FUNCTIONS, ids=lambda s: s.key)
def test_environment_is_exactly_the_contract_with_names_not_secrets(deployment, spec):
    variables = function(deployment, spec).inputs["environment"]["variables"]
    assert variables == expected_environment(deployment.stack, spec.key)


def test_jwks_mode_hands_the_authorizer_the_key_url_instead_of_a_secret_id():
    deployment = run_program(
        "staging",
        {"jwtSecretName": None, "jwtJwksUrl": "https://auth.staging.securebase.example.com/jwks"},
    )
    variables = function(deployment, AUTHORIZER).inputs["environment"]["variables"]
    assert variables["JWT_JWKS_URL"] == "https://auth.staging.securebase.example.com/jwks"
    assert "JWT_SECRET_ID" not in variables


def test_layers_are_attached_only_where_they_are_imported(deployment):
    layers = {r.inputs["layerName"]: r for r in deployment.of_type(LAYER)}
    prefix = f"securebase-{deployment.stack}-analytics"
    assert set(layers) == {f"{prefix}-reporting", f"{prefix}-auth"}
    for layer in layers.values():
        assert layer.inputs["compatibleRuntimes"] == ["python3.11"]
        assert layer.inputs["compatibleArchitectures"] == ["arm64"]
    reporting = layers[f"{prefix}-reporting"].outputs["arn"]
    auth = layers[f"{prefix}-auth"].outputs["arn"]
    attached = {spec.key: function(deployment, spec).inputs.get("layers") for spec in ALL_FUNCTIONS}
    assert attached == {
        "authorizer": [auth],
        "query": None,
        "reporter": [reporting],
        "report-engine": [reporting],
        "aggregator": None,
        "aggregator-shard": None,
        "email-consent": None,
        "phase2-monitor": None,
    }


def test_invoke_permissions_are_scoped_to_the_route_or_authorizer_that_calls(deployment):
    prefix = f"securebase-{deployment.stack}-analytics"
    authorizer = deployment.one(API_AUTHORIZER)
    granted = set()
    by_topic = set()
    for permission in deployment.of_type(PERMISSION):
        inputs = permission.inputs
        assert inputs["action"] == "lambda:InvokeFunction"
        if inputs["principal"] == "sns.amazonaws.com":
            by_topic.add((inputs["function"].removeprefix(f"{prefix}-"), inputs["sourceArn"]))
            continue
        assert inputs["principal"] == "apigateway.amazonaws.com"
        granted.add((inputs["function"].removeprefix(f"{prefix}-"), inputs["sourceArn"]))
    # SES's bounce and complaint events arrive through one topic.
    assert by_topic == {
        ("email-consent", f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{prefix}-email-feedback")
    }
    expected = {
        ("authorizer", f"{EXECUTION_ARN}/authorizers/{resource_id(authorizer)}"),
        *(
            (
                function_key,
                f"{EXECUTION_ARN}/*/{key.split()[0]}{re.sub('{[^}]+}', '*', key.split()[1])}",
            )
            for key, function_key in EXPECTED_ROUTES.items()
            if key != "$default"
        ),
        ("query", f"{EXECUTION_ARN}/*/$default"),
    }
    assert granted == expected
    assert ("query", f"{EXECUTION_ARN}/*/GET/analytics/usage") in granted
    assert ("reporter", f"{EXECUTION_ARN}/*/GET/analytics/reports/*") in granted
    # The unauthenticated route may invoke the query function for OPTIONS only.
    assert ("query", f"{EXECUTION_ARN}/*/OPTIONS/*") in granted


@pytest.mark.parametrize("key", ["aggregator", "report-engine", "email-consent", "phase2-monitor"])
def test_async_functions_send_failures_to_the_failure_queue(deployment, key):
    invoke_configs = deployment.of_type(
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
    )
    assert len(invoke_configs) == 4
    prefix = f"securebase-{deployment.stack}"
    name = f"{prefix}-{key}" if key == "phase2-monitor" else f"{prefix}-analytics-{key}"
    config = next(c for c in invoke_configs if c.inputs["functionName"] == name)
    failures = queue(deployment, "async-failures")
    assert config.inputs["destinationConfig"] == {
        "onFailure": {"destination": failures.outputs["arn"]}
    }
    assert config.inputs["maximumRetryAttempts"] == 2
    assert config.inputs["maximumEventAgeInSeconds"] == 3600


def test_queues_are_encrypted_and_failed_jobs_wait_in_a_dead_letter_queue(deployment):
    jobs = queue(deployment, "report-jobs").inputs
    dead_letters = queue(deployment, "report-jobs-dlq")
    failures = queue(deployment, "async-failures").inputs
    assert jobs["visibilityTimeoutSeconds"] >= 6 * 300
    assert json.loads(jobs["redrivePolicy"]) == {
        "deadLetterTargetArn": dead_letters.outputs["arn"],
        "maxReceiveCount": 3,
    }
    for inputs in (jobs, dead_letters.inputs, failures):
        assert inputs["sqsManagedSseEnabled"] is True
    assert dead_letters.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert failures["messageRetentionSeconds"] == 14 * 24 * 3600


@pytest.mark.parametrize(
    "suffix",
    [
        "report-jobs",
        "report-jobs-dlq",
        "aggregator-shards",
        "aggregator-shards-dlq",
        "async-failures",
    ],
)
def test_every_queue_refuses_requests_without_tls(deployment, suffix):
    target = queue(deployment, suffix)
    policy = deployment.one(
        "aws:sqs/queuePolicy:QueuePolicy", lambda r: r.inputs["queueUrl"] == target.outputs["url"]
    )
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": target.outputs["arn"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]


def mapping(deployment: Deployment, spec: FunctionSpec) -> dict:
    target = function(deployment, spec).outputs["arn"]
    return deployment.one(
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        lambda r: r.inputs["functionName"] == target,
    ).inputs


def test_the_engine_takes_deferred_reports_two_at_a_time(deployment):
    mapping_inputs = mapping(deployment, REPORT_ENGINE)
    assert mapping_inputs["eventSourceArn"] == queue(deployment, "report-jobs").outputs["arn"]
    assert mapping_inputs["batchSize"] == 2
    assert mapping_inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping_inputs["scalingConfig"] == {"maximumConcurrency": 2}


def test_shards_run_one_per_invocation_at_the_configured_concurrency(deployment):
    shards = mapping(deployment, AGGREGATOR_SHARD)
    concurrency = {"staging": 5, "production": 20}[deployment.stack]
    assert shards["eventSourceArn"] == queue(deployment, "aggregator-shards").outputs["arn"]
    assert shards["batchSize"] == 1
    assert shards["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert shards["scalingConfig"] == {"maximumConcurrency": concurrency}
    shard_function = function(deployment, AGGREGATOR_SHARD).inputs
    assert shard_function["reservedConcurrentExecutions"] == concurrency
    assert (shard_function["memorySize"], shard_function["timeout"]) == (1024, 120)


def test_a_shard_is_delivered_three_times_before_its_dead_letter_queue(deployment):
    shards = queue(deployment, "aggregator-shards").inputs
    dead_letters = queue(deployment, "aggregator-shards-dlq")
    # Never redelivered while the shard function may still be running it.
    assert shards["visibilityTimeoutSeconds"] == 6 * 120
    assert shards["messageRetentionSeconds"] == 24 * 3600
    assert json.loads(shards["redrivePolicy"]) == {
        "deadLetterTargetArn": dead_letters.outputs["arn"],
        "maxReceiveCount": 3,
    }
    assert shards["sqsManagedSseEnabled"] is True
    assert dead_letters.inputs["sqsManagedSseEnabled"] is True
    assert dead_letters.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_shard_settings_come_from_the_stack_config():
    deployment = run_program(
        "staging",
        {
            "aggregatorShardConcurrency": "50",
            "aggregatorShardMaxAttempts": "5",
            "aggregatorTenantsPerShard": "500",
        },
    )
    assert mapping(deployment, AGGREGATOR_SHARD)["scalingConfig"] == {"maximumConcurrency": 50}
    assert function(deployment, AGGREGATOR_SHARD).inputs["reservedConcurrentExecutions"] == 50
    redrive = json.loads(queue(deployment, "aggregator-shards").inputs["redrivePolicy"])
    assert redrive["maxReceiveCount"] == 5
    variables = function(deployment, AGGREGATOR_SHARD).inputs["environment"]["variables"]
    assert variables["AGGREGATOR_SHARD_MAX_ATTEMPTS"] == "5"
    coordinator = next(s for s in ANALYTICS_FUNCTIONS if s.key == "aggregator")
    variables = function(deployment, coordinator).inputs["environment"]["variables"]
    assert variables["AGGREGATOR_TENANTS_PER_SHARD"] == "500"


@pytest.mark.parametrize(
    ("key", "suffix", "expression", "max_age"),
    [
        ("aggregator", "aggregator-hourly", "rate(1 hour)", 3600),
        ("report-engine", "report-engine", "rate(15 minutes)", 900),
    ],
)
def test_schedules_invoke_their_function_with_retries_and_a_dead_letter_queue(
    deployment, key, suffix, expression, max_age
):
    name = f"securebase-{deployment.stack}-analytics-{suffix}"
    schedule = deployment.one(SCHEDULE, lambda r: r.inputs["name"] == name).inputs
    spec = next(s for s in ANALYTICS_FUNCTIONS if s.key == key)
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/securebase-{deployment.stack}-analytics-scheduler"
    assert schedule["scheduleExpression"] == expression
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    assert schedule["state"] == "ENABLED"
    assert schedule["target"] == {
        "arn": function(deployment, spec).outputs["arn"],
        "roleArn": role,
        "input": json.dumps({"source": "securebase.scheduler", "schedule": name}),
        "retryPolicy": {"maximumRetryAttempts": 2, "maximumEventAgeInSeconds": max_age},
        "deadLetterConfig": {"arn": queue(deployment, "async-failures").outputs["arn"]},
    }


def test_archives_are_deterministic_across_runs(deployment):
    again = run_program(deployment.stack)

    def hashes(d: Deployment) -> dict[str, str]:
        code = {r.inputs["name"]: r.inputs["sourceCodeHash"] for r in d.of_type(FUNCTION)}
        layers = {r.inputs["layerName"]: r.inputs["sourceCodeHash"] for r in d.of_type(LAYER)}
        return {**code, **layers}

    assert hashes(again) == hashes(deployment)
    assert len(hashes(deployment)) == len(ALL_FUNCTIONS) + 2


def test_outputs_tell_how_to_call_the_api_and_where_things_are(deployment):
    env = deployment.stack
    prefix = f"securebase-{env}"
    outputs = deployment.outputs
    assert outputs["api_url"] == f"https://{API_ID}.execute-api.{REGION}.amazonaws.com"
    assert outputs["api_id"] == API_ID
    assert outputs["function_names"] == {
        spec.key: spec.function_name(prefix) for spec in ALL_FUNCTIONS
    }
    assert outputs["schedule_names"] == {
        "aggregator": f"{prefix}-analytics-aggregator-hourly",
        "report-engine": f"{prefix}-analytics-report-engine",
        "phase2-monitor": f"{prefix}-phase2-monitor",
    }
    assert set(outputs["layer_arns"]) == {"reporting", "auth"}
    sqs = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}"
    assert outputs["report_jobs_queue_url"] == f"{sqs}/{prefix}-analytics-report-jobs"
    assert outputs["aggregator_shards_queue_url"] == f"{sqs}/{prefix}-analytics-aggregator-shards"
    assert outputs["dead_letter_queue_urls"] == {
        f"{prefix}-analytics-{name}": f"{sqs}/{prefix}-analytics-{name}"
        for name in (
            "report-jobs-dlq",
            "aggregator-shards-dlq",
            "async-failures",
            "email-feedback-dlq",
        )
    }


def test_routes_table_matches_the_http_contract():
    assert {route.key: route.function for route in DEPLOYED_ROUTES} == EXPECTED_ROUTES


def test_a_failing_api_fails_the_program_instead_of_leaving_it_waiting():
    """The alarms wait for the API's id (a deferred output): an error must not hang them."""
    script = textwrap.dedent(
        """
        import components.function_deployment
        from tests.pulumi_program import run_program

        def missing(spec):
            raise FileNotFoundError(f"handlers for {spec.key} are missing")

        components.function_deployment.function_archive = missing
        try:
            run_program("staging")
        except Exception as error:
            print("failed:", error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "failed: handlers for authorizer are missing" in result.stdout, result.stderr
