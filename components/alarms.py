"""CloudWatch alarms that notify the alerts topic, and the metrics they watch.

AnalyticsObservability (the analytics service) and Phase2Monitor (the Phase 2
resources) build every alarm here: one `Metric` describes a metric once, for an
alarm on it, a metric math query over it, or both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

FIVE_MINUTES: Final = 300
ONE_HOUR: Final = 3600
ONE_DAY: Final = 86400

# Two of the last three periods: a single slow or failing burst at low traffic
# does not page anyone.
SUSTAINED: Final = {"evaluation_periods": 3, "datapoints_to_alarm": 2}
# CloudWatch's own statistics; anything else (p95, tm99...) is an extended statistic.
STANDARD_STATISTICS: Final = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str  # "Sum", "Maximum"... or an extended statistic such as "p95"
    period: int

    def alarm_args(self) -> dict[str, Any]:
        """The MetricAlarm arguments that watch this metric directly."""
        statistic = (
            {"statistic": self.statistic}
            if self.statistic in STANDARD_STATISTICS
            else {"extended_statistic": self.statistic}
        )
        return {
            "namespace": self.namespace,
            "metric_name": self.name,
            "dimensions": dict(self.dimensions),
            "period": self.period,
            **statistic,
        }

    def query(self, query_id: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
        """This metric as an input of a metric math expression (not itself compared)."""
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=query_id,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=self.namespace,
                metric_name=self.name,
                dimensions=dict(self.dimensions),
                stat=self.statistic,
                period=self.period,
            ),
            return_data=False,
        )


def lambda_metric(
    name: str, function_name: pulumi.Input[str], statistic: str, period: int
) -> Metric:
    return Metric("AWS/Lambda", name, {"FunctionName": function_name}, statistic, period)


@dataclass(frozen=True)
class ApiMetrics:
    """How CloudWatch names an API Gateway API's metrics: REST and HTTP APIs differ."""

    dimensions: Mapping[str, pulumi.Input[str]]
    server_errors: str
    client_errors: str

    @classmethod
    def http(cls, api_id: pulumi.Input[str]) -> ApiMetrics:
        return cls({"ApiId": api_id}, "5xx", "4xx")

    @classmethod
    def rest(cls, api_name: str) -> ApiMetrics:
        return cls({"ApiName": api_name}, "5XXError", "4XXError")

    @classmethod
    def http_route(
        cls, api_id: pulumi.Input[str], stage: str, method: str, path: str
    ) -> ApiMetrics:
        """One route of an HTTP API, as the stage's detailed metrics publish it.

        With detailedMetricsEnabled on the stage, API Gateway also publishes every
        metric per route under the dimensions ApiId, Method, Resource (the route's
        path) and Stage
        (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html);
        without it these metrics do not exist.
        """
        return cls(
            {"ApiId": api_id, "Method": method, "Resource": path, "Stage": stage}, "5xx", "4xx"
        )

    @property
    def dimension_row(self) -> list[pulumi.Input[str]]:
        """The dimensions as a dashboard metric row spells them: name, value, ..."""
        return [part for pair in self.dimensions.items() for part in pair]

    def latency(self, statistic: str) -> Metric:
        return Metric("AWS/ApiGateway", "Latency", self.dimensions, statistic, FIVE_MINUTES)

    def server_error_rate_queries(self) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
        return rate_percent_queries(
            "AWS/ApiGateway", self.server_errors, "Count", self.dimensions, "5xx rate (%)"
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
        Metric(namespace, errors_metric, dimensions, "Sum", FIVE_MINUTES).query("errors"),
        Metric(namespace, total_metric, dimensions, "Sum", FIVE_MINUTES).query("total"),
        expression_query("IF(total > 0, 100 * FILL(errors, 0) / total, 0)", label),
    ]


def sum_queries(
    metrics: Mapping[str, Metric], label: str
) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """The sum of several metrics (query id -> metric), e.g. reads and writes throttled."""
    ids = ", ".join(metrics)
    return [
        *(metric.query(query_id) for query_id, metric in metrics.items()),
        expression_query(f"SUM([{ids}])", label),
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
        metric: Metric | None = None,
        metric_queries: Sequence[aws.cloudwatch.MetricAlarmMetricQueryArgs] | None = None,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        treat_missing_data: str = "notBreaching",
    ) -> aws.cloudwatch.MetricAlarm:
        """An alarm on one `metric`, or on the query whose id is "result" in `metric_queries`."""
        if (metric is None) == (metric_queries is None):
            raise ValueError(f"alarm {what}: give either a metric or metric queries")
        watched = metric.alarm_args() if metric is not None else {"metric_queries": metric_queries}
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
            **watched,
            opts=pulumi.ResourceOptions(parent=self._parent),
        )
        self.alarms.append(alarm)
        return alarm


def api_alarms(
    factory: AlarmFactory,
    api: ApiMetrics,
    *,
    subject: str,
    max_5xx_percent: float,
    latency_alarm: str,
    latency_statistic: str,
    max_latency_ms: int,
) -> None:
    """An API's sustained 5xx rate and latency alarms; `subject` names the API to a reader."""
    api_5xx_alarm(factory, api, subject=subject, max_5xx_percent=max_5xx_percent)
    latency_alarm_of(
        factory,
        latency_alarm,
        api,
        subject=subject,
        statistic=latency_statistic,
        max_latency_ms=max_latency_ms,
    )


def api_5xx_alarm(
    factory: AlarmFactory, api: ApiMetrics, *, subject: str, max_5xx_percent: float
) -> aws.cloudwatch.MetricAlarm:
    """The API's sustained 5xx rate."""
    return factory.create(
        "api-5xx-rate",
        f"More than {max_5xx_percent:g}% of {subject} requests failed with 5xx.",
        comparison="GreaterThanThreshold",
        threshold=max_5xx_percent,
        metric_queries=api.server_error_rate_queries(),
        **SUSTAINED,
    )


def latency_alarm_of(
    factory: AlarmFactory,
    what: str,
    api: ApiMetrics,
    *,
    subject: str,
    statistic: str,
    max_latency_ms: int,
) -> aws.cloudwatch.MetricAlarm:
    """Sustained latency of `api` (a whole API or one route) above `max_latency_ms`."""
    shown = "average" if statistic == "Average" else statistic
    return factory.create(
        what,
        f"{subject} {shown} latency is above {max_latency_ms} ms.",
        comparison="GreaterThanThreshold",
        threshold=max_latency_ms,
        metric=api.latency(statistic),
        **SUSTAINED,
    )
