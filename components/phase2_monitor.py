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
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import (
    FIVE_MINUTES,
    SUSTAINED,
    AlarmFactory,
    ApiMetrics,
    Metric,
    api_alarms,
    lambda_metric,
    rate_percent_queries,
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
from components.function_deployment import (
    FunctionArgs,
    deploy_function,
    schedule_function,
    scheduler_role,
)
from components.functions import PHASE2_MONITOR
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
    # The stack's log bucket: the reports bucket's server access logs go there.
    access_log_bucket: SecureBucket
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


def phase2_api(phase2: Phase2Settings) -> ApiMetrics:
    """The Phase 2 API's metrics: a REST API by name, an HTTP API by id."""
    api = phase2.api
    if api.kind == "rest" and api.name is not None:
        return ApiMetrics.rest(api.name)
    if api.kind == "http" and api.api_id is not None:
        return ApiMetrics.http(api.api_id)
    # StackSettings never lets this happen.
    raise ValueError(f"the Phase 2 {api.kind} API has no name or id")


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
                access_log_bucket=args.access_log_bucket,
                kms_key_arn=args.data_key_arn,
                force_destroy=not settings.is_production,
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=settings.is_production),
        ).bucket

        deployed = deploy_function(
            f"{name}-function",
            FunctionArgs(
                spec=PHASE2_MONITOR,
                settings=settings,
                account_id=args.account_id,
                variables={
                    env.MONITOR_CONFIG: json.dumps(self.config),
                    env.MONITOR_BUCKET: self.bucket.bucket,
                    env.MONITOR_PREFIX: MONITOR_PREFIX,
                    env.ALERTS_TOPIC_ARN: args.alerts_topic_arn,
                },
                policy_values={
                    "monitor-bucket": self.bucket.arn,
                    "alerts-topic": args.alerts_topic_arn,
                    "alerts-key": args.alerts_key_arn,
                    "data-key": args.data_key_arn,
                    "queue:async-failures": args.async_failures_queue_arn,
                },
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

    cluster = {"DBClusterIdentifier": phase2.aurora_cluster_id}
    factory.create(
        "aurora-cpu",
        f"Aurora {phase2.aurora_cluster_id} CPU is above {thresholds.aurora_cpu_percent:g}%.",
        comparison="GreaterThanThreshold",
        threshold=thresholds.aurora_cpu_percent,
        metric=Metric("AWS/RDS", "CPUUtilization", cluster, "Average", FIVE_MINUTES),
        **SUSTAINED,
    )
    factory.create(
        "aurora-connections",
        f"Aurora {phase2.aurora_cluster_id} has more than "
        f"{thresholds.aurora_max_connections} connections.",
        comparison="GreaterThanThreshold",
        threshold=thresholds.aurora_max_connections,
        metric=Metric("AWS/RDS", "DatabaseConnections", cluster, "Maximum", FIVE_MINUTES),
        **SUSTAINED,
    )

    for function_name in phase2.function_names:
        short = _short(function_name, settings.name_prefix)
        factory.create(
            f"{short}-error-rate",
            f"More than {thresholds.lambda_error_rate_percent:g}% of {function_name} "
            "invocations failed.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.lambda_error_rate_percent,
            metric_queries=rate_percent_queries(
                "AWS/Lambda",
                "Errors",
                "Invocations",
                {"FunctionName": function_name},
                "error rate (%)",
            ),
            **SUSTAINED,
        )
        factory.create(
            f"{short}-throttles",
            f"{function_name} was throttled more than {thresholds.lambda_max_throttles} "
            "times in 5 minutes.",
            comparison="GreaterThanThreshold",
            threshold=thresholds.lambda_max_throttles,
            metric=lambda_metric("Throttles", function_name, "Sum", FIVE_MINUTES),
        )

    # Average latency, as the monitor's report measures it against the same threshold.
    api_alarms(
        factory,
        phase2_api(phase2),
        subject="Phase 2 API",
        max_5xx_percent=thresholds.api_5xx_rate_percent,
        latency_alarm="api-latency",
        latency_statistic="Average",
        max_latency_ms=thresholds.api_latency_ms,
    )

    for table_name in phase2.table_names:
        table = {"TableName": table_name}
        factory.create(
            f"{_short(table_name, settings.name_prefix)}-throttles",
            f"Reads or writes on {table_name} were throttled.",
            comparison="GreaterThanThreshold",
            threshold=0,
            metric_queries=sum_queries(
                {
                    "reads": Metric(
                        "AWS/DynamoDB", "ReadThrottleEvents", table, "Sum", FIVE_MINUTES
                    ),
                    "writes": Metric(
                        "AWS/DynamoDB", "WriteThrottleEvents", table, "Sum", FIVE_MINUTES
                    ),
                },
                "throttle events",
            ),
        )


def _widgets(settings: StackSettings) -> list[dict[str, Any]]:
    phase2 = settings.phase2
    region = settings.region
    cluster = ["DBClusterIdentifier", phase2.aurora_cluster_id]
    api = phase2_api(phase2)

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
        *lambda_widgets(phase2.function_names, region),
        api_requests_widget(api, region),
        metric_widget(
            "API latency (ms)",
            [
                ["AWS/ApiGateway", "Latency", *api.dimension_row, {"stat": "Average"}],
                ["AWS/ApiGateway", "Latency", *api.dimension_row, {"stat": "p95"}],
            ],
            region,
        ),
        dynamodb_throttles_widget(phase2.table_names, region),
        dynamodb_capacity_widget(phase2.table_names, region),
    ]
