"""Phase2Monitor: watches the Phase 2 production resources during an observation window.

Every 6 hours, from the window's first day until its last, the monitor function
(handlers.phase2_monitor) reads the Phase 2 metrics, writes its reports to a
bucket whose objects expire after 30 days and publishes to the alerts topic
only when a threshold is violated. The schedule carries the window's start and
end dates, so it stops by itself. Alarms and a dashboard cover the same
resources between runs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.api import (
    FunctionArgs,
    deploy_function,
    schedule_function,
    scheduler_role,
)
from components.functions import PHASE2_MONITOR
from components.observability import (
    FIVE_MINUTES,
    AlarmFactory,
    dashboard_body,
    expression_query,
    metric_query,
    metric_widget,
    rate_percent_queries,
)
from components.secure_bucket import SecureBucket, SecureBucketArgs
from components.settings import Phase2Settings, StackSettings
from handlers.shared import env

MONITOR_PREFIX = "phase2-monitor/"
REPORT_EXPIRATION_DAYS = 30
SCHEDULE_EXPRESSION = "rate(6 hours)"
SCHEDULE_INTERVAL_SECONDS = 6 * 3600


@dataclass
class Phase2MonitorArgs:
    settings: StackSettings
    account_id: pulumi.Input[str]
    log_group: aws.cloudwatch.LogGroup
    alerts_topic_arn: pulumi.Input[str]
    # The key the alerts topic is encrypted with: publishing needs it.
    alerts_key_arn: pulumi.Input[str]
    # Production's data key for the reports bucket; None: SSE-S3.
    data_key_arn: pulumi.Input[str] | None
    # Where failed asynchronous invocations and undeliverable schedule events go.
    async_failures_queue_arn: pulumi.Input[str]
    # When the program runs: decides whether the window is ahead, under way or over.
    now: dt.datetime


@dataclass(frozen=True)
class ScheduleWindow:
    start_date: str | None
    end_date: str | None
    enabled: bool


def schedule_window(start: dt.date, days: int, now: dt.datetime) -> ScheduleWindow:
    """The schedule's dates for an observation window of `days` from `start` (00:00 UTC).

    EventBridge Scheduler rejects a start date more than 5 minutes in the past
    and an end date in the past: a window under way starts now, and a window
    that is over leaves the schedule disabled, without dates.
    """
    begins = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    ends = begins + dt.timedelta(days=days)
    if now >= ends:
        return ScheduleWindow(start_date=None, end_date=None, enabled=False)
    return ScheduleWindow(
        start_date=_timestamp(begins) if begins > now else None,
        end_date=_timestamp(ends),
        enabled=True,
    )


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: float) -> float | int:
    """5.0 -> 5: whole thresholds read as whole numbers in the config."""
    return int(value) if float(value).is_integer() else value


def monitor_config(phase2: Phase2Settings) -> dict[str, Any]:
    """The MONITOR_CONFIG document (pinned in CONTRACTS), also a stack output."""
    if phase2.api.kind == "rest":
        api = {"kind": "rest", "name": phase2.api.name}
    else:
        api = {"kind": "http", "id": phase2.api.api_id}
    thresholds = phase2.thresholds
    return {
        "aurora_cluster_id": phase2.aurora_cluster_id,
        "function_names": list(phase2.function_names),
        "api": api,
        "table_names": list(phase2.table_names),
        "lookback_hours": phase2.lookback_hours,
        "window": {"start": phase2.window_start.isoformat(), "days": phase2.window_days},
        "thresholds": {
            "lambda_error_rate_percent": _number(thresholds.lambda_error_rate_percent),
            "lambda_max_throttles": thresholds.lambda_max_throttles,
            "api_5xx_rate_percent": _number(thresholds.api_5xx_rate_percent),
            "api_latency_ms": thresholds.api_latency_ms,
            "aurora_cpu_percent": _number(thresholds.aurora_cpu_percent),
            "aurora_max_connections": thresholds.aurora_max_connections,
        },
    }


@dataclass(frozen=True)
class ApiMetrics:
    """How CloudWatch names a Phase 2 API's metrics: REST and HTTP APIs differ."""

    dimensions: Mapping[str, str]
    server_errors: str
    client_errors: str

    @classmethod
    def of(cls, phase2: Phase2Settings) -> ApiMetrics:
        api = phase2.api
        identifier = api.name if api.kind == "rest" else api.api_id
        if identifier is None:  # StackSettings never lets this happen
            raise ValueError(f"the Phase 2 {api.kind} API has no name or id")
        if api.kind == "rest":
            return cls({"ApiName": identifier}, "5XXError", "4XXError")
        return cls({"ApiId": identifier}, "5xx", "4xx")


