"""The Aurora cluster's CloudWatch alarms in ALARM state (pure).

DescribeAlarms cannot filter by dimension, so the monitor asks for every
metric alarm in ALARM and keeps those whose metric, or one of whose metric-math
inputs, has the cluster's `DBClusterIdentifier` dimension.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_DIMENSION = "DBClusterIdentifier"


@dataclass(frozen=True)
class Alarm:
    name: str
    metric: str  # "CPUUtilization", or the metric-math inputs' names joined
    reason: str
    since: dt.datetime | None


def cluster_alarms(
    metric_alarms: Iterable[Mapping[str, Any]], cluster_id: str
) -> tuple[Alarm, ...]:
    matching = [
        Alarm(
            name=alarm["AlarmName"],
            metric=", ".join(_metric_names(alarm)),
            reason=alarm.get("StateReason", ""),
            since=alarm.get("StateUpdatedTimestamp"),
        )
        for alarm in metric_alarms
        if alarm.get("StateValue", "ALARM") == "ALARM" and _references(alarm, cluster_id)
    ]
    return tuple(sorted(matching, key=lambda alarm: alarm.name))


def _references(alarm: Mapping[str, Any], cluster_id: str) -> bool:
    dimension_lists = [alarm.get("Dimensions", [])] + [
        query["MetricStat"]["Metric"].get("Dimensions", [])
        for query in alarm.get("Metrics", [])
        if "MetricStat" in query
    ]
    return any(
        dimension["Name"] == CLUSTER_DIMENSION and dimension["Value"] == cluster_id
        for dimensions in dimension_lists
        for dimension in dimensions
    )


def _metric_names(alarm: Mapping[str, Any]) -> list[str]:
    if alarm.get("MetricName"):
        return [alarm["MetricName"]]
    return [
        query["MetricStat"]["Metric"]["MetricName"]
        for query in alarm.get("Metrics", [])
        if "MetricStat" in query
    ]
