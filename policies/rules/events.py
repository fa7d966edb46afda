"""EventBridge rules' targets and Scheduler schedules retry, then park failed events."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Setting, known

EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SCHEDULE = "aws:scheduler/schedule:Schedule"


def _delivery(resource: Resource, prefix: tuple[str, ...]) -> Iterator[Finding]:
    dead_letter = resource.get(*prefix, "deadLetterConfig", "arn")
    if dead_letter is None:
        yield Finding(
            resource,
            "an event that cannot be delivered is dropped",
            f"set {'.'.join((*prefix, 'deadLetterConfig', 'arn'))} to an SQS queue "
            "(and alarm on its depth)",
        )
    retry = resource.get(*prefix, "retryPolicy")
    if retry is UNKNOWN:
        return
    missing = [
        field
        for field in ("maximumRetryAttempts", "maximumEventAgeInSeconds")
        if resource.get(*prefix, "retryPolicy", field) is None
    ]
    if missing:
        yield Finding(
            resource,
            f"its retry policy leaves {missing} at the defaults (185 retries over 24 hours)",
            f"set {'.'.join((*prefix, 'retryPolicy'))} to a bounded number of retries and "
            "an event age no longer than the schedule interval",
        )


def _event_target(target: Resource, config: Config) -> Iterator[Finding]:
    yield from _delivery(target, ())


def _schedule(schedule: Resource, config: Config) -> Iterator[Finding]:
    yield from _delivery(schedule, ("target",))
    mode = schedule.get("flexibleTimeWindow", "mode")
    window = schedule.get("flexibleTimeWindow", "maximumWindowInMinutes")
    limit = config.integer("maxFlexibleWindowMinutes")
    if mode is None:
        yield Finding(
            schedule,
            "it has no flexible time window mode",
            "set flexibleTimeWindow.mode 'OFF' (exact time) or 'FLEXIBLE' with maximumWindowInMinutes",
        )
    elif mode == "FLEXIBLE" and known(window) and (window is None or window > limit):
        yield Finding(
            schedule,
            f"its flexible window is {'unbounded' if window is None else f'{window:g}'} "
            f"minutes (at most {limit})",
            f"set flexibleTimeWindow.maximumWindowInMinutes to {limit} or less",
        )


POLICIES = [
    ResourceRule(
        name="eventbridge-target-dead-letter-queue",
        description="EventBridge rule targets retry a bounded number of times, then send the "
        "event to a dead-letter queue.",
        remediation="Set deadLetterConfig.arn and retryPolicy on every aws.cloudwatch.EventTarget.",
        severity=Severity.MEDIUM,
        resource_types=[EVENT_TARGET],
        check=_event_target,
    ),
    ResourceRule(
        name="scheduler-schedule-resilience",
        description="Schedules set a time window, a bounded retry policy and a dead-letter queue.",
        remediation="Set flexibleTimeWindow, target.retryPolicy and target.deadLetterConfig.arn.",
        severity=Severity.MEDIUM,
        resource_types=[SCHEDULE],
        check=_schedule,
        settings=[
            Setting(
                "maxFlexibleWindowMinutes",
                "The longest flexible window a schedule may use.",
                {"type": "integer", "minimum": 1, "maximum": 1440},
                15,
            )
        ],
    ),
]
