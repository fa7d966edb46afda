"""AnalyticsObservability: log groups, the alerts topic, the alarms and the dashboard.

It owns every function's log group, so the groups (with their retention and
their encryption key) exist before the functions that write to them. Every
alarm notifies the alerts topic when it fires and when it recovers
(components.alarms, shared with Phase2Monitor).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.alarms import (
    FIVE_MINUTES,
    ONE_DAY,
    ONE_HOUR,
    AlarmFactory,
    ApiMetrics,
    Metric,
    api_5xx_alarm,
    lambda_metric,
    latency_alarm_of,
    sum_queries,
)
from components.dashboards import (
    api_requests_widget,
    dashboard_body,
    dynamodb_capacity_widget,
    dynamodb_throttles_widget,
    lambda_widgets,
    metric_widget,
)
from components.functions import REPORTER, FunctionSpec
from components.settings import StackSettings
from handlers.shared.routes import ROUTES, Route
from handlers.shared.telemetry import (
    AGGREGATOR_RUNS,
    AGGREGATOR_SHARD_FAILURES,
    AGGREGATOR_TENANT_FAILURES,
    DEFAULT_METRICS_NAMESPACE,
    EMAIL_QUOTA_EXCEEDED,
    REPORT_FAILURES,
    REPORTS_GENERATED,
)

ACCESS_LOG_KEY = "api-access"  # the API stage's access log group among the log groups
API_STAGE = "$default"  # the HTTP API's one stage (AnalyticsApi), auto-deployed
# Undelivered pages are kept as long as SQS keeps anything.
WEBHOOK_DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
# The actions CloudWatch Logs needs on a customer managed key (its user guide's key policy).
LOGS_KEY_ACTIONS = (
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
)


@dataclass
class AnalyticsObservabilityArgs:
    settings: StackSettings
    account_id: pulumi.Input[str]
    # Every function whose log group and alarms this component owns.
    functions: Sequence[FunctionSpec]
    # Analytics table key -> table name.
    table_names: Mapping[str, pulumi.Input[str]]
    bucket_name: pulumi.Input[str]
    # The HTTP API's id: created later by AnalyticsApi, hence a deferred output.
    api_id: pulumi.Input[str]
    # Queues that only fill up when something failed.
    dead_letter_queue_names: Sequence[str]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class AnalyticsObservability(pulumi.ComponentResource):
    logs_key: aws.kms.Key
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    alerts_key: aws.kms.Key
    alerts_topic: aws.sns.Topic
    # Only with a webhook subscription (alertWebhookUrl).
    webhook_dead_letter_queue: aws.sqs.Queue | None
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard

    def __init__(
        self,
        name: str,
        args: AnalyticsObservabilityArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("securebase:analytics:AnalyticsObservability", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        group_names = {
            **{spec.key: spec.log_group_name(settings.name_prefix) for spec in args.functions},
            ACCESS_LOG_KEY: f"/aws/apigateway/{settings.name_prefix}-analytics-api-access",
        }
        self._logs_key(name, args, list(group_names.values()))
        self.log_groups = {
            key: aws.cloudwatch.LogGroup(
                f"{name}-logs-{key}",
                name=group_name,
                retention_in_days=settings.log_retention_days,
                # CloudWatch Logs encrypts with the key itself (the key policy lets it):
                # the functions and API Gateway that write here need no KMS permission.
                kms_key_id=self.logs_key.arn,
                opts=child,
            )
            for key, group_name in group_names.items()
        }

        self._alerts_topic(name, args)
        factory = AlarmFactory(
            name, f"{settings.name_prefix}-analytics", self.alerts_topic.arn, parent=self
        )
        self._function_alarms(factory, args)
        self._table_alarms(factory, args)
        self._api_alarms(factory, args)
        self._workload_alarms(factory, args)
        self.alarms = factory.alarms
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{settings.name_prefix}-analytics",
            dashboard_body=dashboard_body(self._widgets(args)),
            opts=child,
        )

        self.register_outputs(
            {
                "log_group_names": {key: group.name for key, group in self.log_groups.items()},
                "logs_key_arn": self.logs_key.arn,
                "alerts_topic_arn": self.alerts_topic.arn,
                "alarm_names": self.alarm_names,
                "dashboard_name": self.dashboard.dashboard_name,
            }
        )

    @property
    def alarm_names(self) -> list[pulumi.Output[str]]:
        return [alarm.name for alarm in self.alarms]

    def _key(
        self,
        resource_name: str,
        settings: StackSettings,
        *,
        encrypts: str,
        alias: str,
        policy: pulumi.Output[str],
    ) -> aws.kms.Key:
        """A rotating customer managed key, aliased `<name_prefix>-analytics-<alias>`."""
        key = aws.kms.Key(
            resource_name,
            description=f"{settings.name_prefix} analytics {encrypts}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            # Deleting the key would make what it encrypted unreadable: kept in production.
            opts=pulumi.ResourceOptions(parent=self, protect=settings.is_production),
        )
        aws.kms.Alias(
            f"{resource_name}-alias",
            name=f"alias/{settings.name_prefix}-analytics-{alias}",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return key

    def _logs_key(
        self, name: str, args: AnalyticsObservabilityArgs, group_names: list[str]
    ) -> None:
        settings = args.settings
        self.logs_key = self._key(
            f"{name}-logs-key",
            settings,
            encrypts="log groups",
            alias="logs",
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: json.dumps(logs_key_policy(settings.region, account, group_names))
            ),
        )

    def _alerts_topic(self, name: str, args: AnalyticsObservabilityArgs) -> None:
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        webhook = settings.alert_webhook_url
        # A customer managed key: CloudWatch alarms cannot publish to a topic
        # encrypted with the AWS managed aws/sns key, whose policy cannot be changed.
        # It also encrypts the webhook's dead-letter queue, which SNS writes to.
        self.alerts_key = self._key(
            f"{name}-alerts-key",
            settings,
            encrypts="alerts topic and its dead-letter queue",
            alias="alerts",
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: json.dumps(
                    alerts_key_policy(account, sns_dead_letter_queue=webhook is not None)
                )
            ),
        )
        self.alerts_topic = aws.sns.Topic(
            f"{name}-alerts",
            name=f"{settings.name_prefix}-analytics-alerts",
            kms_master_key_id=self.alerts_key.arn,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self.alerts_topic.arn,
            policy=pulumi.Output.all(self.alerts_topic.arn, args.account_id).apply(
                lambda values: json.dumps(
                    alerts_topic_policy(values[0], settings.region, values[1])
                )
            ),
            opts=child,
        )
        for email in settings.alert_emails:
            # Stays "pending confirmation" until the recipient clicks the link.
            aws.sns.TopicSubscription(
                f"{name}-alerts-email-{_slug(email)}",
                topic=self.alerts_topic.arn,
                protocol="email",
                endpoint=email,
                opts=child,
            )
        self.webhook_dead_letter_queue = None
        if webhook is not None:
            self.webhook_dead_letter_queue = self._webhook_dead_letter_queue(name, args)
            aws.sns.TopicSubscription(
                f"{name}-alerts-webhook",
                topic=self.alerts_topic.arn,
                protocol="https",
                endpoint=webhook,
                # Paging services confirm the subscription themselves.
                endpoint_auto_confirms=True,
                # What SNS still cannot deliver after its retries (the paging service
                # down or refusing) waits here, and its alarm emails the on-call.
                redrive_policy=self.webhook_dead_letter_queue.arn.apply(
                    lambda arn: json.dumps({"deadLetterTargetArn": arn})
                ),
                opts=child,
            )

    def _webhook_dead_letter_queue(
        self, name: str, args: AnalyticsObservabilityArgs
    ) -> aws.sqs.Queue:
        """The webhook subscription's dead-letter queue, which only the alerts topic may fill.

        SNS needs a customer managed key on an encrypted dead-letter queue (its key
        policy lets SNS use it) and a queue policy letting the topic send
        (https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html).
        """
        child = pulumi.ResourceOptions(parent=self)
        queue = aws.sqs.Queue(
            f"{name}-alerts-webhook-dlq",
            name=webhook_dead_letter_queue_name(args.settings.name_prefix),
            kms_master_key_id=self.alerts_key.arn,
            message_retention_seconds=WEBHOOK_DEAD_LETTER_RETENTION_SECONDS,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-alerts-webhook-dlq-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, self.alerts_topic.arn, args.account_id).apply(
                lambda values: json.dumps(webhook_dead_letter_queue_policy(*values))
            ),
            opts=child,
        )
        return queue

    def _function_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        settings = args.settings
        thresholds = settings.alarms
        for spec in args.functions:
            function_name = spec.function_name(settings.name_prefix)
            factory.create(
                f"{spec.key}-errors",
                f"{spec.key} failed {thresholds.function_errors_per_hour} or more times in an hour.",
                comparison="GreaterThanOrEqualToThreshold",
                threshold=thresholds.function_errors_per_hour,
                metric=lambda_metric("Errors", function_name, "Sum", ONE_HOUR),
            )
            factory.create(
                f"{spec.key}-throttles",
                f"{spec.key} was throttled: invocations were rejected or delayed.",
                comparison="GreaterThanThreshold",
                threshold=0,
                metric=lambda_metric("Throttles", function_name, "Sum", FIVE_MINUTES),
            )
            limit_ms = spec.timeout_seconds * 1000 * thresholds.duration_percent_of_timeout / 100
            factory.create(
                f"{spec.key}-duration-p95",
                f"{spec.key} p95 duration is above {thresholds.duration_percent_of_timeout}% "
                f"of its {spec.timeout_seconds} s timeout: it is about to time out.",
                comparison="GreaterThanThreshold",
                threshold=limit_ms,
                metric=lambda_metric("Duration", function_name, "p95", FIVE_MINUTES),
            )

    def _table_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        # ThrottledRequests and SystemErrors exist per (TableName, Operation):
        # add up the operations the functions may call on each table.
        operations = iam.table_operations()

        def per_operation(
            key: str, table_name: pulumi.Input[str], metric_name: str
        ) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
            return sum_queries(
                {
                    op.lower(): Metric(
                        "AWS/DynamoDB",
                        metric_name,
                        {"TableName": table_name, "Operation": op},
                        "Sum",
                        FIVE_MINUTES,
                    )
                    for op in operations[key]
                },
                f"{metric_name} on {key}",
            )

        for key, table_name in args.table_names.items():
            factory.create(
                f"table-{key}-throttles",
                f"DynamoDB throttled requests to {key} ({', '.join(operations[key])}).",
                comparison="GreaterThanOrEqualToThreshold",
                threshold=args.settings.alarms.table_throttles_per_5_minutes,
                metric_queries=per_operation(key, table_name, "ThrottledRequests"),
            )
            factory.create(
                f"table-{key}-system-errors",
                f"DynamoDB answered requests to {key} with 500s for 10 minutes.",
                comparison="GreaterThanOrEqualToThreshold",
                threshold=1,
                metric_queries=per_operation(key, table_name, "SystemErrors"),
                # The SDKs retry these; only a sustained run is worth a page.
                evaluation_periods=2,
            )

    def _api_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        thresholds = args.settings.alarms
        api_5xx_alarm(
            factory,
            ApiMetrics.http(args.api_id),
            subject="API",
            max_5xx_percent=thresholds.api_5xx_rate_percent,
        )
        # One latency alarm per route: POST /analytics/reports renders for up to 28 s,
        # so a few reports in a window would push a whole-API p95 over any budget a
        # query route should keep. The report routes get a report-sized budget.
        for route in ROUTES:
            reports = route.function == REPORTER.key
            budget = thresholds.report_latency_p95_ms if reports else thresholds.api_latency_p95_ms
            latency_alarm_of(
                factory,
                f"api-latency-p95-{route.slug}",
                route_metrics(args.api_id, route),
                subject=route.key,
                statistic="p95",
                max_latency_ms=budget,
            )

    def _workload_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        settings = args.settings
        thresholds = settings.alarms
        environment = {"Environment": settings.environment}
        factory.create(
            "report-failures",
            f"More than {thresholds.failed_reports_per_hour} reports failed in an hour.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.failed_reports_per_hour,
            metric=Metric(DEFAULT_METRICS_NAMESPACE, REPORT_FAILURES, environment, "Sum", ONE_HOUR),
        )
        factory.create(
            "email-quota-exceeded",
            "A tenant sent its emails for the UTC day (reportEmailsPerDay): scheduled runs "
            "stopped sending (last_status quota_exceeded). A tenant that keeps reaching it may "
            "be mailing more people than it should.",
            comparison="GreaterThanThreshold",
            threshold=0,
            metric=Metric(
                DEFAULT_METRICS_NAMESPACE, EMAIL_QUOTA_EXCEEDED, environment, "Sum", ONE_HOUR
            ),
        )
        hours = thresholds.aggregator_missing_hours
        factory.create(
            "aggregator-not-running",
            f"The aggregator has not completed a run in {hours} hours: analytics are going stale.",
            comparison="LessThanThreshold",
            threshold=1,
            evaluation_periods=hours,
            # No data at all is exactly the failure this alarm is for.
            treat_missing_data="breaching",
            metric=Metric(DEFAULT_METRICS_NAMESPACE, AGGREGATOR_RUNS, environment, "Sum", ONE_HOUR),
        )
        factory.create(
            "aggregator-shard-failures",
            "An aggregator shard failed on every delivery: its tenants have no usage for the "
            "run's hours until they are backfilled.",
            comparison="GreaterThanThreshold",
            threshold=0,
            metric=Metric(
                DEFAULT_METRICS_NAMESPACE, AGGREGATOR_SHARD_FAILURES, environment, "Sum", ONE_HOUR
            ),
        )
        analytics_prefix = f"{settings.name_prefix}-analytics-"
        for queue_name in self._dead_letter_queue_names(args):
            factory.create(
                f"{queue_name.removeprefix(analytics_prefix)}-not-empty",
                f"{queue_name} holds failed work to inspect and redrive.",
                comparison="GreaterThanThreshold",
                threshold=0,
                metric=Metric(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": queue_name},
                    "Maximum",
                    FIVE_MINUTES,
                ),
            )

    def _dead_letter_queue_names(self, args: AnalyticsObservabilityArgs) -> tuple[str, ...]:
        """The stack's dead-letter queues, and the webhook's when there is one."""
        webhook = (
            ()
            if self.webhook_dead_letter_queue is None
            else (webhook_dead_letter_queue_name(args.settings.name_prefix),)
        )
        return (*args.dead_letter_queue_names, *webhook)

    def _widgets(self, args: AnalyticsObservabilityArgs) -> list[dict[str, Any]]:
        settings = args.settings
        region = settings.region
        functions = [spec.function_name(settings.name_prefix) for spec in args.functions]
        tables = list(args.table_names.values())
        api = ApiMetrics.http(args.api_id)
        environment = ["Environment", settings.environment]
        custom = DEFAULT_METRICS_NAMESPACE

        return [
            *lambda_widgets(functions, region),
            api_requests_widget(api, region),
            metric_widget(
                "API latency (ms)",
                [
                    ["AWS/ApiGateway", "Latency", *api.dimension_row, {"stat": "p50"}],
                    ["AWS/ApiGateway", "Latency", *api.dimension_row, {"stat": "p95"}],
                    ["AWS/ApiGateway", "IntegrationLatency", *api.dimension_row, {"stat": "p95"}],
                ],
                region,
            ),
            dynamodb_capacity_widget(tables, region),
            dynamodb_throttles_widget(tables, region),
            metric_widget(
                "Reports and aggregator runs",
                [
                    [custom, metric, *environment]
                    for metric in (
                        REPORTS_GENERATED,
                        REPORT_FAILURES,
                        EMAIL_QUOTA_EXCEEDED,
                        AGGREGATOR_RUNS,
                        AGGREGATOR_TENANT_FAILURES,
                        AGGREGATOR_SHARD_FAILURES,
                    )
                ],
                region,
                period=ONE_HOUR,
            ),
            metric_widget(
                "Reports bucket (daily)",
                [
                    [
                        "AWS/S3",
                        "BucketSizeBytes",
                        "BucketName",
                        args.bucket_name,
                        "StorageType",
                        "StandardStorage",
                    ],
                    [
                        "AWS/S3",
                        "NumberOfObjects",
                        "BucketName",
                        args.bucket_name,
                        "StorageType",
                        "AllStorageTypes",
                        {"yAxis": "right"},
                    ],
                ],
                region,
                stat="Average",
                period=ONE_DAY,
            ),
            metric_widget(
                "Dead-letter queues (messages waiting)",
                [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue]
                    for queue in self._dead_letter_queue_names(args)
                ],
                region,
                stat="Maximum",
            ),
            {
                "type": "alarm",
                "width": 24,
                "height": 6,
                "properties": {
                    "title": "Alarms",
                    "alarms": [alarm.arn for alarm in self.alarms],
                },
            },
        ]


def route_metrics(api_id: pulumi.Input[str], route: Route) -> ApiMetrics:
    """The metrics of one route of the analytics API's stage."""
    return ApiMetrics.http_route(api_id, API_STAGE, route.method, route.path)


