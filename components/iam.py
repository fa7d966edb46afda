"""Least-privilege IAM for every function, as one declarative table.

`GRANTS` says, per function, which actions it may call on which resources and
nothing else. Resources and condition values are templates whose `<name>`
placeholders stand for the stack's real ARNs and names (`<table:metrics>`,
`<log-group>`); `policy_document` fills them in once Pulumi knows the values.
The table is the single source of truth: AnalyticsApi and Phase2Monitor build
the roles from it (`service_role`), AnalyticsObservability alarms on exactly the
DynamoDB operations it allows, and tests/test_iam.py holds a copy of the
expected result. Resource policies that only refuse plain-HTTP requests
(`tls_only_policy`) live here too.

Placeholders (all required unless a grant names it in `only_if`):
    <region>, <account>       where the stack runs
    <log-group>               the function's own log group ARN
    <table:KEY>               an analytics table ARN (metrics, reports, report-schedules, report-cache)
    <customers-table>         the Phase 2 customers table name (aggregator, authorizer)
    <bucket>                  the reports bucket ARN
    <data-key>                the production data key ARN (absent in staging: SSE-S3)
    <queue:KEY>               a queue ARN (report-jobs, aggregator-shards, async-failures)
    <ses-identity>            the SES identity reports are sent from, and <report-sender>
    <ses-configuration-set>   the configuration set every report email is sent with
    <email-link-key>          the KMS HMAC key that signs the links in report emails
    <jwt-secret-name>         the HS256 signing secret (absent when tokens are checked with JWKS)
    <monitor-bucket>          the Phase 2 monitor's bucket ARN
    <alerts-topic>            the alerts topic ARN, and <alerts-key> the key it is encrypted with
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from handlers.shared.tables import DUE_SCHEDULES_INDEX

Condition = Mapping[str, Mapping[str, str]]
PolicyDocument = dict[str, Any]

_PLACEHOLDER = re.compile(r"<([a-z0-9:-]+)>")
_TABLE_RESOURCE = re.compile(r"^<table:([a-z0-9-]+)>(/index/[A-Za-z0-9._-]+)?$")


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Condition | None = None
    # A placeholder that may be unset for some stacks; the grant is left out there.
    only_if: str | None = None


# Every function writes its own logs and traces. X-Ray has no resource-level
# permissions, so its actions take "*".
BASE_GRANTS: tuple[Grant, ...] = (
    Grant(("logs:CreateLogStream", "logs:PutLogEvents"), ("<log-group>:*",)),
    Grant(("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ("*",)),
)

# Report objects: written, read back for presigned URLs, multipart uploads for big PDFs.
_REPORT_OBJECTS = (
    Grant(("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"), ("<bucket>/*",)),
    Grant(("kms:GenerateDataKey", "kms:Decrypt"), ("<data-key>",), only_if="data-key"),
)
# What writes the metrics table's data and a sharded run's progress.
_RUN_WRITES = ("dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# Lambda sends on-failure records of asynchronous invocations with the function's role.
_ASYNC_FAILURES = Grant(("sqs:SendMessage",), ("<queue:async-failures>",))

GRANTS: Mapping[str, tuple[Grant, ...]] = {
    "authorizer": (
        Grant(
            ("secretsmanager:GetSecretValue",),
            # Secrets Manager appends 6 random characters to every secret's ARN.
            ("arn:aws:secretsmanager:<region>:<account>:secret:<jwt-secret-name>-??????",),
            only_if="jwt-secret-name",
        ),
        # The token's tenant's customer record: one that is not active is denied.
        Grant(
            ("dynamodb:GetItem",),
            ("arn:aws:dynamodb:<region>:<account>:table/<customers-table>",),
        ),
    ),
    "query": (
        Grant(("dynamodb:Query",), ("<table:metrics>",)),
        Grant(("dynamodb:GetItem", "dynamodb:PutItem"), ("<table:report-cache>",)),
    ),
    "reporter": (
        Grant(("dynamodb:Query",), ("<table:metrics>",)),
        # Reports, and the tenant's pending-report slots (handlers.shared.reports.pending):
        # a report refused for want of a slot is deleted again.
        Grant(
            (
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ),
            ("<table:reports>",),
        ),
        # Idempotency records for POST /analytics/reports.
        Grant(("dynamodb:GetItem", "dynamodb:PutItem"), ("<table:report-cache>",)),
        *_REPORT_OBJECTS,
        # Reports too big to render inside the API's 30 s go to the engine.
        Grant(("sqs:SendMessage",), ("<queue:report-jobs>",)),
    ),
    "report-engine": (
        Grant(("dynamodb:Query",), ("<table:metrics>",)),
        # Reports; DeleteItem releases a finished deferred report's pending slot.
        Grant(
            ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            ("<table:reports>",),
        ),
        Grant(
            (
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ),
            ("<table:report-schedules>",),
        ),
        Grant(("dynamodb:Query",), (f"<table:report-schedules>/index/{DUE_SCHEDULES_INDEX.name}",)),
        *_REPORT_OBJECTS,
        # Recipients' consent, deliveries and daily counts.
        Grant(
            (
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ),
            ("<table:report-emails>",),
        ),
        # A tenant's name and email domains.
        Grant(
            ("dynamodb:GetItem",),
            ("arn:aws:dynamodb:<region>:<account>:table/<customers-table>",),
        ),
        # Signs the confirm and unsubscribe links.
        Grant(("kms:GenerateMac",), ("<email-link-key>",)),
        # One SendRawEmail per recipient (raw: the List-Unsubscribe headers), only
        # from the configured sender, with the configuration set; SendRawEmail
        # authorizes the identity and the configuration set
        # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonses.html).
        # When the sender address is itself a verified identity SES authorizes against
        # it, not its domain ("policies that you attach to email address identities take
        # precedence over policies that you attach to their corresponding domain
        # identities", https://docs.aws.amazon.com/ses/latest/dg/sending-authorization-identity-owner-tasks-policy.html):
        # both identities are granted, and ses:FromAddress pins the sender.
        Grant(
            ("ses:SendRawEmail",),
            (
                "arn:aws:ses:<region>:<account>:identity/<ses-identity>",
                "arn:aws:ses:<region>:<account>:identity/<report-sender>",
                "arn:aws:ses:<region>:<account>:configuration-set/<ses-configuration-set>",
            ),
            condition={"StringEquals": {"ses:FromAddress": "<report-sender>"}},
        ),
        # The event source mapping polls with the function's role.
        Grant(
            ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
            ("<queue:report-jobs>",),
        ),
        _ASYNC_FAILURES,
    ),
    # Signed links confirm or suppress a recipient; SES feedback suppresses one.
    "email-consent": (
        Grant(("dynamodb:UpdateItem",), ("<table:report-emails>",)),
        Grant(("kms:VerifyMac",), ("<email-link-key>",)),
        _ASYNC_FAILURES,  # SNS invokes it asynchronously
    ),
    "aggregator": (
        Grant(
            ("dynamodb:Scan",),
            ("arn:aws:dynamodb:<region>:<account>:table/<customers-table>",),
        ),
        # Rollups are written in batches; its bookkeeping items are read with one Query;
        # a sharded run's item is put, then updated (handlers.shared.aggregator.ledger).
        Grant((*_RUN_WRITES, "dynamodb:Query"), ("<table:metrics>",)),
        # Neither API supports resource-level permissions.
        Grant(("cloudwatch:GetMetricData", "ce:GetCostAndUsage"), ("*",)),
        Grant(
            ("securityhub:GetFindings",), ("arn:aws:securityhub:<region>:<account>:hub/default",)
        ),
        Grant(("sqs:SendMessage",), ("<queue:aggregator-shards>",)),
        _ASYNC_FAILURES,
    ),
    "aggregator-shard": (
        # Samples and rollups in batches; its report to the run, and completing the run.
        Grant(_RUN_WRITES, ("<table:metrics>",)),
        Grant(("cloudwatch:GetMetricData",), ("*",)),
        # The event source mapping polls with the function's role.
        Grant(
            ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
            ("<queue:aggregator-shards>",),
        ),
    ),
    "phase2-monitor": (
        Grant(("cloudwatch:GetMetricData",), ("*",)),
        Grant(("cloudwatch:DescribeAlarms",), ("arn:aws:cloudwatch:<region>:<account>:alarm:*",)),
        Grant(("s3:PutObject",), ("<monitor-bucket>/phase2-monitor/*",)),
        Grant(("sns:Publish",), ("<alerts-topic>",)),
        # Publishing to a KMS-encrypted topic needs the topic's key.
        Grant(("kms:GenerateDataKey", "kms:Decrypt"), ("<alerts-key>",)),
        Grant(("kms:GenerateDataKey", "kms:Decrypt"), ("<data-key>",), only_if="data-key"),
        _ASYNC_FAILURES,
    ),
}


def grants_for(function_key: str) -> tuple[Grant, ...]:
    return (*BASE_GRANTS, *GRANTS[function_key])


def fill(template: str, values: Mapping[str, str | None]) -> str:
    """Replaces every `<name>` in `template`; an unknown or unset name is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = values.get(name)
        if found is None:
            raise KeyError(f"no value for placeholder <{name}> in {template!r}")
        return found

    return _PLACEHOLDER.sub(value, template)


