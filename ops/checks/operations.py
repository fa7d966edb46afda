"""What keeps the stack running unattended: schedules, alarms, alerts, queues, dashboards."""

from __future__ import annotations

import json
from functools import partial

from ops.checks.aws import AwsView
from ops.checks.base import Check, Outcome, failed, passed, verdict, warned
from ops.checks.expectations import Expectations, ExpectedSchedule, ExpectedWorkQueue
from ops.checks.outputs import StackOutputs

# Alarms on the Phase 2 resources the monitor watches: securebase-{env}-phase2-...
PHASE2_ALARM_PREFIX = "phase2-"
# SNS lists a subscription nobody confirmed yet under this instead of an ARN.
PENDING_CONFIRMATION = "PendingConfirmation"


def schedule_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    return [
        Check(
            "schedule",
            f"schedule {schedule.function}: {'enabled' if schedule.enabled else 'disabled'}, "
            f"{schedule.expression}, with a dead-letter queue",
            partial(_schedule, aws, outputs, schedule),
        )
        for schedule in expect.schedules
    ]


def dead_letter_arns(aws: AwsView, outputs: StackOutputs) -> set[str]:
    """Where the stack's failed deliveries may go: its exported dead-letter queues."""
    return {
        aws.queue_attributes(url)["QueueArn"]
        for url in outputs.mapping("dead_letter_queue_urls").values()
    }


def _schedule(aws: AwsView, outputs: StackOutputs, expected: ExpectedSchedule) -> Outcome:
    key = expected.function
    schedule = aws.schedule(outputs.entry("schedule_names", key))
    target = schedule.get("Target", {})
    function_arn = aws.function_arn(outputs.entry("function_names", key))
    state = "ENABLED" if expected.enabled else "DISABLED"
    problems = []
    if schedule.get("State") != state:
        problems.append(f"state {schedule.get('State')}, expected {state}")
    if schedule.get("ScheduleExpression") != expected.expression:
        problems.append(
            f"expression {schedule.get('ScheduleExpression')}, expected {expected.expression}"
        )
    if target.get("Arn") != function_arn:
        problems.append(f"invokes {target.get('Arn')}, expected the {key} function")
    dead_letter = target.get("DeadLetterConfig", {}).get("Arn")
    if dead_letter is None:
        problems.append("no dead-letter queue: failed invocations would be dropped")
    elif dead_letter not in dead_letter_arns(aws, outputs):
        problems.append(f"dead-letter queue {dead_letter} is not one of the stack's")
    why = "" if expected.enabled else f" ({expected.why_disabled})"
    return verdict(
        problems, f"{state}{why}, {expected.expression} -> {key}, failures to {dead_letter}"
    )


def alarm_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    if not outputs.has("alarm_names"):
        return [
            Check(
                "alarm", "alarms exported", lambda: failed("stack output 'alarm_names' is missing")
            )
        ]
    names = outputs.names("alarm_names")
    if not names:
        return [
            Check("alarm", "alarms exported", lambda: failed("stack output 'alarm_names' is empty"))
        ]
    return [
        Check(
            "alarm",
            f"alarm {name}: present, notifies, not in ALARM",
            partial(_alarm, aws, outputs, expect, names, name),
        )
        for name in names
    ]


def _alarm(
    aws: AwsView, outputs: StackOutputs, expect: Expectations, names: list[str], name: str
) -> Outcome:
    alarm = aws.alarms(names).get(name)
    if alarm is None:
        return failed("alarm does not exist")
    if outputs.text("alerts_topic_arn") not in alarm.get("AlarmActions", []):
        return failed("does not notify the alerts topic: nobody would hear it fire")
    state = alarm.get("StateValue")
    if state != "ALARM":
        return passed(f"{state}, notifies the alerts topic")
    firing = f"in ALARM since {alarm.get('StateUpdatedTimestamp')}: {alarm.get('StateReason', '')}"
    if name.startswith(expect.resource_name(PHASE2_ALARM_PREFIX)):
        # Phase 2 resources are watched by this stack, not deployed by it: their
        # alarms say Phase 2 needs attention, not that this deployment is broken.
        return warned(f"Phase 2 {firing}")
    return failed(firing)


