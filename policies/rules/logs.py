"""CloudWatch Logs: every log group keeps logs exactly as long as the stack config says."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import Config, Finding, Resource, ResourceRule, Setting, known

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
# The values CloudWatch Logs accepts for retentionInDays.
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


def _retention(group: Resource, config: Config) -> Iterator[Finding]:
    days = group.get("retentionInDays")
    expected = config.integer("retentionDays")
    if known(days) and days != expected:
        yield Finding(
            group,
            f"retention is {f'{days:g} days' if days else 'unset (logs are kept forever)'}, "
            f"not {expected} days",
            f"set retentionInDays={expected} (the stack's logRetentionDays)",
        )


def _kms(group: Resource, config: Config) -> Iterator[Finding]:
    if group.get("kmsKeyId") is None:
        yield Finding(
            group,
            "log events are encrypted with a CloudWatch owned key, not a key you control",
            "set kmsKeyId to a customer managed key whose policy allows logs.<region>.amazonaws.com",
        )


POLICIES = [
    ResourceRule(
        name="logs-group-retention",
        description="Every log group keeps events for exactly the configured number of days.",
        remediation="Set retentionInDays to the configured value (the stack's logRetentionDays).",
        severity=Severity.MEDIUM,
        resource_types=[LOG_GROUP],
        check=_retention,
        settings=[
            Setting(
                "retentionDays",
                "How long every log group keeps events; equal to the stack's logRetentionDays.",
                {"type": "integer", "enum": list(RETENTION_DAYS)},
                30,
            )
        ],
    ),
    ResourceRule(
        name="logs-group-kms-encryption",
        description="Log groups are encrypted with a customer managed KMS key.",
        remediation="Set kmsKeyId to a customer managed key usable by CloudWatch Logs.",
        severity=Severity.LOW,
        resource_types=[LOG_GROUP],
        check=_kms,
    ),
]