class Phase2Monitor(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    function: aws.lambda_.Function
    schedule: aws.scheduler.Schedule
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    config: dict[str, Any]

    def __init__(
        self, name: str, args: Phase2MonitorArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("securebase:analytics:Phase2Monitor", name, None, opts)
        settings = args.settings
        phase2 = settings.phase2
        self.config = monitor_config(phase2)

        self.bucket = SecureBucket(
            f"{name}-reports",
            SecureBucketArgs(
                bucket_name=pulumi.Output.concat(
                    settings.name_prefix, "-phase2-monitor-", args.account_id
                ),
                expiration_days=REPORT_EXPIRATION_DAYS,
                kms_key_arn=args.data_key_arn,
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=settings.is_production),
        ).bucket

        deployed = deploy_function(
            f"{name}-function",
            FunctionArgs(
                spec=PHASE2_MONITOR,
                name_prefix=settings.name_prefix,
                environment_name=settings.environment,
                account_id=args.account_id,
                variables={
                    env.MONITOR_CONFIG: json.dumps(self.config),
                    env.MONITOR_BUCKET: self.bucket.bucket,
                    env.MONITOR_PREFIX: MONITOR_PREFIX,
                    env.ALERTS_TOPIC_ARN: args.alerts_topic_arn,
                },
                policy_values=pulumi.Output.all(
                    **{
                        "region": settings.region,
                        "account": args.account_id,
                        "monitor-bucket": self.bucket.arn,
                        "alerts-topic": args.alerts_topic_arn,
                        "alerts-key": args.alerts_key_arn,
                        "data-key": args.data_key_arn,
                        "queue:async-failures": args.async_failures_queue_arn,
                    }
                ),
                log_group=args.log_group,
                on_failure_queue_arn=args.async_failures_queue_arn,
            ),
            parent=self,
        )
        self.function = deployed.function

        window = schedule_window(phase2.window_start, phase2.window_days, args.now)
        if not window.enabled:
            pulumi.log.warn(
                f"the Phase 2 observation window ({phase2.window_start}, {phase2.window_days} "
                "days) is over: the monitor schedule is deployed disabled; set "
                "securebase-analytics:phase2WindowStart to observe again",
                resource=self,
            )
        role, policy = scheduler_role(
            f"{name}-scheduler-role",
            f"{settings.name_prefix}-phase2-monitor-scheduler",
            args.account_id,
            [self.function],
            args.async_failures_queue_arn,
            parent=self,
        )
        self.schedule = schedule_function(
            f"{name}-schedule",
            schedule_name=f"{settings.name_prefix}-phase2-monitor",
            expression=SCHEDULE_EXPRESSION,
            function=self.function,
            role_arn=role.arn,
            dead_letter_queue_arn=args.async_failures_queue_arn,
            max_event_age_seconds=SCHEDULE_INTERVAL_SECONDS,
            parent=self,
            start_date=window.start_date,
            end_date=window.end_date,
            enabled=window.enabled,
            depends_on=[policy],
        )

        factory = AlarmFactory(
            name, f"{settings.name_prefix}-phase2", args.alerts_topic_arn, parent=self
        )
        _alarms(factory, settings)
        self.alarms = factory.alarms
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{settings.name_prefix}-phase2",
            dashboard_body=dashboard_body(_widgets(settings)),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs(
            {
                "bucket_name": self.bucket.bucket,
                "function_name": self.function.name,
                "schedule_name": self.schedule.name,
                "alarm_names": [alarm.name for alarm in self.alarms],
                "dashboard_name": self.dashboard.dashboard_name,
            }
        )


def _short(resource_name: str, name_prefix: str) -> str:
    """securebase-production-auth-v2 -> auth-v2, for alarm names."""
    return resource_name.removeprefix(f"{name_prefix}-")


def _alarms(factory: AlarmFactory, settings: StackSettings) -> None:
    phase2 = settings.phase2
    thresholds = phase2.thresholds
    # Two of the last three 5-minute periods: sustained, not a blip.
    sustained = {"evaluation_periods": 3, "datapoints_to_alarm": 2}

    cluster = {"DBClusterIdentifier": phase2.aurora_cluster_id}
    factory.create(
        "aurora-cpu",
        f"Aurora {phase2.aurora_cluster_id} CPU is above {thresholds.aurora_cpu_percent:g}%.",
        comparison="GreaterThanThreshold",
        threshold=thresholds.aurora_cpu_percent,
        namespace="AWS/RDS",
        metric_name="CPUUtilization",
        dimensions=cluster,
        statistic="Average",
        period=FIVE_MINUTES,
        **sustained,
    )
    factory.create(
        "aurora-connections",
        f"Aurora {phase2.aurora_cluster_id} has more than "
        f"{thresholds.aurora_max_connections} connections.",
        comparison="GreaterThanThreshold",
        threshold=thresholds.aurora_max_connections,
        namespace="AWS/RDS",
        metric_name="DatabaseConnections",
        dimensions=cluster,
        statistic="Maximum",
        period=FIVE_MINUTES,
        **sustained,
    )

    for function_name in phase2.function_names:
        short = _short(function_name, settings.name_prefix)
        function = {"FunctionName": function_name}
        factory.create(
            f"{short}-error-rate",
            f"More than {thresholds.lambda_error_rate_percent:g}% of {function_name} "
            "invocations failed.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.lambda_error_rate_percent,
            metric_queries=rate_percent_queries(
                "AWS/Lambda", "Errors", "Invocations", function, "error rate (%)"
            ),
            **sustained,
        )
        factory.create(
            f"{short}-throttles",
            f"{function_name} was throttled more than {thresholds.lambda_max_throttles} "
            "times in 5 minutes.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.lambda_max_throttles,
            namespace="AWS/Lambda",
            metric_name="Throttles",
            dimensions=function,
            statistic="Sum",
            period=FIVE_MINUTES,
        )

    api = ApiMetrics.of(phase2)
    factory.create(
        "api-5xx-rate",
        f"More than {thresholds.api_5xx_rate_percent:g}% of Phase 2 API requests failed with 5xx.",
        comparison="GreaterThanThreshold",
        threshold=thresholds.api_5xx_rate_percent,
        metric_queries=rate_percent_queries(
            "AWS/ApiGateway", api.server_errors, "Count", api.dimensions, "5xx rate (%)"
        ),
        **sustained,
    )
    # Average, as the monitor's report measures it against the same threshold.
    factory.create(
        "api-latency",
        f"Phase 2 API average latency is above {thresholds.api_latency_ms} ms.",
        comparison="GreaterThanThreshold",
        threshold=thresholds.api_latency_ms,
        namespace="AWS/ApiGateway",
        metric_name="Latency",
        dimensions=dict(api.dimensions),
        statistic="Average",
        period=FIVE_MINUTES,
        **sustained,
    )

    for table_name in phase2.table_names:
        table = {"TableName": table_name}
        factory.create(
            f"{_short(table_name, settings.name_prefix)}-throttles",
            f"Reads or writes on {table_name} were throttled.",
            comparison="GreaterThanThreshold",
            threshold=0,
            metric_queries=[
                metric_query(
                    "reads", "AWS/DynamoDB", "ReadThrottleEvents", table, "Sum", FIVE_MINUTES
                ),
                metric_query(
                    "writes", "AWS/DynamoDB", "WriteThrottleEvents", table, "Sum", FIVE_MINUTES
                ),
                expression_query("SUM([reads, writes])", "throttle events"),
            ],
        )


def _widgets(settings: StackSettings) -> list[dict[str, Any]]:
    phase2 = settings.phase2
    region = settings.region
    cluster = ["DBClusterIdentifier", phase2.aurora_cluster_id]
    api = ApiMetrics.of(phase2)
    api_dimensions = [part for pair in api.dimensions.items() for part in pair]

    def per_function(metric: str) -> list[list[Any]]:
        return [["AWS/Lambda", metric, "FunctionName", f] for f in phase2.function_names]

    return [
        metric_widget(
            "Aurora CPU (%)",
            [["AWS/RDS", "CPUUtilization", *cluster]],
            region,
            stat="Average",
        ),
        metric_widget(
            "Aurora connections",
            [["AWS/RDS", "DatabaseConnections", *cluster]],
            region,
            stat="Maximum",
        ),
        metric_widget("Lambda invocations", per_function("Invocations"), region),
        metric_widget("Lambda errors", per_function("Errors"), region),
        metric_widget("Lambda throttles", per_function("Throttles"), region),
        metric_widget("Lambda duration p95 (ms)", per_function("Duration"), region, stat="p95"),
        metric_widget(
            "API requests and errors",
            [
                ["AWS/ApiGateway", metric, *api_dimensions]
                for metric in ("Count", api.client_errors, api.server_errors)
            ],
            region,
        ),
        metric_widget(
            "API latency (ms)",
            [
                ["AWS/ApiGateway", "Latency", *api_dimensions, {"stat": "Average"}],
                ["AWS/ApiGateway", "Latency", *api_dimensions, {"stat": "p95"}],
            ],
            region,
        ),
        metric_widget(
            "DynamoDB throttle events",
            [
                ["AWS/DynamoDB", metric, "TableName", table]
                for table in phase2.table_names
                for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
            ],
            region,
        ),
        metric_widget(
            "DynamoDB consumed capacity",
            [
                ["AWS/DynamoDB", metric, "TableName", table]
                for table in phase2.table_names
                for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
            ],
            region,
        ),
    ]
