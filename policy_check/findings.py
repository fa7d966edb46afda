"""The pack's verdict on one stack: its policies and every violation, placed in the source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policy_check.engine import EngineAnalyzer, PolicyInfo
from policy_check.sources import SourceRegion, declaration

if TYPE_CHECKING:
    from tests.pulumi_program import Deployment

_ORDER = {"mandatory": 0, "advisory": 1}


@dataclass(frozen=True)
class Finding:
    """One violation, with what a reviewer needs to act on it."""

    policy: PolicyInfo
    level: str  # as enforced: "mandatory" or "advisory"
    urn: str
    resource_type: str
    resource_name: str
    message: str  # `<type> '<name>': <what is wrong>. Fix: <how>`
    source: SourceRegion | None

    @property
    def problem(self) -> str:
        """The message without the resource it names first."""
        return self.message.removeprefix(f"{self.resource_type} '{self.resource_name}': ")


@dataclass(frozen=True)
class StackVerdict:
    stack: str
    resources: int
    policies: list[PolicyInfo]
    findings: list[Finding]  # mandatory first, then by policy and resource

    @property
    def mandatory(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level == "mandatory"]


def evaluate(deployment: Deployment, config: Mapping[str, Any]) -> StackVerdict:
    """Runs the pack over `deployment` with the stack's policy `config`, as the engine would."""
    analyzer = EngineAnalyzer(config)
    policies = analyzer.policies()
    by_name = {policy.name: policy for policy in policies}
    resources = {resource.urn: resource for resource in deployment.resources}
    findings = []
    for diagnostic in analyzer.analyze_deployment(deployment):
        resource = resources[diagnostic.urn]
        findings.append(
            Finding(
                policy=by_name[diagnostic.policy],
                level=diagnostic.level,
                urn=diagnostic.urn,
                resource_type=resource.type,
                resource_name=resource.name,
                message=diagnostic.detail,
                source=declaration(deployment, resource),
            )
        )
    findings.sort(key=lambda f: (_ORDER.get(f.level, 2), f.policy.name, f.resource_name))
    return StackVerdict(deployment.stack, len(deployment.resources), policies, findings)
