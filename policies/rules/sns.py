"""SNS: topics are encrypted with a key alarms can use, TLS-only, and deliveries to
machines that keep failing land in a dead-letter queue."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from . import references, resource_policies
from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, StackRule

TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
AWS_MANAGED_KEY = "alias/aws/sns"
# Protocols whose endpoints are programs that can be down; email and SMS are people.
MACHINE_PROTOCOLS = ("lambda", "sqs", "http", "https", "firehose", "application")


def _encryption(topic: Resource, config: Config) -> Iterator[Finding]:
    key = topic.get("kmsMasterKeyId")
    if key is UNKNOWN:
        return
    if not key:
        yield Finding(
            topic,
            "messages are not encrypted at rest",
            "set kmsMasterKeyId to a customer managed aws.kms.Key",
        )
    elif key == AWS_MANAGED_KEY:
        yield Finding(
            topic,
            "it uses the AWS managed key alias/aws/sns, whose policy CloudWatch alarms and "
            "other services cannot use: their notifications are silently dropped",
            "use a customer managed key whose policy lets cloudwatch.amazonaws.com call "
            "kms:GenerateDataKey* and kms:Decrypt",
        )


_tls_only = resource_policies.tls_only(
    TOPIC,
    TOPIC_POLICY,
    prop="arn",
    name_of=references.topic_name,
    action="sns:Publish",
    problem="its policy does not deny publishing without TLS",
    fix="add a statement to its aws.sns.TopicPolicy: Effect Deny, Principal '*', "
    "Action 'sns:Publish', Resource the topic ARN, Condition "
    "{'Bool': {'aws:SecureTransport': 'false'}}",
)


def _dead_letter_queue(subscription: Resource, config: Config) -> Iterator[Finding]:
    protocol = subscription.get("protocol")
    if protocol not in MACHINE_PROTOCOLS:
        return
    redrive = subscription.get("redrivePolicy")
    if redrive is None:
        yield Finding(
            subscription,
            f"a {protocol} endpoint that is down loses the notifications SNS cannot deliver",
            "set redrivePolicy to {'deadLetterTargetArn': <SQS queue ARN>} and alarm on that queue",
        )


POLICIES = [
    ResourceRule(
        name="sns-topic-encryption",
        description="Topics encrypt messages with a customer managed KMS key.",
        remediation="Set kmsMasterKeyId to a customer managed key that the publishing services may use.",
        severity=Severity.HIGH,
        resource_types=[TOPIC],
        check=_encryption,
    ),
    StackRule(
        name="sns-topic-tls-only",
        description="Every topic policy denies publishing without TLS.",
        remediation="Add a Deny for '*' on sns:Publish when aws:SecureTransport is false to the topic policy.",
        severity=Severity.MEDIUM,
        check=_tls_only,
    ),
    ResourceRule(
        name="sns-subscription-dead-letter-queue",
        description="Subscriptions of programs (Lambda, SQS, HTTP(S), Firehose, apps) have a "
        "dead-letter queue for undeliverable messages.",
        remediation="Set the subscription's redrivePolicy to an SQS dead-letter queue.",
        severity=Severity.MEDIUM,
        resource_types=[SUBSCRIPTION],
        check=_dead_letter_queue,
    ),
]