def policy_document(grants: Iterable[Grant], values: Mapping[str, str | None]) -> PolicyDocument:
    """The IAM policy for `grants` with `values` filled in (a dict, ready for json.dumps)."""
    statements = []
    for grant in grants:
        if grant.only_if is not None and values.get(grant.only_if) is None:
            continue
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Action": list(grant.actions),
            "Resource": [fill(resource, values) for resource in grant.resources],
        }
        if grant.condition is not None:
            statement["Condition"] = {
                operator: {key: fill(value, values) for key, value in pairs.items()}
                for operator, pairs in grant.condition.items()
            }
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


# Tables written with TransactWriteItems, which IAM governs through the item
# actions it contains ("Permissions for Put, Update, Delete, and Get actions
# are governed by the permissions used for the underlying PutItem, UpdateItem,
# DeleteItem, and GetItem operations", DynamoDB Developer Guide, "Using IAM
# with DynamoDB transactions"), but CloudWatch counts as an operation of its own.
TRANSACTION_TABLES = ("report-schedules",)  # the per-tenant schedule counter


def table_operations() -> dict[str, tuple[str, ...]]:
    """Analytics table key -> the DynamoDB operations some function may call on it.

    Its ThrottledRequests and SystemErrors metrics exist per operation, so these
    are what its alarms add up (queries on an index count against the table).
    """
    operations: dict[str, dict[str, None]] = {
        table: {"TransactWriteItems": None} for table in TRANSACTION_TABLES
    }
    for grants in GRANTS.values():
        for grant in grants:
            for resource in grant.resources:
                match = _TABLE_RESOURCE.match(resource)
                if match is None:
                    continue
                seen = operations.setdefault(match.group(1), {})
                for action in grant.actions:
                    seen[action.removeprefix("dynamodb:")] = None
    return {table: tuple(sorted(ops)) for table, ops in sorted(operations.items())}


