"""CloudWatch's evaluation of a metric alarm, as a pure function over synthetic requests.

The emulator has no percentiles, so tests evaluate the alarm definitions the
program registers (their inputs under mocks) here:

- API Gateway publishes each request's Latency once per dimension set of an
  HTTP API: ApiId; ApiId and Stage; and, with detailed metrics on the stage,
  ApiId, Method, Resource and Stage
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html).
- An alarm watches one metric: its namespace, name and exactly its dimensions
  ("CloudWatch treats each unique combination of dimensions as a separate
  metric", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension).
- Each period's value is the alarm's statistic over that period's datapoints
  (pNN: nearest rank). The alarm is in ALARM when at least DatapointsToAlarm of
  the last EvaluationPeriods periods breach; with TreatMissingData
  notBreaching an empty period does not
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarm-evaluation).
- Whether a period's value breaches is the Phase 2 monitor's own comparison
  (`Measurement.violated`: strictly above the limit), i.e. GreaterThanThreshold,
  the only comparison the latency alarms use.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.shared.monitoring.evaluate import Measurement

ALARM, OK = "ALARM", "OK"


@dataclass(frozen=True)
class Request:
    at: dt.datetime
    method: str
    path: str  # the route's path, as API Gateway names the Resource dimension
    latency_ms: float


Dimensions = frozenset[tuple[str, str]]
Datapoints = dict[tuple[str, str, Dimensions], list[tuple[dt.datetime, float]]]


def published_latency(api_id: str, stage: str, requests: Iterable[Request]) -> Datapoints:
    """Every Latency datapoint API Gateway publishes for `requests` (detailed metrics on)."""
    streams: Datapoints = {}
    for request in requests:
        for dimensions in (
            {"ApiId": api_id},
            {"ApiId": api_id, "Stage": stage},
            {"ApiId": api_id, "Method": request.method, "Resource": request.path, "Stage": stage},
        ):
            key = ("AWS/ApiGateway", "Latency", frozenset(dimensions.items()))
            streams.setdefault(key, []).append((request.at, request.latency_ms))
    return streams


def statistic(values: list[float], name: str) -> float:
    if name.startswith("p"):
        ordered = sorted(values)
        rank = math.ceil(float(name[1:]) / 100 * len(ordered))
        return ordered[max(rank, 1) - 1]
    return {
        "Average": lambda: sum(values) / len(values),
        "Maximum": lambda: max(values),
        "Minimum": lambda: min(values),
        "Sum": lambda: sum(values),
        "SampleCount": lambda: float(len(values)),
    }[name]()


def alarm_state(alarm: Mapping[str, Any], published: Datapoints, end: dt.datetime) -> str:
    """The state of `alarm` (a MetricAlarm's inputs) at `end`, from `published` datapoints."""
    if alarm["comparisonOperator"] != "GreaterThanThreshold":
        raise ValueError(
            f"only GreaterThanThreshold is modelled, not {alarm['comparisonOperator']}"
        )
    if alarm.get("treatMissingData", "missing") != "notBreaching":
        raise ValueError("only treatMissingData notBreaching is modelled")
    key = (
        alarm["namespace"],
        alarm["metricName"],
        frozenset((name, str(value)) for name, value in alarm["dimensions"].items()),
    )
    datapoints = published.get(key, [])
    period = dt.timedelta(seconds=alarm["period"])
    name = alarm.get("extendedStatistic") or alarm["statistic"]
    evaluated = int(alarm["evaluationPeriods"])
    breaching = 0
    for index in range(evaluated):
        start = end - period * (index + 1)
        values = [value for at, value in datapoints if start <= at < start + period]
        if not values:
            continue  # missing, and treated as not breaching
        measured = Measurement(
            key="latency",
            label="Latency",
            value=statistic(values, name),
            unit="ms",
            derived=False,
            limit=float(alarm["threshold"]),
        )
        breaching += measured.violated
    return ALARM if breaching >= int(alarm.get("datapointsToAlarm") or evaluated) else OK
