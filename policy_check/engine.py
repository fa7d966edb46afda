"""The policy pack driven the way the Pulumi engine drives it, without the CLI.

`EngineAnalyzer` is pulumi_policy's analyzer servicer (the object PolicyPack
serves over gRPC) fed with the engine's request messages: every resource goes
through Analyze (its inputs) and the stack through AnalyzeStack (every
resource's outputs). The policy config file is reconciled exactly like the CLI
does (schema defaults, then "all", then each policy, then JSON schema validation).
The resources come from a run of the program under mocks
(`tests.pulumi_program.run_program`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, Policy
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policies.rules import ALL_POLICIES

if TYPE_CHECKING:
    from tests.pulumi_program import Deployment, Resource

PACK_NAME = "securebase-analytics"
ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "policies" / "config"

_LEVELS = {
    EnforcementLevel.ADVISORY: proto.ADVISORY,
    EnforcementLevel.MANDATORY: proto.MANDATORY,
    EnforcementLevel.REMEDIATE: proto.REMEDIATE,
    EnforcementLevel.DISABLED: proto.DISABLED,
}
_LEVEL_NAMES = {
    proto.ADVISORY: "advisory",
    proto.MANDATORY: "mandatory",
    proto.REMEDIATE: "remediate",
    proto.DISABLED: "disabled",
}
_SEVERITY_NAMES = {
    proto.POLICY_SEVERITY_UNSPECIFIED: "",
    proto.POLICY_SEVERITY_LOW: "low",
    proto.POLICY_SEVERITY_MEDIUM: "medium",
    proto.POLICY_SEVERITY_HIGH: "high",
    proto.POLICY_SEVERITY_CRITICAL: "critical",
}


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(serialize_properties(props))
    return struct


def load_config_file(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def stack_config_file(stack: str, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """The stack's own policy config, as `--policy-pack-config` passes it."""
    return load_config_file(config_dir / f"{stack}.json")


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
    """One violation as the engine receives it."""

    policy: str
    level: str  # "mandatory", "advisory"
    urn: str
    message: str  # the policy's description, a newline, then the violation

    @property
    def detail(self) -> str:
        """The violation itself: `<type> '<name>': <what is wrong>. Fix: <how>`."""
        return self.message.splitlines()[-1]


@dataclass(frozen=True)
class PolicyInfo:
    """A policy as the engine learns it from the pack (GetAnalyzerInfo), with its configured level."""

    name: str
    description: str
    remediation: str
    severity: str
    level: str  # as this stack's config sets it: "mandatory", "advisory", "disabled"


class EngineAnalyzer:
    """pulumi_policy's analyzer servicer, driven with the engine's gRPC messages.

    It is the object PolicyPack serves over gRPC, so driving it directly runs the
    engine's requests through the code the CLI talks to, without a server.
    """

    def __init__(self, config: Mapping[str, Any], policies: Sequence[Policy] = ALL_POLICIES):
        self.servicer = _PolicyAnalyzerServicer(
            PACK_NAME, "0.0.1", list(policies), EnforcementLevel.MANDATORY
        )
        reconciled = reconcile(policies, config)
        self.levels = {name: level.value for name, (level, _) in reconciled.items()}
        request = proto.ConfigureAnalyzerRequest()
        for name, (level, properties) in reconciled.items():
            request.policyConfig[name].CopyFrom(
                proto.PolicyConfig(
                    enforcementLevel=_LEVELS[level], properties=to_struct(properties)
                )
            )
        self.servicer.Configure(request, None)

    def policies(self) -> list[PolicyInfo]:
        """Every policy of the pack, in the pack's order."""
        info = self.servicer.GetAnalyzerInfo(None, None)
        return [
            PolicyInfo(
                name=policy.name,
                description=policy.description,
                remediation=policy.remediation_steps,
                severity=_SEVERITY_NAMES[policy.severity],
                level=self.levels[policy.name],
            )
            for policy in info.policies
        ]

    @staticmethod
    def _diagnostics(response: Any) -> list[Diagnostic]:
        return [
            Diagnostic(d.policyName, _LEVEL_NAMES[d.enforcementLevel], d.urn, d.message)
            for d in response.diagnostics
        ]

    def analyze(self, deployment: Deployment, resource: Resource) -> list[Diagnostic]:
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
        # Resource diagnostics carry no URN; the engine attributes them to the analyzed resource.
        return [
            dataclasses.replace(d, urn=d.urn or resource.urn)
            for d in self._diagnostics(self.servicer.Analyze(request, None))
        ]

    def analyze_stack(
        self,
        deployment: Deployment,
        stack_props: Callable[[Resource], Mapping[str, Any]] | None = None,
    ) -> list[Diagnostic]:
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

    def analyze_deployment(
        self,
        deployment: Deployment,
        stack_props: Callable[[Resource], Mapping[str, Any]] | None = None,
        inputs: Callable[[Resource], dict[str, Any]] | None = None,
    ) -> list[Diagnostic]:
        """Each resource through Analyze (`inputs(resource)` to override), then the stack."""
        diagnostics: list[Diagnostic] = []
        for resource in deployment.resources:
            if inputs is not None:
                resource = dataclasses.replace(resource, inputs=inputs(resource))
            diagnostics += self.analyze(deployment, resource)
        return diagnostics + self.analyze_stack(deployment, stack_props)


def _recorded_provider(deployment: Deployment, resource: Resource) -> Any:
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
    deployment: Deployment,
    config: Mapping[str, Any],
    stack_props: Callable[[Resource], Mapping[str, Any]] | None = None,
    inputs: Callable[[Resource], dict[str, Any]] | None = None,
) -> list[Diagnostic]:
    """Every diagnostic of the pack for the deployment: each resource, then the stack."""
    return EngineAnalyzer(config).analyze_deployment(deployment, stack_props, inputs)
