"""KMS: customer managed keys rotate, stay enabled, cannot vanish at once, and let AWS
services use them only for this account's resources."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from . import documents
from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Setting, known

KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
SOURCE_ACCOUNT = "aws:sourceaccount"
SYMMETRIC = "SYMMETRIC_DEFAULT"


def _rotation(key: Resource, config: Config) -> Iterator[Finding]:
    spec = key.get("customerMasterKeySpec")
    # Only symmetric encryption keys can rotate automatically.
    if spec not in (None, SYMMETRIC) or key.get("keyUsage") not in (None, "ENCRYPT_DECRYPT"):
        return
    enabled = key.get("enableKeyRotation")
    if known(enabled) and enabled is not True:
        yield Finding(
            key,
            "automatic key rotation is off",
            "set enableKeyRotation True",
        )


def _enabled_and_recoverable(key: Resource, config: Config) -> Iterator[Finding]:
    if key.get("isEnabled") is False:
        yield Finding(
            key,
            "the key is disabled: everything encrypted with it is unreadable",
            "remove isEnabled=False (or the key, once nothing uses it)",
        )
    window = key.get("deletionWindowInDays")
    minimum = config.integer("minDeletionWindowDays")
    if known(window) and window is not None and window < minimum:
        yield Finding(
            key,
            f"a scheduled deletion completes after {window:g} days (at least {minimum} required)",
            f"set deletionWindowInDays to {minimum} or more",
        )


def _source_account(key: Resource, config: Config) -> Iterator[Finding]:
    """Every Allow for a service principal carries aws:SourceAccount (confused deputy).

    Conditions a service documents besides it (CloudWatch Logs'
    kms:EncryptionContext:aws:logs:arn) are kept; they do not replace it.
    """
    document = key.get("policy")
    if document is UNKNOWN or document is None:
        return
    for index, statement in enumerate(documents.parse(document) or ()):
        if not (statement.allows and statement.services):
            continue
        if SOURCE_ACCOUNT not in statement.condition_keys:
            services = ", ".join(statement.services)
            yield Finding(
                key,
                f"key policy statement {index} lets {services} use the key without an "
                "aws:SourceAccount condition: the service could use it for another "
                "account's resources (confused deputy)",
                "add Condition {'StringEquals': {'aws:SourceAccount': '<this account id>'}} to "
                "the statement, keeping any condition the service documents",
            )


POLICIES = [
    ResourceRule(
        name="kms-key-rotation",
        description="Customer managed symmetric keys rotate their key material yearly.",
        remediation="Set enableKeyRotation True.",
        severity=Severity.HIGH,
        resource_types=[KEY],
        check=_rotation,
    ),
    ResourceRule(
        name="kms-key-enabled-and-recoverable",
        description="Keys are enabled and a scheduled deletion can be cancelled for long enough.",
        remediation="Keep isEnabled unset or True; set deletionWindowInDays to the configured minimum or more.",
        severity=Severity.MEDIUM,
        resource_types=[KEY],
        check=_enabled_and_recoverable,
        settings=[
            Setting(
                "minDeletionWindowDays",
                "The shortest allowed waiting period before a key is deleted (AWS allows 7-30).",
                {"type": "integer", "minimum": 7, "maximum": 30},
                30,
            )
        ],
    ),
    ResourceRule(
        name="kms-key-policy-source-account",
        description="Key policy statements that let an AWS service use the key carry an "
        "aws:SourceAccount condition.",
        remediation="Add Condition StringEquals aws:SourceAccount = the account id to every "
        "statement with a Service principal.",
        severity=Severity.HIGH,
        resource_types=[KEY, KEY_POLICY],
        check=_source_account,
    ),
]
