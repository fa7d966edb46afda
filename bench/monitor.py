"""AWS requests of one Phase 2 monitor run with the production stack's monitor config.

The config is what the production stack deploys (`Pulumi.production.yaml`
through `parse_settings` and `monitor_config`). moto holds a healthy
datapoint for every metric the monitor reads (so nothing is published), and
the run stores its reports in a bucket; requests are counted with a `before-send` hook on every client.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
from moto import mock_aws

from bench.aws import REGION, use_offline_environment
from bench.progress import Progress, say
from components.phase2_monitor import monitor_config
from components.settings import parse_settings
from handlers import phase2_monitor
from handlers.shared.monitoring.config import MonitorConfig, parse_config
from handlers.shared.monitoring.queries import build_queries
from handlers.shared.telemetry import counting_requests
from tests.pulumi_program import stack_config

STACK = "production"
NOW = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)  # inside the observation window
BUCKET = "securebase-production-phase2-monitor-123456789012"
PREFIX = "phase2-monitor/"
# A quiet, healthy day: traffic, no errors or throttles; everything else 1.0
# (1 ms, 1% CPU, 1 connection) is far below its threshold.
HEALTHY_VALUES = {"Invocations": 1000.0, "Count": 1000.0}
FAILURE_METRICS = frozenset(
    {"Errors", "Throttles", "4XXError", "5XXError", "ReadThrottleEvents", "WriteThrottleEvents"}
)
GET_METRIC_DATA = "cloudwatch.GetMetricData"


def production_config() -> MonitorConfig:
    config = stack_config(STACK)
    settings = parse_settings(config.get, STACK)
    return parse_config(monitor_config(settings.phase2))


def healthy_value(metric: str) -> float:
    return 0.0 if metric in FAILURE_METRICS else HEALTHY_VALUES.get(metric, 1.0)


def seed_metrics(cloudwatch: Any, config: MonitorConfig, at: dt.datetime) -> int:
    """One datapoint for every (namespace, metric, resource) the monitor reads; returns how many."""
    series = sorted(
        {
            (
                query.component.namespace,
                query.metric.metric_name,
                query.component.dimension,
                query.resource,
            )
            for query in build_queries(config)
        }
    )
    for namespace, metric, dimension, resource in series:
        cloudwatch.put_metric_data(
            Namespace=namespace,
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": dimension, "Value": resource}],
                    "Timestamp": at,
                    "Value": healthy_value(metric),
                }
            ],
        )
    return len(series)


def measure(progress: Progress = say) -> dict[str, Any]:
    """The `monitor` section of the results."""
    use_offline_environment()
    config = production_config()
    with mock_aws():
        clients = phase2_monitor.AwsClients(
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
            s3=boto3.client("s3", region_name=REGION),
            sns=boto3.client("sns", region_name=REGION),
        )
        clients.get("s3").create_bucket(Bucket=BUCKET)
        topic_arn = clients.get("sns").create_topic(Name="securebase-production-analytics-alerts")[
            "TopicArn"
        ]
        series = seed_metrics(clients.get("cloudwatch"), config, NOW - dt.timedelta(hours=1))
        destination = phase2_monitor.Destination(bucket=BUCKET, prefix=PREFIX, topic_arn=topic_arn)
        with counting_requests(
            [clients.get("cloudwatch"), clients.get("s3"), clients.get("sns")]
        ) as sent:
            run = phase2_monitor.run(config, clients, destination, now=NOW, environment=STACK)
    requests = dict(sorted(sent.items()))
    progress(f"  {run.metric_queries} metric queries over {series} seeded series: {requests}")
    return {
        "get_metric_data_calls": requests.get(GET_METRIC_DATA, 0),
        "metric_queries": run.metric_queries,
        "violations": len(run.report.violations),
        "requests": requests,
    }
