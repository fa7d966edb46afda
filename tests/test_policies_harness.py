"""Feeds resources to the policy pack the way the Pulumi engine does.

Rule tests build properties by hand and pass them through the same path as the
engine's: a protobuf Struct (numbers become floats, unknowns are the engine's
sentinel strings), pulumi_policy's deserializer and its unknown-checking proxy.
Whole-stack tests go one step further and talk to pulumi_policy's analyzer
servicer with the engine's request messages, after reconciling the policy
config file exactly like the CLI does (schema defaults, then "all", then each
policy, then JSON schema validation). Also tests that the harness behaves so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
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
from pulumi_policy.deserialize import deserialize_properties, serialize_properties
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies.rules import ALL_POLICIES
from tests.pulumi_program import ROOT, Deployment
from tests.pulumi_program import Resource as Recorded

PACK_NAME = "securebase-analytics"
CONFIG_DIR = ROOT / "policies" / "config"
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

_LEVELS = {
    EnforcementLevel.ADVISORY: proto.ADVISORY,
    EnforcementLevel.MANDATORY: proto.MANDATORY,
    EnforcementLevel.REMEDIATE: proto.REMEDIATE,
    EnforcementLevel.DISABLED: proto.DISABLED,
}
_LEVEL_NAMES = {
    proto.ADVISORY: "advisory",
    proto.MANDATORY: "mandatory",
    proto.DISABLED: "disabled",
}


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(serialize_properties(props))
    return struct


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


# --- The CLI's config handling and the analyzer protocol -------------------------------


def load_config_file(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def reconcile(
    policies: Sequence[Policy], config: Mapping[str, Any]
) -> dict[str, tuple[EnforcementLevel, dict[str, Any]]]:
    """What the CLI makes of --policy-pack-config (pulumi's ReconcilePolicyPackConfig)."""
    result: dict[str, tuple[EnforcementLevel, dict[str, Any]]] = {}
    for policy in policies:
        defaults = {}
        if policy.config_schema is not None:
            defaults = {
                key: schema["default"]
                for key, schema in policy.config_schema.properties.items()
                if "default" in schema
            }
        result[policy.name] = (policy.enforcement_level or EnforcementLevel.MANDATORY, defaults)

    def split(value: Any) -> tuple[EnforcementLevel | None, dict[str, Any]]:
        if isinstance(value, str):
            return EnforcementLevel(value), {}
        properties = dict(value)
        level = properties.pop("enforcementLevel", None)
        return (EnforcementLevel(level) if level else None), properties

    if "all" in config:
        level, _ = split(config["all"])
        if level is not None:
            result = {name: (level, props) for name, (_, props) in result.items()}
    for name, value in config.items():
        level, properties = split(value)
        current_level, current = result.get(name, (EnforcementLevel.MANDATORY, {}))
        result[name] = (level or current_level, {**current, **properties})
    for policy in policies:
        if policy.config_schema is not None:
            schema = {"type": "object", "properties": policy.config_schema.properties}
            jsonschema.validate(result[policy.name][1], schema)
    return result


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    urn: str
    message: str


class EngineAnalyzer:
    """pulumi_policy's analyzer servicer, driven with the engine's gRPC messages.

    It is the object PolicyPack serves over gRPC, so driving it directly runs the
    engine's requests through the code the CLI talks to, without a server.
    """

    def __init__(self, config: Mapping[str, Any], policies: Sequence[Policy] = ALL_POLICIES):
        self.servicer = _PolicyAnalyzerServicer(
            PACK_NAME, "0.0.1", list(policies), EnforcementLevel.MANDATORY
        )
        request = proto.ConfigureAnalyzerRequest()
        for name, (level, properties) in reconcile(policies, config).items():
            request.policyConfig[name].CopyFrom(
                proto.PolicyConfig(
                    enforcementLevel=_LEVELS[level], properties=to_struct(properties)
                )
            )
        self.servicer.Configure(request, None)

    @staticmethod
    def _diagnostics(response: Any) -> list[Diagnostic]:
        return [
            Diagnostic(d.policyName, _LEVEL_NAMES[d.enforcementLevel], d.urn, d.message)
            for d in response.diagnostics
        ]

    def analyze(self, deployment: Deployment, resource: Recorded) -> list[Diagnostic]:
        request = proto.AnalyzeRequest(
            type=resource.type,
            name=resource.name,
            urn=resource.urn,
            properties=to_struct(resource.inputs),
            options=proto.AnalyzerResourceOptions(protect=resource.protect, parent=resource.parent),
        )
        provider = _recorded_provider(deployment, resource)
        if provider is not None:
            request.provider.CopyFrom(provider)
        diagnostics = self._diagnostics(self.servicer.Analyze(request, None))
        return [replace_urn(d, resource.urn) for d in diagnostics]

    def analyze_stack(self, deployment: Deployment, stack_props: Any = None) -> list[Diagnostic]:
        """AnalyzeStack sees each resource's outputs (`stack_props(resource)` to override)."""
        request = proto.AnalyzeStackRequest()
        for resource in deployment.resources:
            entry = request.resources.add(
                type=resource.type,
                name=resource.name,
                urn=resource.urn,
                properties=to_struct(stack_props(resource) if stack_props else resource.outputs),
                options=proto.AnalyzerResourceOptions(
                    protect=resource.protect, parent=resource.parent
                ),
                parent=resource.parent,
                dependencies=resource.dependencies,
            )
            provider = _recorded_provider(deployment, resource)
            if provider is not None:
                entry.provider.CopyFrom(provider)
        return self._diagnostics(self.servicer.AnalyzeStack(request, None))


def replace_urn(diagnostic: Diagnostic, urn: str) -> Diagnostic:
    """Resource diagnostics carry no URN; the engine attributes them to the analyzed resource."""
    return Diagnostic(
        diagnostic.policy, diagnostic.level, diagnostic.urn or urn, diagnostic.message
    )


def _recorded_provider(deployment: Deployment, resource: Recorded) -> Any:
    if not resource.provider:
        return None
    urn = resource.provider.rsplit("::", 1)[0]
    provider = deployment.by_urn(urn)
    return proto.AnalyzerProviderResource(
        type=provider.type,
        name=provider.name,
        urn=provider.urn,
        properties=to_struct(provider.inputs),
    )


def analyze_deployment(
    deployment: Deployment, config: Mapping[str, Any], stack_props: Any = None, inputs: Any = None
) -> list[Diagnostic]:
    """Every diagnostic of the pack for the deployment: each resource, then the stack."""
    analyzer = EngineAnalyzer(config)
    diagnostics: list[Diagnostic] = []
    for resource in deployment.resources:
        if inputs is not None:
            resource = Recorded(**{**resource.__dict__, "inputs": inputs(resource)})
        diagnostics += analyzer.analyze(deployment, resource)
    return diagnostics + analyzer.analyze_stack(deployment, stack_props)


def stack_config_file(stack: str) -> dict[str, Any]:
    return load_config_file(CONFIG_DIR / f"{stack}.json")


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
