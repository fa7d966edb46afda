"""Resource policies (bucket, queue, topic and key policies) grant nothing to everyone."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pulumi_policy import Severity

from . import documents
from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule

# Resource type -> the service prefix of its actions.
POLICY_HOLDERS = {
    "aws:s3/bucketPolicy:BucketPolicy": "s3",
    "aws:s3/bucket:Bucket": "s3",
    "aws:sqs/queuePolicy:QueuePolicy": "sqs",
    "aws:sqs/queue:Queue": "sqs",
    "aws:sns/topicPolicy:TopicPolicy": "sns",
    "aws:sns/topic:Topic": "sns",
    "aws:kms/key:Key": "kms",
}

_ACCOUNT_IN_PRINCIPAL = re.compile(r"^(?:arn:aws[a-z-]*:iam::)?(\d{12})(?::|$)")


def _other_accounts(statement: documents.Statement) -> list[str]:
    """Accounts a statement's AWS principals belong to that do not own its resources."""
    owners = {
        parts[4]
        for resource in statement.resources
        if len(parts := resource.split(":", 5)) == 6 and parts[4].isdigit()
    }
    principals = {
        match.group(1)
        for principal in statement.principals.get("AWS", ())
        if (match := _ACCOUNT_IN_PRINCIPAL.match(principal))
    }
    return sorted(principals - owners) if owners else []


def _least_privilege(resource: Resource, config: Config) -> Iterator[Finding]:
    document = resource.get("policy")
    if document is UNKNOWN or document is None:
        return
    statements = documents.parse(document)
    if statements is None:
        yield Finding(
            resource,
            "its policy is not a valid policy document",
            "pass json.dumps() of a policy with a Statement list",
        )
        return
    service = POLICY_HOLDERS[resource.type]
    for statement in statements:
        if (
            statement.allows
            and (statement.everyone or statement.not_principal)
            and not statement.narrowed
        ):
            yield Finding(
                resource,
                f"its policy allows {list(statement.actions)} to everyone",
                "name the principal (a role ARN or a service) or narrow the statement with "
                "aws:SourceArn / aws:SourceAccount",
            )
        foreign = _other_accounts(statement) if statement.allows else []
        if foreign:
            yield Finding(
                resource,
                f"its policy grants {list(statement.actions)} to other accounts {foreign}",
                "grant access to principals of the account that owns the resource only",
            )
        if documents.locks_everyone_out(statement):
            yield Finding(
                resource,
                "its policy denies everything to everyone without a condition: only the root "
                "user can undo it",
                "add the condition the deny is meant for (e.g. aws:SecureTransport 'false')",
            )
        if (
            service == "sqs"
            and statement.allows
            and {"*", "sqs:*"} & {action.lower() for action in statement.actions}
        ):
            yield Finding(
                resource,
                "its queue policy allows every SQS action",
                "allow only the actions the principal needs, e.g. sqs:SendMessage",
            )


POLICIES = [
    ResourceRule(
        name="resource-policy-least-privilege",
        description="Bucket, queue, topic and key policies grant nothing to everyone or to "
        "other accounts, lock nobody out and name the actions they allow.",
        remediation="Name the principals (or narrow '*' with aws:SourceArn/aws:SourceAccount), "
        "condition every Deny for '*', and list actions instead of 'sqs:*'.",
        severity=Severity.CRITICAL,
        resource_types=POLICY_HOLDERS,
        check=_least_privilege,
    )
]
