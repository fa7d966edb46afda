"""AnalyticsObservability: log groups, the alerts topic, the alarms and the dashboard.

It owns every function's log group, so the groups (with their retention) exist
before the functions that write to them. Every alarm notifies the alerts topic
when it fires and when it recovers. `AlarmFactory` and the metric helpers are
shared with Phase2Monitor.
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
from components.functions import FunctionSpec
from components.settings import StackSettings
from handlers.shared.telemetry import (
    AGGREGATOR_RUNS,
    AGGREGATOR_TENANT_FAILURES,
    DEFAULT_METRICS_NAMESPACE,
    REPORT_FAILURES,
    REPORTS_GENERATED,
)

ACCESS_LOG_KEY = "api-access"  # the API stage's access log group among the log groups
FIVE_MINUTES = 300
ONE_HOUR = 3600
ONE_DAY = 86400


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


def metric_query(
    query_id: str,
    namespace: str,
    metric_name: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    stat: str,
    period: int,
) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=query_id,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=namespace,
            metric_name=metric_name,
            dimensions=dict(dimensions),
            stat=stat,
            period=period,
        ),
        return_data=False,
    )


def expression_query(expression: str, label: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    """The value the alarm compares: a metric math expression over the other queries."""
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id="result", expression=expression, label=label, return_data=True
    )


def rate_percent_queries(
    namespace: str,
    errors_metric: str,
    total_metric: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    label: str,
) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """errors / total in percent per 5 minutes; no traffic counts as 0%, not missing."""
    return [
        metric_query("errors", namespace, errors_metric, dimensions, "Sum", FIVE_MINUTES),
        metric_query("total", namespace, total_metric, dimensions, "Sum", FIVE_MINUTES),
        expression_query("IF(total > 0, 100 * FILL(errors, 0) / total, 0)", label),
    ]


class AlarmFactory:
    """Creates alarms named `<name_prefix>-<what>` that notify `topic_arn` both ways."""

    def __init__(
        self,
        resource_prefix: str,
        name_prefix: str,
        topic_arn: pulumi.Input[str],
        parent: pulumi.Resource,
    ):
        self._resource_prefix = resource_prefix
        self._name_prefix = name_prefix
        self._topic_arn = topic_arn
        self._parent = parent
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []

    def create(
        self,
        what: str,
        description: str,
        *,
        comparison: str,
        threshold: float,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        treat_missing_data: str = "notBreaching",
        **metric: Any,
    ) -> aws.cloudwatch.MetricAlarm:
        alarm = aws.cloudwatch.MetricAlarm(
            f"{self._resource_prefix}-alarm-{what}",
            name=f"{self._name_prefix}-{what}",
            alarm_description=description,
            actions_enabled=True,
            alarm_actions=[self._topic_arn],
            ok_actions=[self._topic_arn],
            comparison_operator=comparison,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm or evaluation_periods,
            treat_missing_data=treat_missing_data,
            **metric,
            opts=pulumi.ResourceOptions(parent=self._parent),
        )
        self.alarms.append(alarm)
        return alarm


def metric_widget(
    title: str,
    metrics: list[list[Any]],
    region: str,
    *,
    stat: str = "Sum",
    period: int = FIVE_MINUTES,
    width: int = 12,
) -> dict[str, Any]:
    """A time series widget; `metrics` rows are [namespace, name, dim, value, ..., {options}]."""
    return {
        "type": "metric",
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stat": stat,
            "period": period,
            "metrics": metrics,
        },
    }


def dashboard_body(widgets: list[dict[str, Any]]) -> pulumi.Output[str]:
    """The dashboard JSON once every name and id inside the widgets is known."""
    return pulumi.Output.from_input({"widgets": widgets}).apply(
        lambda body: json.dumps(body, separators=(",", ":"))
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class AnalyticsObservability(pulumi.ComponentResource):
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    alerts_key: aws.kms.Key
    alerts_topic: aws.sns.Topic
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

        self.log_groups = {
            spec.key: aws.cloudwatch.LogGroup(
                f"{name}-logs-{spec.key}",
                name=spec.log_group_name(settings.name_prefix),
                retention_in_days=settings.log_retention_days,
                opts=child,
            )
            for spec in args.functions
        }
        self.log_groups[ACCESS_LOG_KEY] = aws.cloudwatch.LogGroup(
            f"{name}-logs-{ACCESS_LOG_KEY}",
            name=f"/aws/apigateway/{settings.name_prefix}-analytics-api-access",
            retention_in_days=settings.log_retention_days,
            opts=child,
        )

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
                "alerts_topic_arn": self.alerts_topic.arn,
                "alarm_names": self.alarm_names,
                "dashboard_name": self.dashboard.dashboard_name,
            }
        )

    @property
    def alarm_names(self) -> list[pulumi.Output[str]]:
        return [alarm.name for alarm in self.alarms]

    def _alerts_topic(self, name: str, args: AnalyticsObservabilityArgs) -> None:
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        # A customer managed key: CloudWatch alarms cannot publish to a topic
        # encrypted with the AWS managed aws/sns key, whose policy cannot be changed.
        self.alerts_key = aws.kms.Key(
            f"{name}-alerts-key",
            description=f"{settings.name_prefix} analytics alerts topic",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: json.dumps(alerts_key_policy(account))
            ),
            # Deleting the key would make the alerts unreadable: kept in production.
            opts=pulumi.ResourceOptions(parent=self, protect=settings.is_production),
        )
        aws.kms.Alias(
            f"{name}-alerts-key-alias",
            name=f"alias/{settings.name_prefix}-analytics-alerts",
            target_key_id=self.alerts_key.key_id,
            opts=child,
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
        if settings.alert_webhook_url is not None:
            aws.sns.TopicSubscription(
                f"{name}-alerts-webhook",
                topic=self.alerts_topic.arn,
                protocol="https",
                endpoint=settings.alert_webhook_url,
                # Paging services confirm the subscription themselves.
                endpoint_auto_confirms=True,
                opts=child,
            )

    def _function_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        settings = args.settings
        thresholds = settings.alarms
        for spec in args.functions:
            function = {"FunctionName": spec.function_name(settings.name_prefix)}
            factory.create(
                f"{spec.key}-errors",
                f"{spec.key} failed {thresholds.function_errors_per_hour} or more times in an hour.",
                comparison="GreaterThanOrEqualToThreshold",
                threshold=thresholds.function_errors_per_hour,
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions=function,
                statistic="Sum",
                period=ONE_HOUR,
            )
            factory.create(
                f"{spec.key}-throttles",
                f"{spec.key} was throttled: invocations were rejected or delayed.",
                comparison="GreaterThanThreshold",
                threshold=0,
                namespace="AWS/Lambda",
                metric_name="Throttles",
                dimensions=function,
                statistic="Sum",
                period=FIVE_MINUTES,
            )
            limit_ms = spec.timeout_seconds * 1000 * thresholds.duration_percent_of_timeout / 100
            factory.create(
                f"{spec.key}-duration-p95",
                f"{spec.key} p95 duration is above {thresholds.duration_percent_of_timeout}% "
                f"of its {spec.timeout_seconds} s timeout: it is about to time out.",
                comparison="GreaterThanThreshold",
                threshold=limit_ms,
                namespace="AWS/Lambda",
                metric_name="Duration",
                dimensions=function,
                extended_statistic="p95",
                period=FIVE_MINUTES,
            )

    def _table_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        # ThrottledRequests and SystemErrors exist per (TableName, Operation):
        # add up the operations the functions may call on each table.
        operations = iam.table_operations()

        def table_alarm(
            key: str, table_name: pulumi.Input[str], metric_name: str, what: str, **alarm: Any
        ) -> None:
            queries = [
                metric_query(
                    op.lower(),
                    "AWS/DynamoDB",
                    metric_name,
                    {"TableName": table_name, "Operation": op},
                    "Sum",
                    FIVE_MINUTES,
                )
                for op in operations[key]
            ]
            ids = ", ".join(op.lower() for op in operations[key])
            factory.create(
                f"table-{key}-{what}",
                comparison="GreaterThanOrEqualToThreshold",
                metric_queries=[
                    *queries,
                    expression_query(f"SUM([{ids}])", f"{metric_name} on {key}"),
                ],
                **alarm,
            )

        for key, table_name in args.table_names.items():
            table_alarm(
                key,
                table_name,
                "ThrottledRequests",
                "throttles",
                description=f"DynamoDB throttled requests to {key} ({', '.join(operations[key])}).",
                threshold=args.settings.alarms.table_throttles_per_5_minutes,
            )
            table_alarm(
                key,
                table_name,
                "SystemErrors",
                "system-errors",
                description=f"DynamoDB answered requests to {key} with 500s for 10 minutes.",
                threshold=1,
                # The SDKs retry these; only a sustained run is worth a page.
                evaluation_periods=2,
            )

    def _api_alarms(self, factory: AlarmFactory, args: AnalyticsObservabilityArgs) -> None:
        thresholds = args.settings.alarms
        api = {"ApiId": args.api_id}
        # Two of the last three 5-minute periods: a single slow or failing burst
        # at low traffic does not page anyone.
        factory.create(
            "api-5xx-rate",
            f"More than {thresholds.api_5xx_rate_percent:g}% of API requests failed with 5xx.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.api_5xx_rate_percent,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            metric_queries=rate_percent_queries(
                "AWS/ApiGateway", "5xx", "Count", api, "5xx rate (%)"
            ),
        )
        factory.create(
            "api-latency-p95",
            f"API p95 latency is above {thresholds.api_latency_p95_ms} ms.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.api_latency_p95_ms,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            namespace="AWS/ApiGateway",
            metric_name="Latency",
            dimensions=api,
            extended_statistic="p95",
            period=FIVE_MINUTES,
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
            namespace=DEFAULT_METRICS_NAMESPACE,
            metric_name=REPORT_FAILURES,
            dimensions=environment,
            statistic="Sum",
            period=ONE_HOUR,
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
            namespace=DEFAULT_METRICS_NAMESPACE,
            metric_name=AGGREGATOR_RUNS,
            dimensions=environment,
            statistic="Sum",
            period=ONE_HOUR,
        )
        analytics_prefix = f"{settings.name_prefix}-analytics-"
        for queue_name in args.dead_letter_queue_names:
            factory.create(
                f"{queue_name.removeprefix(analytics_prefix)}-not-empty",
                f"{queue_name} holds failed work to inspect and redrive.",
                comparison="GreaterThanThreshold",
                threshold=0,
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": queue_name},
                statistic="Maximum",
                period=FIVE_MINUTES,
            )

    def _widgets(self, args: AnalyticsObservabilityArgs) -> list[dict[str, Any]]:
        settings = args.settings
        region = settings.region
        functions = [spec.function_name(settings.name_prefix) for spec in args.functions]
        tables = list(args.table_names.values())
        api = ["ApiId", args.api_id]
        environment = ["Environment", settings.environment]
        custom = DEFAULT_METRICS_NAMESPACE

        def per_function(metric: str) -> list[list[Any]]:
            return [["AWS/Lambda", metric, "FunctionName", f] for f in functions]

        return [
            metric_widget("Lambda invocations", per_function("Invocations"), region),
            metric_widget("Lambda errors", per_function("Errors"), region),
            metric_widget("Lambda throttles", per_function("Throttles"), region),
            metric_widget("Lambda duration p95 (ms)", per_function("Duration"), region, stat="p95"),
            metric_widget(
                "API requests and errors",
                [["AWS/ApiGateway", metric, *api] for metric in ("Count", "4xx", "5xx")],
                region,
            ),
            metric_widget(
                "API latency (ms)",
                [
                    ["AWS/ApiGateway", "Latency", *api, {"stat": "p50"}],
                    ["AWS/ApiGateway", "Latency", *api, {"stat": "p95"}],
                    ["AWS/ApiGateway", "IntegrationLatency", *api, {"stat": "p95"}],
                ],
                region,
            ),
            metric_widget(
                "DynamoDB consumed capacity",
                [
                    ["AWS/DynamoDB", metric, "TableName", table]
                    for table in tables
                    for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
                ],
                region,
            ),
            metric_widget(
                "DynamoDB throttle events",
                [
                    ["AWS/DynamoDB", metric, "TableName", table]
                    for table in tables
                    for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
                ],
                region,
            ),
            metric_widget(
                "Reports and aggregator runs",
                [
                    [custom, metric, *environment]
                    for metric in (
                        REPORTS_GENERATED,
                        REPORT_FAILURES,
                        AGGREGATOR_RUNS,
                        AGGREGATOR_TENANT_FAILURES,
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
                    for queue in args.dead_letter_queue_names
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


def alerts_key_policy(account_id: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # The account administers the key; IAM policies grant its use
                # (the Phase 2 monitor's role publishes with it).
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
            },
        ],
    }


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
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:*"
                    },
                },
            },
            iam.deny_insecure_transport("sns:Publish", topic_arn),
        ],
    }