def webhook_dead_letter_queue_name(name_prefix: str) -> str:
    return f"{name_prefix}-analytics-alerts-webhook-dlq"


def webhook_dead_letter_queue_policy(
    queue_arn: str, topic_arn: str, account_id: str
) -> dict[str, Any]:
    """Only the alerts topic may move undeliverable notifications here, over TLS."""
    return iam.sns_dead_letter_queue_policy(
        "AlertsTopicDeadLetters", queue_arn, topic_arn, account_id
    )


def logs_key_policy(region: str, account_id: str, group_names: list[str]) -> dict[str, Any]:
    """The account administers the key; CloudWatch Logs may use it for exactly these groups.

    The documented key policy for log group encryption, with the
    kms:EncryptionContext:aws:logs:arn condition naming each group
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html),
    so the key cannot encrypt any other log group, in this account or another;
    aws:SourceAccount as on every service principal of every key.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            _account_administers(account_id),
            {
                "Sid": "CloudWatchLogsEncrypt",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": list(LOGS_KEY_ACTIONS),
                "Resource": "*",
                "Condition": {
                    **iam.for_this_account(account_id),
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": [
                            f"arn:aws:logs:{region}:{account_id}:log-group:{group}"
                            for group in group_names
                        ]
                    },
                },
            },
        ],
    }


def _account_administers(account_id: str) -> dict[str, Any]:
    """The account administers the key; IAM policies grant its use."""
    return {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def alerts_key_policy(account_id: str, *, sns_dead_letter_queue: bool) -> dict[str, Any]:
    """CloudWatch alarms publish to the topic with the key (the SNS guide's key policy
    for AWS event sources, https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html);
    SNS encrypts what it moves to the webhook's dead-letter queue with it."""
    statements = [
        # The Phase 2 monitor's role publishes with it (IAM grants that).
        _account_administers(account_id),
        iam.service_uses_key("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com", account_id),
    ]
    if sns_dead_letter_queue:
        statements.append(
            iam.service_uses_key("SnsDeadLetterQueue", "sns.amazonaws.com", account_id)
        )
    return {"Version": "2012-10-17", "Statement": statements}


def alerts_topic_policy(topic_arn: str, region: str, account_id: str) -> dict[str, Any]:
    """Only this account's alarms may publish as CloudWatch (no confused deputy), over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    **iam.for_this_account(account_id),
                    "ArnLike": {
                        "aws:SourceArn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:*"
                    },
                },
            },
            iam.deny_insecure_transport("sns:Publish", topic_arn),
        ],
    }
