"""The SecureBase Analytics policy pack, as `pulumi preview --policy-pack policies` runs it.

Constructing the PolicyPack starts the analyzer's gRPC server and blocks, so
this file only does that; the rules live in the importable `rules` package.
Every policy is mandatory unless --policy-pack-config says otherwise.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import ALL_POLICIES

PolicyPack(
    name="securebase-analytics",
    policies=ALL_POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Least privilege, encryption, lifecycle and observability guard rails for "
    "the SecureBase Analytics stacks.",
)