def for_this_account(account_id: str) -> dict[str, dict[str, str]]:
    """A service principal may act only for this account's resources (confused deputy).

    Services acting for a resource send aws:SourceAccount, the resource's account
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-sourceaccount).
    """
    return {"StringEquals": {"aws:SourceAccount": account_id}}


def service_uses_key(sid: str, service: str, account_id: str) -> dict[str, Any]:
    """A key policy statement: `service` may encrypt and decrypt with the key, for this
    account's resources only."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
        "Resource": "*",
        "Condition": for_this_account(account_id),
    }


def sns_dead_letter_queue_policy(
    sid: str, queue_arn: str, topic_arn: str, account_id: str
) -> PolicyDocument:
    """Only `topic_arn` may move undeliverable messages to the queue, over TLS.

    The SNS guide's queue policy for a subscription's dead-letter queue: SNS sends
    with aws:SourceArn the topic's ARN
    (https://docs.aws.amazon.com/sns/latest/dg/sns-configure-dead-letter-queue.html).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": topic_arn},
                    **for_this_account(account_id),
                },
            },
            deny_insecure_transport("sqs:*", queue_arn),
        ],
    }


def service_trust_policy(service: str, account_id: str) -> PolicyDocument:
    """Only `service`, acting for this account (no confused deputy), may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": for_this_account(account_id),
            }
        ],
    }


def tls_only_policy(action: str, resource_arn: str) -> PolicyDocument:
    """A resource policy refusing `action` on `resource_arn` to anyone not using TLS."""
    return {"Version": "2012-10-17", "Statement": [deny_insecure_transport(action, resource_arn)]}


def deny_insecure_transport(action: str, resource_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resource_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def scheduler_policy(function_arns: Iterable[str], dead_letter_queue_arn: str) -> PolicyDocument:
    """What EventBridge Scheduler needs: invoke exactly its targets, park failed events."""
    grants = (
        Grant(("lambda:InvokeFunction",), tuple(function_arns)),
        Grant(("sqs:SendMessage",), (dead_letter_queue_arn,)),
    )
    return policy_document(grants, {})


def service_role(
    resource_name: str,
    role_name: str,
    service: str,
    account_id: pulumi.Input[str],
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role only `service` can assume, with one inline policy (`policy` is its JSON)."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        resource_name,
        name=role_name,
        assume_role_policy=pulumi.Output.from_input(account_id).apply(
            lambda account: json.dumps(service_trust_policy(service, account))
        ),
        opts=child,
    )
    inline = aws.iam.RolePolicy(
        f"{resource_name}-policy", role=role.id, name="least-privilege", policy=policy, opts=child
    )
    return role, inline
