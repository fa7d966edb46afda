"""DynamoDB: tables are encrypted, recoverable (or, for caches, expiring) and on demand."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Setting, known, matches_any

TABLE = "aws:dynamodb/table:Table"


def _encryption(table: Resource, config: Config) -> Iterator[Finding]:
    enabled = table.get("serverSideEncryption", "enabled")
    if known(enabled) and enabled is not True:
        yield Finding(
            table,
            "server-side encryption with KMS is not enabled (an AWS owned key is used)",
            "set serverSideEncryption.enabled True (optionally with kmsKeyArn of a customer "
            "managed key)",
        )


def _recovery(table: Resource, config: Config) -> Iterator[Finding]:
    name = table.get("name")
    if not isinstance(name, str):
        return
    if matches_any(name, config.strings("cacheTableNamePatterns")):
        ttl_enabled, attribute = table.get("ttl", "enabled"), table.get("ttl", "attributeName")
        if known(ttl_enabled) and known(attribute) and (ttl_enabled is not True or not attribute):
            yield Finding(
                table,
                "it is a cache table without TTL: entries are never removed",
                "set ttl = {attributeName: 'ttl', enabled: True} and write an expiry epoch "
                "into that attribute",
            )
        return
    enabled = table.get("pointInTimeRecovery", "enabled")
    if known(enabled) and enabled is not True:
        yield Finding(
            table,
            "point-in-time recovery is off: a bad write or delete cannot be rolled back",
            "set pointInTimeRecovery.enabled True (or name the table as a cache in "
            "cacheTableNamePatterns if its data can be rebuilt)",
        )


def _deletion_protection(table: Resource, config: Config) -> Iterator[Finding]:
    enabled = table.get("deletionProtectionEnabled")
    if known(enabled) and enabled is not True:
        yield Finding(
            table,
            "deletion protection is off: one call deletes the table and its data",
            "set deletionProtectionEnabled True",
        )


def _on_demand(table: Resource, config: Config) -> Iterator[Finding]:
    mode = table.get("billingMode")
    if mode is not UNKNOWN and mode != "PAY_PER_REQUEST":
        yield Finding(
            table,
            f"it uses provisioned capacity ({mode or 'PROVISIONED by default'}) without auto "
            "scaling: bursts are throttled",
            "set billingMode 'PAY_PER_REQUEST'",
        )


CACHE_TABLES = Setting(
    "cacheTableNamePatterns",
    "Tables (shell-style name patterns) that hold rebuildable cache entries: they need TTL "
    "instead of point-in-time recovery.",
    {"type": "array", "items": {"type": "string"}},
    ["securebase-*-report-cache"],
)

POLICIES = [
    ResourceRule(
        name="dynamodb-table-encryption",
        description="Tables are encrypted at rest with a KMS key (AWS managed or customer managed).",
        remediation="Set serverSideEncryption.enabled True.",
        severity=Severity.HIGH,
        resource_types=[TABLE],
        check=_encryption,
    ),
    ResourceRule(
        name="dynamodb-table-point-in-time-recovery",
        description="Tables have point-in-time recovery; tables the config names as caches "
        "have TTL instead.",
        remediation="Set pointInTimeRecovery.enabled True; for a cache table set "
        "ttl.enabled True with its expiry attribute.",
        severity=Severity.MEDIUM,
        resource_types=[TABLE],
        check=_recovery,
        settings=[CACHE_TABLES],
    ),
    ResourceRule(
        name="dynamodb-table-deletion-protection",
        description="Tables have deletion protection (mandatory in production).",
        remediation="Set deletionProtectionEnabled True.",
        severity=Severity.MEDIUM,
        resource_types=[TABLE],
        check=_deletion_protection,
    ),
    ResourceRule(
        name="dynamodb-table-on-demand",
        description="Tables use on-demand capacity, so load spikes are not throttled.",
        remediation="Set billingMode 'PAY_PER_REQUEST'.",
        severity=Severity.LOW,
        resource_types=[TABLE],
        check=_on_demand,
    ),
]
