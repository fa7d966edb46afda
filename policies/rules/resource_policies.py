"""Resource policies (bucket, queue, topic and key policies) grant nothing to everyone.

`tls_only` builds the TLS-only stack check of the services whose policy sits on the
resource itself or in a separate policy resource (SNS topics, SQS queues).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from pulumi_policy import Severity

from . import documents
from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Stack, StackCheck, link

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


def tls_only(
    holder_type: str,
    policy_type: str,
    *,
    prop: str,
    name_of: Callable[[Any], Any],
    action: str,
    problem: str,
    fix: str,
) -> StackCheck:
    """A stack check: every `holder_type` resource's policy denies `action` without TLS.

    The policy is the holder's own `policy` together with every `policy_type`
    resource whose `prop` names the holder (`name_of` reduces it to a name).
    A holder whose policies are unknown or may still be attached is not judged.
    """

    def check(stack: Stack, config: Config) -> Iterator[Finding]:
        holders = stack.of_type(holder_type)
        policies = link(
            stack.of_type(policy_type),
            holders,
            reference=lambda policy: name_of(policy.get(prop)),
            identity=lambda holder: holder.get("name"),
            prop=prop,
        )
        for holder in holders:
            held = [holder.get("policy"), *(p.get("policy") for p in policies.of(holder))]
            if UNKNOWN in held or policies.undecided(holder):
                continue
            statements = [s for doc in held if doc is not None for s in documents.parse(doc) or ()]
            if not any(documents.denies_insecure_transport(s, action) for s in statements):
                yield Finding(holder, problem, fix)

    return check


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
