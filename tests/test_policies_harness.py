"""Feeds resources to the policy pack the way the Pulumi engine does.

Rule tests build properties by hand and pass them through the same path as the
engine's: a protobuf Struct (numbers become floats, unknowns are the engine's
sentinel strings), pulumi_policy's deserializer and its unknown-checking proxy.
Whole-stack tests go one step further with `policy_check.engine`, which talks
to pulumi_policy's analyzer servicer with the engine's request messages after
reconciling the policy config file exactly like the CLI does. Also tests that
both behave so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from google.protobuf import json_format
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies.rules import ALL_POLICIES
from policy_check.engine import reconcile, to_struct

# What the engine sends for any value it cannot know during preview.
UNKNOWN = UNKNOWN_STRING_VALUE
PROVIDER_URN = "urn:pulumi:test::securebase-analytics::pulumi:providers:aws::aws"
TAGGED_PROVIDER = {
    "region": "us-east-1",
    # The engine JSON-encodes a provider's nested inputs.
    "defaultTags": json.dumps(
        {
            "tags": {
                "Project": "securebase-analytics",
                "Environment": "production",
                "Owner": "platform-team@securebase.example.com",
                "CostCenter": "CC-4127-analytics",
            }
        }
    ),
}


def as_engine_sends(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """`props` after the engine's wire format and pulumi_policy's proxy, as a policy gets them."""
    return unknown_checking_proxy(
        deserialize_properties(json_format.MessageToDict(to_struct(props)))
    )


def urn_of(resource_type: str, name: str) -> str:
    return f"urn:pulumi:test::securebase-analytics::{resource_type}::{name}"


def _options(protect: bool = False, parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def _provider(props: Mapping[str, Any] | None) -> PolicyProviderResource | None:
    if props is None:
        return None
    return PolicyProviderResource(
        "pulumi:providers:aws", as_engine_sends(props), PROVIDER_URN, "aws"
    )


def check_resource(
    policy: Policy,
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "subject",
    config: Mapping[str, Any] | None = None,
    provider: Mapping[str, Any] | None = TAGGED_PROVIDER,
    protect: bool = False,
) -> list[str]:
    """The violation messages `policy` reports for one resource."""
    assert isinstance(policy, ResourceValidationPolicy)
    messages: list[str] = []
    args = ResourceValidationArgs(
        resource_type,
        as_engine_sends(props),
        urn_of(resource_type, name),
        name,
        _options(protect),
        _provider(provider),
        dict(config or {}),
    )
    policy.validate(args, lambda message, urn=None: messages.append(message))
    return messages


@dataclass
class Spec:
    """A resource of a handcrafted stack."""

    type: str
    name: str
    props: dict[str, Any]
    protect: bool = False
    depends_on: list[str] = field(default_factory=list)  # names of other Specs
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


def check_stack(
    policy: Policy, specs: Sequence[Spec], config: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """(resource name, message) for each violation `policy` reports for the stack."""
    assert isinstance(policy, StackValidationPolicy)
    by_name: dict[str, PolicyResource] = {}
    for spec in specs:
        by_name[spec.name] = PolicyResource(
            spec.type,
            as_engine_sends(spec.props),
            urn_of(spec.type, spec.name),
            spec.name,
            _options(spec.protect),
            _provider(TAGGED_PROVIDER),
            None,
            [],
            {},
        )
    for spec in specs:
        resource = by_name[spec.name]
        resource.dependencies.extend(by_name[d] for d in spec.depends_on)
        for prop, names in spec.property_dependencies.items():
            resource.property_dependencies[prop] = [by_name[n] for n in names]
            resource.dependencies.extend(by_name[n] for n in names)
    urns = {resource.urn: name for name, resource in by_name.items()}
    found: list[tuple[str, str]] = []
    policy.validate(
        StackValidationArgs(list(by_name.values()), dict(config or {})),
        lambda message, urn=None: found.append((urns[urn], message)),
    )
    return found


# --- Tests of the harness itself ---------------------------------------------------------


def test_unknown_values_reach_policies_as_the_engine_sends_them():
    props = as_engine_sends({"bucket": UNKNOWN, "count": 3})
    assert props["count"] == 3.0
    with pytest.raises(UnknownValueError):
        _ = props["bucket"]


def test_reconcile_applies_schema_defaults_then_all_then_each_policy():
    reconciled = reconcile(
        ALL_POLICIES,
        {
            "all": "advisory",
            "s3-bucket-lifecycle": {"enforcementLevel": "mandatory", "maxExpirationDays": 30},
        },
    )
    assert reconciled["s3-bucket-lifecycle"] == (
        EnforcementLevel.MANDATORY,
        {
            "maxExpirationDays": 30,
            "maxNoncurrentVersionDays": 30,
            "maxAbortIncompleteUploadDays": 7,
        },
    )
    assert reconciled["kms-key-rotation"] == (EnforcementLevel.ADVISORY, {})


def test_reconcile_rejects_values_the_schema_forbids():
    with pytest.raises(jsonschema.ValidationError):
        reconcile(ALL_POLICIES, {"s3-bucket-lifecycle": {"maxExpirationDays": "ninety"}})