def topic_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    return [
        Check(
            "alerts", "alerts topic: KMS-encrypted", partial(_topic_encrypted, aws, outputs, expect)
        ),
        Check(
            "alerts",
            "alerts topic: subscriptions confirmed",
            partial(_subscriptions, aws, outputs, expect),
        ),
    ]


def _topic_encrypted(aws: AwsView, outputs: StackOutputs, expect: Expectations) -> Outcome:
    arn = outputs.text("alerts_topic_arn")
    expected_name = expect.resource_name("analytics-alerts")
    if arn.rsplit(":", 1)[-1] != expected_name:
        return failed(f"topic {arn} is not {expected_name}")
    key = aws.topic_attributes(arn).get("KmsMasterKeyId")
    return passed(f"{expected_name} with {key}") if key else failed("the topic is not encrypted")


def _subscriptions(aws: AwsView, outputs: StackOutputs, expect: Expectations) -> Outcome:
    subscriptions = aws.subscriptions(outputs.text("alerts_topic_arn"))
    problems = []
    pending = sorted(
        s["Endpoint"] for s in subscriptions if s["SubscriptionArn"] == PENDING_CONFIRMATION
    )
    if pending:
        problems.append(f"awaiting confirmation: {', '.join(pending)}")
    emails = {s["Endpoint"] for s in subscriptions if s["Protocol"] == "email"}
    missing = sorted(set(expect.settings.alert_emails) - emails)
    if missing:
        problems.append(f"alertEmails without a subscription: {', '.join(missing)}")
    return verdict(problems, f"{len(subscriptions)} confirmed")


def queue_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    checks = [
        Check(
            "queue",
            f"queue {queue.key}: encrypted, redrives to a DLQ after {queue.max_receives} receives",
            partial(_work_queue, aws, outputs, queue),
        )
        for queue in expect.work_queues
    ]
    if not outputs.has("dead_letter_queue_urls"):
        checks.append(
            Check(
                "queue",
                "dead-letter queues exported",
                lambda: failed("stack output 'dead_letter_queue_urls' is missing"),
            )
        )
        return checks
    for name, url in sorted(outputs.mapping("dead_letter_queue_urls").items()):
        checks.append(
            Check(
                "queue", f"dead-letter queue {name}: empty", partial(_dead_letter_queue, aws, url)
            )
        )
    return checks


def _work_queue(aws: AwsView, outputs: StackOutputs, queue: ExpectedWorkQueue) -> Outcome:
    attributes = aws.queue_attributes(outputs.text(queue.output))
    problems = []
    if attributes.get("SqsManagedSseEnabled") != "true" and not attributes.get("KmsMasterKeyId"):
        problems.append("messages are not encrypted at rest")
    redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    target = redrive.get("deadLetterTargetArn")
    receives = redrive.get("maxReceiveCount")
    if target is None:
        problems.append("no redrive policy: a poison message would retry until it expires")
    elif target not in dead_letter_arns(aws, outputs):
        problems.append(f"redrives to {target}, not one of the stack's dead-letter queues")
    elif str(receives) != str(queue.max_receives):
        # The aggregator's shards record themselves failed on the last of these receives.
        problems.append(f"maxReceiveCount {receives}, expected {queue.max_receives}")
    return verdict(problems, f"redrives to {target} after {receives} receives")


def _dead_letter_queue(aws: AwsView, url: str) -> Outcome:
    attributes = aws.queue_attributes(url)
    waiting = int(attributes.get("ApproximateNumberOfMessages", "0"))
    if waiting:
        # Evidence of earlier failures to look at, not of a broken deployment.
        return warned(f"{waiting} message(s) waiting: inspect and redrive or purge")
    return passed("empty")


def dashboard_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    return [
        Check("dashboard", f"dashboard {key}: present", partial(_dashboard, aws, outputs, key))
        for key in ("analytics", "phase2")
    ]


def _dashboard(aws: AwsView, outputs: StackOutputs, key: str) -> Outcome:
    name = outputs.entry("dashboard_names", key)
    body = json.loads(aws.dashboard(name).get("DashboardBody") or "{}")
    widgets = len(body.get("widgets", []))
    if not widgets:
        return failed(f"{name} has no widgets")
    return passed(f"{name}, {widgets} widget{'' if widgets == 1 else 's'}")
