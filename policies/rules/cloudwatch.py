"""CloudWatch alarms: an alarm that fires tells someone."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE_ALARM = "aws:cloudwatch/compositeAlarm:CompositeAlarm"


def _actions(alarm: Resource, config: Config) -> Iterator[Finding]:
    if alarm.get("actionsEnabled") is False:
        yield Finding(
            alarm,
            "its actions are disabled: it changes state without telling anyone",
            "remove actionsEnabled=False",
        )
    actions = alarm.get("alarmActions")
    if actions is not UNKNOWN and not actions:
        yield Finding(
            alarm,
            "it has no alarm action: nobody is notified when it fires",
            "set alarmActions to the alerts topic ARN (and okActions for recovery)",
        )


POLICIES = [
    ResourceRule(
        name="cloudwatch-alarm-actions",
        description="Every alarm has its actions enabled and notifies at least one target.",
        remediation="Keep actionsEnabled True and set alarmActions to the alerts topic.",
        severity=Severity.MEDIUM,
        resource_types=[METRIC_ALARM, COMPOSITE_ALARM],
        check=_actions,
    )
]
