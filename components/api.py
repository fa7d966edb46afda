"""AnalyticsApi: the functions, their roles, the HTTP API, the queues and the schedules.

Every function is deployed by components.function_deployment (catalogue
sizing, a role of its own, logging to the group AnalyticsObservability created
for it). The HTTP API deploys handlers/shared/routes.py: every route goes
through the Lambda authorizer except the unauthenticated ones listed there
(the CORS preflight); each function may be invoked only by the API routes (or
schedule) that call it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.function_deployment import (
    DeployedFunction,
    FunctionArgs,
    deploy_function,
    schedule_function,
    scheduler_role,
)
from components.functions import (
    AGGREGATOR,
    AGGREGATOR_SHARD,
    ANALYTICS_FUNCTIONS,
    ARCHITECTURE,
    AUTHORIZER,
    EMAIL_CONSENT,
    FUNCTIONS_BY_KEY,
    QUERY,
    REPORT_ENGINE,
    REPORTER,
    RUNTIME,
    FunctionSpec,
)
from components.observability import ACCESS_LOG_KEY, API_STAGE
from components.packaging import layer_archive
from components.report_email import ReportEmailResources
from components.settings import StackSettings
from handlers.shared import env
from handlers.shared.api_gateway import cors_configuration
from handlers.shared.routes import CUSTOM, DEPLOYED_ROUTES

# API Gateway gives up on an HTTP API integration after 30 s.
MAX_INTEGRATION_TIMEOUT_MS = 30_000
AUTHORIZER_CACHE_SECONDS = 300

# Deferred reports: small batches, at most two engine instances at a time (SES
# and DynamoDB stay calm without reserving concurrency the schedule routes need).
REPORT_JOBS_BATCH_SIZE = 2
REPORT_JOBS_MAX_CONCURRENCY = 2
REPORT_JOBS_MAX_RECEIVES = 3
REPORT_JOBS_RETENTION_SECONDS = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600  # the longest SQS keeps a message
# One shard per invocation: a failing shard is retried (and finally recorded
# failed) on its own, never with a healthy one.
AGGREGATOR_SHARDS_BATCH_SIZE = 1
# A shard not run within a day is superseded by the hourly runs' catch-up.
AGGREGATOR_SHARDS_RETENTION_SECONDS = 24 * 3600
# AWS's advice for queues feeding Lambda: a visibility timeout of 6x the function
# timeout, so a message is not redelivered while a batch (and its retries) still runs.
VISIBILITY_TIMEOUT_MULTIPLE = 6

# What the stage writes per request: enough to follow one call end to end.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTime",
        "sourceIp": "$context.identity.sourceIp",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "path": "$context.path",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationStatus": "$context.integrationStatus",
        "integrationErrorMessage": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
        "customerId": "$context.authorizer.customer_id",
    },
    separators=(",", ":"),
)


@dataclass(frozen=True)
class ScheduleSpec:
    function: FunctionSpec
    name_suffix: str
    expression: str
    # A delivery older than one interval is superseded by the next run.
    max_event_age_seconds: int


ANALYTICS_SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(AGGREGATOR, "aggregator-hourly", "rate(1 hour)", 3600),
    ScheduleSpec(REPORT_ENGINE, "report-engine", "rate(15 minutes)", 900),
)


@dataclass(frozen=True)
class QueueNames:
    report_jobs: str
    report_jobs_dead_letter: str
    aggregator_shards: str
    aggregator_shards_dead_letter: str
    async_failures: str
    email_feedback_dead_letter: str

    @classmethod
    def for_prefix(cls, name_prefix: str) -> QueueNames:
        return cls(
            report_jobs=f"{name_prefix}-analytics-report-jobs",
            report_jobs_dead_letter=f"{name_prefix}-analytics-report-jobs-dlq",
            aggregator_shards=f"{name_prefix}-analytics-aggregator-shards",
            aggregator_shards_dead_letter=f"{name_prefix}-analytics-aggregator-shards-dlq",
            async_failures=f"{name_prefix}-analytics-async-failures",
            email_feedback_dead_letter=f"{name_prefix}-analytics-email-feedback-dlq",
        )

    @property
    def dead_letter(self) -> tuple[str, ...]:
        """Queues where failed work waits for a human: alarmed on depth."""
        return (
            self.report_jobs_dead_letter,
            self.aggregator_shards_dead_letter,
            self.async_failures,
            self.email_feedback_dead_letter,
        )


def integration_timeout_ms(spec: FunctionSpec) -> int:
    """As long as the function may run, within API Gateway's limit.

    Only the report engine runs longer than 30 s, in its scheduled runs; its
    schedule routes are single DynamoDB calls.
    """
    return min(spec.timeout_seconds * 1000, MAX_INTEGRATION_TIMEOUT_MS)


@dataclass
class AnalyticsApiArgs:
    settings: StackSettings
    account_id: pulumi.Input[str]
    tables: Mapping[str, aws.dynamodb.Table]
    bucket: aws.s3.Bucket
    # Production's reports key; None: the bucket uses SSE-S3.
    data_key: aws.kms.Key | None
    # Function key -> its log group, plus ACCESS_LOG_KEY (AnalyticsObservability).
    log_groups: Mapping[str, aws.cloudwatch.LogGroup]


class AnalyticsApi(pulumi.ComponentResource):
    functions: dict[str, aws.lambda_.Function]
    layers: dict[str, aws.lambda_.LayerVersion]
    api: aws.apigatewayv2.Api
    stage: aws.apigatewayv2.Stage
    api_id: pulumi.Output[str]
    api_url: pulumi.Output[str]
    queue_names: QueueNames
    report_jobs_queue: aws.sqs.Queue
    report_jobs_dead_letter_queue: aws.sqs.Queue
    aggregator_shards_queue: aws.sqs.Queue
    aggregator_shards_dead_letter_queue: aws.sqs.Queue
    async_failures_queue: aws.sqs.Queue
    email_feedback_dead_letter_queue: aws.sqs.Queue
    email: ReportEmailResources
    schedules: dict[str, aws.scheduler.Schedule]

    def __init__(
        self, name: str, args: AnalyticsApiArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("securebase:analytics:AnalyticsApi", name, None, opts)
        settings = args.settings
        self.queue_names = QueueNames.for_prefix(settings.name_prefix)
        self._queues(name, settings)
        self.layers = {
            layer: self._layer(name, settings.name_prefix, layer)
            for layer in dict.fromkeys(layer for s in ANALYTICS_FUNCTIONS for layer in s.layers)
        }

        self.email = ReportEmailResources(name, settings, args.account_id, parent=self)
        # Created before the functions: the report engine's links point at it.
        self._api_resource(name, settings)

        policy_values: dict[str, pulumi.Input[str] | None] = {
            **{f"table:{key}": table.arn for key, table in args.tables.items()},
            "customers-table": settings.phase2_customers_table,
            "bucket": args.bucket.arn,
            "data-key": args.data_key.arn if args.data_key else None,
            "queue:report-jobs": self.report_jobs_queue.arn,
            "queue:aggregator-shards": self.aggregator_shards_queue.arn,
            "queue:async-failures": self.async_failures_queue.arn,
            "ses-identity": settings.ses_identity,
            "report-sender": settings.report_sender,
            "ses-configuration-set": self.email.configuration_set.name,
            "email-link-key": self.email.link_key.arn,
            "jwt-secret-name": settings.jwt.secret_name,
        }
        deployed = {
            spec.key: deploy_function(
                f"{name}-{spec.key}",
                FunctionArgs(
                    spec=spec,
                    settings=settings,
                    account_id=args.account_id,
                    variables=self._variables(spec, args),
                    policy_values=policy_values,
                    log_group=args.log_groups[spec.key],
                    layer_arns=[self.layers[layer].arn for layer in spec.layers],
                    on_failure_queue_arn=self.async_failures_queue.arn,
                ),
                parent=self,
            )
            for spec in ANALYTICS_FUNCTIONS
        }
        self.functions = {key: d.function for key, d in deployed.items()}

        self._http_api(name, args)
        self.email_feedback_dead_letter_queue = self.email.subscribe(
            self.functions[EMAIL_CONSENT.key],
            self.queue_names.email_feedback_dead_letter,
            DEAD_LETTER_RETENTION_SECONDS,
        )
        self._report_jobs_consumer(name, deployed[REPORT_ENGINE.key])
        self._aggregator_shards_consumer(name, deployed[AGGREGATOR_SHARD.key], settings)
        self._schedules(name, args)

        self.register_outputs(
            {
                "api_id": self.api_id,
                "api_url": self.api_url,
                "function_names": {key: f.name for key, f in self.functions.items()},
                "layer_arns": {key: layer.arn for key, layer in self.layers.items()},
                "schedule_names": {key: s.name for key, s in self.schedules.items()},
                "report_jobs_queue_url": self.report_jobs_queue.url,
                "aggregator_shards_queue_url": self.aggregator_shards_queue.url,
            }
        )

    @property
    def dead_letter_queue_urls(self) -> dict[str, pulumi.Output[str]]:
        return {
            self.queue_names.report_jobs_dead_letter: self.report_jobs_dead_letter_queue.url,
            self.queue_names.aggregator_shards_dead_letter: (
                self.aggregator_shards_dead_letter_queue.url
            ),
            self.queue_names.async_failures: self.async_failures_queue.url,
            self.queue_names.email_feedback_dead_letter: (
                self.email_feedback_dead_letter_queue.url
            ),
        }

    def _queues(self, name: str, settings: StackSettings) -> None:
        names = self.queue_names
        self.async_failures_queue = self._queue(
            f"{name}-async-failures",
            names.async_failures,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        )
        self.report_jobs_queue, self.report_jobs_dead_letter_queue = self._work_queue(
            f"{name}-report-jobs",
            names.report_jobs,
            names.report_jobs_dead_letter,
            consumer=REPORT_ENGINE,
            retention_seconds=REPORT_JOBS_RETENTION_SECONDS,
            max_receives=REPORT_JOBS_MAX_RECEIVES,
        )
        # The shard's last delivery records it failed; only a shard that cannot even
        # do that (a crash, a timeout) is moved to the dead-letter queue.
        self.aggregator_shards_queue, self.aggregator_shards_dead_letter_queue = self._work_queue(
            f"{name}-aggregator-shards",
            names.aggregator_shards,
            names.aggregator_shards_dead_letter,
            consumer=AGGREGATOR_SHARD,
            retention_seconds=AGGREGATOR_SHARDS_RETENTION_SECONDS,
            max_receives=settings.aggregator.shard_max_attempts,
        )

    def _work_queue(
        self,
        resource_name: str,
        queue_name: str,
        dead_letter_name: str,
        *,
        consumer: FunctionSpec,
        retention_seconds: int,
        max_receives: int,
    ) -> tuple[aws.sqs.Queue, aws.sqs.Queue]:
        """A queue feeding `consumer`, and the dead-letter queue it redrives to."""
        dead_letter = self._queue(
            f"{resource_name}-dlq",
            dead_letter_name,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        )
        queue = self._queue(
            resource_name,
            queue_name,
            visibility_timeout_seconds=VISIBILITY_TIMEOUT_MULTIPLE * consumer.timeout_seconds,
            message_retention_seconds=retention_seconds,
            redrive_policy=dead_letter.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}
                )
            ),
        )
        return queue, dead_letter

    def _queue(self, resource_name: str, queue_name: str, **settings: Any) -> aws.sqs.Queue:
        """An encrypted queue that refuses requests without TLS."""
        child = pulumi.ResourceOptions(parent=self)
        queue = aws.sqs.Queue(
            resource_name, name=queue_name, sqs_managed_sse_enabled=True, **settings, opts=child
        )
        aws.sqs.QueuePolicy(
            f"{resource_name}-tls-only",
            queue_url=queue.url,
            policy=queue.arn.apply(lambda arn: json.dumps(iam.tls_only_policy("sqs:*", arn))),
            opts=child,
        )
        return queue

    def _layer(self, name: str, name_prefix: str, layer: str) -> aws.lambda_.LayerVersion:
        built = layer_archive(layer)
        return aws.lambda_.LayerVersion(
            f"{name}-layer-{layer}",
            layer_name=f"{name_prefix}-analytics-{layer}",
            description=f"SecureBase analytics {layer} dependencies (layers/{layer})",
            code=built.archive(),
            source_code_hash=built.base64_sha256,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _variables(
        self, spec: FunctionSpec, args: AnalyticsApiArgs
    ) -> dict[str, pulumi.Input[str]]:
        """The variables CONTRACTS pins for each function: names and ARNs, never secrets."""
        settings = args.settings
        tables = {key: table.name for key, table in args.tables.items()}
        cors = ",".join(settings.cors_allowed_origins)
        # What both report functions read: the data, where reports go, for how long.
        reporting: dict[str, pulumi.Input[str]] = {
            env.METRICS_TABLE: tables["metrics"],
            env.REPORTS_TABLE: tables["reports"],
            env.REPORTS_BUCKET: args.bucket.bucket,
            env.REPORT_URL_EXPIRY_SECONDS: str(settings.report_url_expiry_seconds),
            env.REPORT_RETENTION_DAYS: str(settings.report_retention_days),
            env.CORS_ALLOWED_ORIGINS: cors,
        }
        if args.data_key is not None:
            reporting[env.REPORTS_KMS_KEY_ARN] = args.data_key.arn

        if spec.key == AUTHORIZER.key:
            jwt = settings.jwt
            keys = (
                {env.JWT_SECRET_ID: jwt.secret_name}
                if jwt.secret_name is not None
                else {env.JWT_JWKS_URL: jwt.jwks_url}
            )
            return {
                env.JWT_ISSUER: jwt.issuer,
                env.JWT_AUDIENCE: jwt.audience,
                env.JWT_TENANT_CLAIM: jwt.tenant_claim,
                env.JWT_MAX_LIFETIME_SECONDS: str(jwt.max_token_lifetime_hours * 3600),
                # Tenants whose customer record is not active are denied.
                env.CUSTOMERS_TABLE: settings.phase2_customers_table,
                **keys,
            }
        if spec.key == QUERY.key:
            return {
                env.METRICS_TABLE: tables["metrics"],
                env.CACHE_TABLE: tables["report-cache"],
                env.CACHE_TTL_SECONDS: str(settings.cache_ttl_seconds),
                env.CORS_ALLOWED_ORIGINS: cors,
            }
        if spec.key == REPORTER.key:
            return {
                **reporting,
                env.CACHE_TABLE: tables["report-cache"],
                env.REPORT_JOBS_QUEUE_URL: self.report_jobs_queue.url,
                env.REPORT_MAX_PENDING_PER_TENANT: str(settings.report_max_pending_per_tenant),
            }
        if spec.key == REPORT_ENGINE.key:
            return {
                **reporting,
                env.SCHEDULES_TABLE: tables["report-schedules"],
                env.REPORT_SENDER: settings.report_sender,
                env.REPORT_EMAILS_TABLE: tables["report-emails"],
                env.CUSTOMERS_TABLE: settings.phase2_customers_table,
                env.REPORT_RECIPIENT_DOMAINS: ",".join(settings.report_recipient_domains),
                env.REPORT_EMAILS_PER_DAY: str(settings.report_emails_per_day),
                env.SES_CONFIGURATION_SET: self.email.configuration_set.name,
                env.EMAIL_LINK_KEY_ID: self.email.link_key.arn,
                env.EMAIL_LINKS_BASE_URL: self.api_url,
            }
        if spec.key == EMAIL_CONSENT.key:
            return {
                env.REPORT_EMAILS_TABLE: tables["report-emails"],
                env.EMAIL_LINK_KEY_ID: self.email.link_key.arn,
            }
        usage = settings.usage_source
        scaling = settings.aggregator
        # What both aggregator functions need to turn GetMetricData into samples and rollups.
        aggregating: dict[str, pulumi.Input[str]] = {
            env.METRICS_TABLE: tables["metrics"],
            env.USAGE_NAMESPACE: usage.namespace,
            env.USAGE_TENANT_DIMENSION: usage.tenant_dimension,
            env.USAGE_METRIC_NAMES: json.dumps(dict(usage.metric_names)),
            env.HOURLY_RETENTION_DAYS: str(settings.hourly_retention_days),
            env.AGGREGATOR_WRITE_CONCURRENCY: str(scaling.write_concurrency),
        }
        if spec.key == AGGREGATOR_SHARD.key:
            return {
                **aggregating,
                env.AGGREGATOR_SHARD_MAX_ATTEMPTS: str(scaling.shard_max_attempts),
            }
        return {
            **aggregating,
            env.CUSTOMERS_TABLE: settings.phase2_customers_table,
            env.COST_REFRESH_HOURS: str(settings.cost_refresh_hours),
            env.AGGREGATOR_SHARD_QUEUE_URL: self.aggregator_shards_queue.url,
            env.AGGREGATOR_SHARD_THRESHOLD: str(scaling.shard_threshold_tenants),
            env.AGGREGATOR_TENANTS_PER_SHARD: str(scaling.tenants_per_shard),
        }

    def _api_resource(self, name: str, settings: StackSettings) -> None:
        child = pulumi.ResourceOptions(parent=self)
        # API Gateway adds these headers to every response for a configured
        # origin (handlers.shared.api_gateway, which the local front door uses).
        cors = cors_configuration(settings.cors_allowed_origins)
        self.api = aws.apigatewayv2.Api(
            f"{name}-http",
            name=f"{settings.name_prefix}-analytics-api",
            description="SecureBase multi-tenant usage, cost and compliance analytics",
            protocol_type="HTTP",
            cors_configuration=aws.apigatewayv2.ApiCorsConfigurationArgs(
                allow_origins=list(cors.allow_origins),
                allow_methods=list(cors.allow_methods),
                allow_headers=list(cors.allow_headers),
                max_age=cors.max_age_seconds,
            ),
            opts=child,
        )
        self.api_id = self.api.id
        self.api_url = self.api.api_endpoint

    def _http_api(self, name: str, args: AnalyticsApiArgs) -> None:
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        execution_arn = self.api.execution_arn

        authorizer_function = self.functions[AUTHORIZER.key]
        authorizer = aws.apigatewayv2.Authorizer(
            f"{name}-authorizer",
            api_id=self.api.id,
            name=f"{settings.name_prefix}-analytics-jwt",
            authorizer_type="REQUEST",
            authorizer_uri=authorizer_function.invoke_arn,
            authorizer_payload_format_version="2.0",
            enable_simple_responses=True,
            identity_sources=["$request.header.Authorization"],
            # Keyed by the Authorization header: one verification per token per 5 minutes.
            authorizer_result_ttl_in_seconds=AUTHORIZER_CACHE_SECONDS,
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-authorizer-invoke",
            function=authorizer_function.name,
            action="lambda:InvokeFunction",
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(execution_arn, "/authorizers/", authorizer.id),
            opts=child,
        )

        integrations = {
            spec.key: aws.apigatewayv2.Integration(
                f"{name}-integration-{spec.key}",
                api_id=self.api.id,
                integration_type="AWS_PROXY",
                integration_method="POST",
                integration_uri=self.functions[spec.key].invoke_arn,
                payload_format_version="2.0",
                timeout_milliseconds=integration_timeout_ms(spec),
                opts=child,
            )
            for spec in dict.fromkeys(FUNCTIONS_BY_KEY[route.function] for route in DEPLOYED_ROUTES)
        }
        routes = []
        for route in DEPLOYED_ROUTES:
            authorized = route.authorization == CUSTOM
            routes.append(
                aws.apigatewayv2.Route(
                    f"{name}-route-{route.slug}",
                    api_id=self.api.id,
                    route_key=route.key,
                    target=pulumi.Output.concat("integrations/", integrations[route.function].id),
                    authorization_type=route.authorization,
                    authorizer_id=authorizer.id if authorized else None,
                    opts=child,
                )
            )
            aws.lambda_.Permission(
                f"{name}-invoke-{route.slug}",
                function=self.functions[route.function].name,
                action="lambda:InvokeFunction",
                principal="apigateway.amazonaws.com",
                # Any stage, this method and path only.
                source_arn=pulumi.Output.concat(execution_arn, "/*/", route.source_arn_path),
                opts=child,
            )

        self.stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=self.api.id,
            name=API_STAGE,
            auto_deploy=True,
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=args.log_groups[ACCESS_LOG_KEY].arn,
                format=ACCESS_LOG_FORMAT,
            ),
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=settings.api_throttle_rate_limit,
                throttling_burst_limit=settings.api_throttle_burst_limit,
                # Per-route metrics (ApiId, Method, Resource, Stage), which the route
                # latency alarms watch; API Gateway publishes them only with this on
                # (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html).
                detailed_metrics_enabled=True,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=routes),
        )

    def _report_jobs_consumer(self, name: str, engine: DeployedFunction) -> None:
        aws.lambda_.EventSourceMapping(
            f"{name}-report-jobs-consumer",
            event_source_arn=self.report_jobs_queue.arn,
            function_name=engine.function.arn,
            batch_size=REPORT_JOBS_BATCH_SIZE,
            # The engine names the jobs that failed; the others are not retried.
            function_response_types=["ReportBatchItemFailures"],
            scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(
                maximum_concurrency=REPORT_JOBS_MAX_CONCURRENCY
            ),
            # Lambda checks that the role may poll the queue.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[engine.policy]),
        )

    def _aggregator_shards_consumer(
        self, name: str, shard: DeployedFunction, settings: StackSettings
    ) -> None:
        aws.lambda_.EventSourceMapping(
            f"{name}-aggregator-shards-consumer",
            event_source_arn=self.aggregator_shards_queue.arn,
            function_name=shard.function.arn,
            batch_size=AGGREGATOR_SHARDS_BATCH_SIZE,
            # A failing shard is delivered again until its last attempt.
            function_response_types=["ReportBatchItemFailures"],
            scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(
                maximum_concurrency=settings.aggregator.shard_concurrency
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[shard.policy]),
        )

    def _schedules(self, name: str, args: AnalyticsApiArgs) -> None:
        prefix = args.settings.name_prefix
        targets = [self.functions[s.function.key] for s in ANALYTICS_SCHEDULES]
        role, policy = scheduler_role(
            f"{name}-scheduler-role",
            f"{prefix}-analytics-scheduler",
            args.account_id,
            targets,
            self.async_failures_queue.arn,
            parent=self,
        )
        self.schedules = {
            schedule.function.key: schedule_function(
                f"{name}-schedule-{schedule.function.key}",
                schedule_name=f"{prefix}-analytics-{schedule.name_suffix}",
                expression=schedule.expression,
                function=self.functions[schedule.function.key],
                role_arn=role.arn,
                dead_letter_queue_arn=self.async_failures_queue.arn,
                max_event_age_seconds=schedule.max_event_age_seconds,
                parent=self,
                depends_on=[policy],
            )
            for schedule in ANALYTICS_SCHEDULES
        }
