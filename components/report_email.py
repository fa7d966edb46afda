"""Report email's AWS resources, created by AnalyticsApi as its children.

- the KMS HMAC key that signs the confirm and unsubscribe links in report
  emails (GenerateMac / VerifyMac; HMAC keys do not rotate automatically);
- the SES configuration set every report email is sent with, whose event
  destination publishes bounces and complaints to an SNS topic
  (https://docs.aws.amazon.com/ses/latest/dg/event-publishing-add-event-destination-sns.html);
- that topic, encrypted with a customer managed key SES may use, its policy
  (only this account's configuration set publishes, only over TLS), and its
  subscription: the email-consent function, which suppresses the recipient
  for the tenant; deliveries it keeps failing go to a dead-letter queue,
  encrypted with the topic's key: SNS can move messages only to a queue
  encrypted with a customer managed key whose policy lets SNS use it
  (https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.settings import StackSettings

FEEDBACK_EVENTS = ("bounce", "complaint")


def link_key_policy(account_id: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def feedback_key_policy(account_id: str) -> dict[str, Any]:
    """SES encrypts what it publishes to the topic with this key; SNS what it moves to
    the subscription's dead-letter queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *link_key_policy(account_id)["Statement"],
            iam.service_uses_key("SesPublishes", "ses.amazonaws.com", account_id),
            iam.service_uses_key("SnsDeadLetters", "sns.amazonaws.com", account_id),
        ],
    }


def feedback_topic_policy(
    topic_arn: str, configuration_set_arn: str, account_id: str
) -> dict[str, Any]:
    """Only this account's configuration set may publish (no confused deputy), over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SesEventsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "ses.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    **iam.for_this_account(account_id),
                    "ArnLike": {"aws:SourceArn": configuration_set_arn},
                },
            },
            iam.deny_insecure_transport("sns:Publish", topic_arn),
        ],
    }


class ReportEmailResources:
    """The key, configuration set and feedback topic; `subscribe` wires the function."""

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        account_id: pulumi.Input[str],
        parent: pulumi.Resource,
    ):
        child = pulumi.ResourceOptions(parent=parent)
        # Losing a key breaks every link already mailed (or the topic): kept in production.
        kept = pulumi.ResourceOptions(parent=parent, protect=settings.is_production)
        prefix = settings.name_prefix
        self.parent = parent
        self.name = name
        self.account_id = account_id
        self.link_key = aws.kms.Key(
            f"{name}-email-link-key",
            description=f"{prefix} analytics report email links (HMAC)",
            customer_master_key_spec="HMAC_256",
            key_usage="GENERATE_VERIFY_MAC",
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(account_id).apply(
                lambda account: json.dumps(link_key_policy(account))
            ),
            opts=kept,
        )
        self.configuration_set = aws.ses.ConfigurationSet(
            f"{name}-email",
            name=f"{prefix}-analytics-report-email",
            # Refuse to hand mail to a server that does not offer TLS.
            delivery_options=aws.ses.ConfigurationSetDeliveryOptionsArgs(tls_policy="Require"),
            reputation_metrics_enabled=True,
            sending_enabled=True,
            opts=child,
        )
        self.feedback_key = aws.kms.Key(
            f"{name}-email-feedback-key",
            description=f"{prefix} analytics report email feedback topic",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(account_id).apply(
                lambda account: json.dumps(feedback_key_policy(account))
            ),
            opts=kept,
        )
        self.feedback_topic = aws.sns.Topic(
            f"{name}-email-feedback",
            name=f"{prefix}-analytics-email-feedback",
            kms_master_key_id=self.feedback_key.arn,
            opts=child,
        )
        policy = aws.sns.TopicPolicy(
            f"{name}-email-feedback-policy",
            arn=self.feedback_topic.arn,
            policy=pulumi.Output.all(
                self.feedback_topic.arn, self.configuration_set.arn, account_id
            ).apply(lambda values: json.dumps(feedback_topic_policy(*values))),
            opts=child,
        )
        aws.ses.EventDestination(
            f"{name}-email-feedback-destination",
            name="bounces-and-complaints",
            configuration_set_name=self.configuration_set.name,
            enabled=True,
            matching_types=list(FEEDBACK_EVENTS),
            sns_destination=aws.ses.EventDestinationSnsDestinationArgs(
                topic_arn=self.feedback_topic.arn
            ),
            # SES checks that it may publish when the destination is created.
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy]),
        )

    def subscribe(
        self,
        function: aws.lambda_.Function,
        dead_letter_queue_name: str,
        dead_letter_retention_seconds: int,
    ) -> aws.sqs.Queue:
        """Delivers the topic to `function`; returns the subscription's dead-letter queue."""
        child = pulumi.ResourceOptions(parent=self.parent)
        dead_letter = aws.sqs.Queue(
            f"{self.name}-email-feedback-dlq",
            name=dead_letter_queue_name,
            kms_master_key_id=self.feedback_key.arn,
            message_retention_seconds=dead_letter_retention_seconds,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{self.name}-email-feedback-dlq-policy",
            queue_url=dead_letter.url,
            policy=pulumi.Output.all(
                dead_letter.arn, self.feedback_topic.arn, self.account_id
            ).apply(lambda values: json.dumps(feedback_dead_letter_queue_policy(*values))),
            opts=child,
        )
        aws.lambda_.Permission(
            f"{self.name}-email-feedback-invoke",
            function=function.name,
            action="lambda:InvokeFunction",
            principal="sns.amazonaws.com",
            source_arn=self.feedback_topic.arn,
            opts=child,
        )
        aws.sns.TopicSubscription(
            f"{self.name}-email-feedback-subscription",
            topic=self.feedback_topic.arn,
            protocol="lambda",
            endpoint=function.arn,
            redrive_policy=dead_letter.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn})
            ),
            opts=child,
        )
        return dead_letter


def feedback_dead_letter_queue_policy(
    queue_arn: str, topic_arn: str, account_id: str
) -> dict[str, Any]:
    """Only the feedback topic may move undeliverable events here, over TLS."""
    return iam.sns_dead_letter_queue_policy(
        "FeedbackTopicDeadLetters", queue_arn, topic_arn, account_id
    )
