"""SQS: queues are encrypted, TLS-only, and work queues hand poison messages to a DLQ."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pulumi_policy import Severity

from . import references, resource_policies
from .framework import (
    UNKNOWN,
    Config,
    Finding,
    Resource,
    ResourceRule,
    Stack,
    StackRule,
    known,
    link,
)

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
REDRIVE_POLICY = "aws:sqs/redrivePolicy:RedrivePolicy"
# SQS keeps a message 4 days unless messageRetentionSeconds says otherwise.
DEFAULT_RETENTION_SECONDS = 4 * 24 * 3600

# Where other resources name a queue that receives what failed elsewhere.
_FAILURE_DESTINATIONS = (
    ("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
     ("destinationConfig", "onFailure", "destination")),
    ("aws:lambda/function:Function", ("deadLetterConfig", "targetArn")),
    ("aws:lambda/eventSourceMapping:EventSourceMapping",
     ("destinationConfig", "onFailure", "destinationArn")),
    ("aws:scheduler/schedule:Schedule", ("target", "deadLetterConfig", "arn")),
    ("aws:cloudwatch/eventTarget:EventTarget", ("deadLetterConfig", "arn")),
)  # fmt: skip


def _redrive_document(value: Any) -> Any:
    """The deadLetterTargetArn of a redrive policy (JSON string or object)."""
    if value is UNKNOWN or value is None:
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value.get("deadLetterTargetArn") if isinstance(value, dict) else None


def redrive_target(stack: Stack, queue: Resource) -> Any:
    """The DLQ `queue` sends poison messages to (inline or RedrivePolicy), UNKNOWN, or None."""
    inline = _redrive_document(queue.get("redrivePolicy"))
    if inline is not None:
        return inline
    policies = link(
        stack.of_type(REDRIVE_POLICY),
        [queue],
        reference=lambda policy: references.queue_name(policy.get("queueUrl")),
        identity=lambda target: target.get("name"),
        prop="queueUrl",
    )
    for policy in policies.of(queue):
        target = _redrive_document(policy.get("redrivePolicy"))
        if target is not None:
            return target
    return UNKNOWN if policies.unresolved else None


def _failure_destinations(stack: Stack) -> set[Any]:
    """Names of queues that collect failures (DLQs): they need no DLQ of their own."""
    refs: list[Any] = [redrive_target(stack, queue) for queue in stack.of_type(QUEUE)]
    refs += [_redrive_document(p.get("redrivePolicy")) for p in stack.of_type(REDRIVE_POLICY)]
    for resource_type, path in _FAILURE_DESTINATIONS:
        refs += [resource.get(*path) for resource in stack.of_type(resource_type)]
    refs += [
        _redrive_document(s.get("redrivePolicy"))
        for s in stack.of_type("aws:sns/topicSubscription:TopicSubscription")
    ]
    return {references.queue_name(ref) for ref in refs if ref is not None}


def _encryption(queue: Resource, config: Config) -> Iterator[Finding]:
    managed, key = queue.get("sqsManagedSseEnabled"), queue.get("kmsMasterKeyId")
    if UNKNOWN in (managed, key):
        return
    if managed is not True and not key:
        yield Finding(
            queue,
            "server-side encryption is not enabled explicitly",
            "set sqsManagedSseEnabled True (or kmsMasterKeyId to a customer managed key)",
        )


def _dead_letter_queues(stack: Stack, config: Config) -> Iterator[Finding]:
    destinations = _failure_destinations(stack)
    queues = stack.of_type(QUEUE)
    by_name = {q.get("name"): q for q in queues if isinstance(q.get("name"), str)}
    for queue in queues:
        target = redrive_target(stack, queue)
        if target is UNKNOWN:
            continue
        if target is None:
            if queue.get("name") in destinations or UNKNOWN in destinations:
                continue
            yield Finding(
                queue,
                "it is a work queue without a dead-letter queue: a poison message is retried "
                "until it expires",
                "set redrivePolicy {deadLetterTargetArn, maxReceiveCount} to a DLQ",
            )
            continue
        dead_letter = by_name.get(references.queue_name(target))
        if dead_letter is None:
            continue
        kept, dlq_kept = (
            q.get("messageRetentionSeconds") or DEFAULT_RETENTION_SECONDS
            for q in (queue, dead_letter)
        )
        if known(kept) and known(dlq_kept) and dlq_kept < kept:
            yield Finding(
                dead_letter,
                f"it keeps messages {dlq_kept:g} s, less than its source '{queue.name}' "
                f"({kept:g} s): a message's age counts from its first send, so it can expire "
                "on arrival",
                "set the DLQ's messageRetentionSeconds longer than the source queue's (up to 1209600)",
            )


_tls_only = resource_policies.tls_only(
    QUEUE,
    QUEUE_POLICY,
    prop="queueUrl",
    name_of=references.queue_name,
    action="sqs:*",
    problem="its policy does not deny requests made without TLS",
    fix="add an aws.sqs.QueuePolicy with a statement: Effect Deny, Principal '*', "
    "Action 'sqs:*', Resource the queue ARN, Condition "
    "{'Bool': {'aws:SecureTransport': 'false'}}",
)


POLICIES = [
    ResourceRule(
        name="sqs-queue-encryption",
        description="Queues encrypt messages at rest (SSE-SQS or a KMS key).",
        remediation="Set sqsManagedSseEnabled True or kmsMasterKeyId.",
        severity=Severity.HIGH,
        resource_types=[QUEUE],
        check=_encryption,
    ),
    StackRule(
        name="sqs-queue-dead-letter-queue",
        description="Work queues move messages that keep failing to a dead-letter queue that "
        "keeps them longer than the source does.",
        remediation="Set redrivePolicy on every queue that is not itself a failure destination; "
        "give DLQs the longest retention.",
        severity=Severity.MEDIUM,
        check=_dead_letter_queues,
    ),
    StackRule(
        name="sqs-queue-tls-only",
        description="Every queue policy denies requests that do not use TLS.",
        remediation="Add an aws.sqs.QueuePolicy denying sqs:* to '*' when aws:SecureTransport is false.",
        severity=Severity.MEDIUM,
        check=_tls_only,
    ),
]
