"""KMS: customer managed keys rotate, stay enabled and cannot vanish at once."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import Config, Finding, Resource, ResourceRule, Setting, known

KEY = "aws:kms/key:Key"
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
]
