"""SQS, EventBridge target and Scheduler rules."""

from __future__ import annotations

import json

import pytest

from policies.rules import ALL_POLICIES
from tests.test_policies_harness import UNKNOWN, Spec, check_resource, check_stack

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
QUEUE = "aws:sqs/queue:Queue"
ACCOUNT = "123456789012"
PREFIX = "securebase-production-analytics"


def arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"


def url(name: str) -> str:
    return f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}"


def queue(name: str, **overrides) -> dict:
    return {"name": name, "sqsManagedSseEnabled": True, **overrides}


def redrive(target: str) -> str:
    return json.dumps({"deadLetterTargetArn": arn(target), "maxReceiveCount": 3})


def test_queues_are_encrypted():
    rule = POLICIES["sqs-queue-encryption"]
    assert check_resource(rule, QUEUE, queue("q")) == []
    assert (
        check_resource(rule, QUEUE, queue("q", sqsManagedSseEnabled=None, kmsMasterKeyId="alias/k"))
        == []
    )
    [message] = check_resource(rule, QUEUE, queue("q", sqsManagedSseEnabled=False))
    assert "server-side encryption is not enabled explicitly" in message


def api_queues(jobs_redrive: object = None, dlq_retention: int = 1209600) -> list[Spec]:
    """components.api's queues: report jobs with their DLQ, and the async-failures queue."""
    return [
        Spec(QUEUE, "failures", queue(f"{PREFIX}-async-failures", messageRetentionSeconds=1209600)),
        Spec(QUEUE, "jobs-dlq", queue(f"{PREFIX}-report-jobs-dlq", messageRetentionSeconds=dlq_retention)),
        Spec(
            QUEUE,
            "jobs",
            queue(
                f"{PREFIX}-report-jobs",
                messageRetentionSeconds=345600,
                redrivePolicy=jobs_redrive if jobs_redrive is not None else redrive(f"{PREFIX}-report-jobs-dlq"),
            ),
        ),
        Spec(
            "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
            "async",
            {"functionName": "f", "destinationConfig": {"onFailure": {"destination": arn(f"{PREFIX}-async-failures")}}},
        ),
    ]  # fmt: skip


def test_work_queues_have_a_dead_letter_queue_and_failure_queues_need_none():
    rule = POLICIES["sqs-queue-dead-letter-queue"]
    assert check_stack(rule, api_queues()) == []
    without = [s for s in api_queues() if s.name != "async"]
    [(name, message)] = check_stack(rule, without)
    assert name == "failures"
    assert "it is a work queue without a dead-letter queue" in message


def test_a_redrive_policy_resource_counts_like_the_inline_one():
    rule = POLICIES["sqs-queue-dead-letter-queue"]
    specs = [s for s in api_queues() if s.name != "jobs"]
    specs += [
        Spec(QUEUE, "jobs", queue(f"{PREFIX}-report-jobs")),
        Spec(
            "aws:sqs/redrivePolicy:RedrivePolicy",
            "jobs-redrive",
            {
                "queueUrl": url(f"{PREFIX}-report-jobs"),
                "redrivePolicy": redrive(f"{PREFIX}-report-jobs-dlq"),
            },
        ),
    ]
    assert check_stack(rule, specs) == []


def test_a_dead_letter_queue_keeps_messages_longer_than_its_source():
    rule = POLICIES["sqs-queue-dead-letter-queue"]
    [(name, message)] = check_stack(rule, api_queues(dlq_retention=86400))
    assert name == "jobs-dlq"
    assert "it keeps messages 86400 s, less than its source 'jobs' (345600 s)" in message


def test_an_unknown_redrive_target_is_not_judged():
    rule = POLICIES["sqs-queue-dead-letter-queue"]
    assert check_stack(rule, api_queues(jobs_redrive=UNKNOWN)) == []


def tls_policy(name: str) -> str:
    return json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": arn(name),
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
        }
    )


def test_queue_policies_deny_requests_without_tls():
    rule = POLICIES["sqs-queue-tls-only"]
    name = f"{PREFIX}-report-jobs"
    guarded = [
        Spec(QUEUE, "jobs", queue(name)),
        Spec(
            "aws:sqs/queuePolicy:QueuePolicy",
            "jobs-policy",
            {"queueUrl": url(name), "policy": tls_policy(name)},
        ),
    ]
    assert check_stack(rule, guarded) == []
    assert check_stack(rule, [Spec(QUEUE, "jobs", queue(name, policy=tls_policy(name)))]) == []
    [(resource, message)] = check_stack(rule, [Spec(QUEUE, "jobs", queue(name))])
    assert resource == "jobs"
    assert "its policy does not deny requests made without TLS" in message


def schedule(**overrides) -> dict:
    """A schedule as components.api creates it."""
    return {
        "name": f"{PREFIX}-report-engine",
        "scheduleExpression": "rate(15 minutes)",
        "flexibleTimeWindow": {"mode": "OFF"},
        "target": {
            "arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{PREFIX}-report-engine",
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-scheduler",
            "retryPolicy": {"maximumRetryAttempts": 2, "maximumEventAgeInSeconds": 900},
            "deadLetterConfig": {"arn": arn(f"{PREFIX}-async-failures")},
        },
        **overrides,
    }


def check_schedule(props: dict, **kwargs) -> list[str]:
    return check_resource(
        POLICIES["scheduler-schedule-resilience"],
        "aws:scheduler/schedule:Schedule",
        props,
        **kwargs,
    )


def test_a_resilient_schedule_passes():
    assert check_schedule(schedule()) == []
    flexible = schedule(flexibleTimeWindow={"mode": "FLEXIBLE", "maximumWindowInMinutes": 10})
    assert check_schedule(flexible) == []


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ({"deadLetterConfig": None}, "an event that cannot be delivered is dropped"),
        ({"retryPolicy": None}, "its retry policy leaves ['maximumRetryAttempts', 'maximumEventAgeInSeconds'] at the defaults"),
        ({"retryPolicy": {"maximumRetryAttempts": 2}}, "leaves ['maximumEventAgeInSeconds'] at the defaults"),
    ],
)  # fmt: skip
def test_schedules_retry_boundedly_then_park_the_event(target, problem):
    props = schedule()
    props["target"] = {**props["target"], **target}
    [message] = check_schedule(props)
    assert problem in message


def test_the_flexible_window_is_bounded_by_config():
    wide = schedule(flexibleTimeWindow={"mode": "FLEXIBLE", "maximumWindowInMinutes": 60})
    [message] = check_schedule(wide)
    assert "its flexible window is 60 minutes (at most 15)" in message
    assert check_schedule(wide, config={"maxFlexibleWindowMinutes": 60}) == []
    [message] = check_schedule(schedule(flexibleTimeWindow={}))
    assert "it has no flexible time window mode" in message


def test_a_dead_letter_queue_unknown_during_preview_is_fine():
    props = schedule()
    props["target"] = {**props["target"], "deadLetterConfig": {"arn": UNKNOWN}}
    assert check_schedule(props) == []


def test_eventbridge_targets_retry_then_park_the_event():
    rule = POLICIES["eventbridge-target-dead-letter-queue"]
    target = "aws:cloudwatch/eventTarget:EventTarget"
    good = {
        "rule": "backfill",
        "arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{PREFIX}-aggregator",
        "deadLetterConfig": {"arn": arn(f"{PREFIX}-async-failures")},
        "retryPolicy": {"maximumRetryAttempts": 2, "maximumEventAgeInSeconds": 3600},
    }
    assert check_resource(rule, target, good) == []
    assert len(check_resource(rule, target, {"rule": "backfill", "arn": good["arn"]})) == 2
