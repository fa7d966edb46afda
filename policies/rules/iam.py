"""IAM: least privilege for every role, and no human identities in a workload stack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import Severity

from . import documents, references
from .framework import (
    UNKNOWN,
    Config,
    Finding,
    Resource,
    ResourceRule,
    Setting,
    Stack,
    StackRule,
    link,
)

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY_ATTACHMENT = "aws:iam/policyAttachment:PolicyAttachment"
ROLE_POLICY_ATTACHMENTS_EXCLUSIVE = (
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive"
)
# People sign in through SSO; workloads use roles. None of these belongs here.
HUMAN_IDENTITY_TYPES = (
    "aws:iam/user:User",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/userLoginProfile:UserLoginProfile",
    "aws:iam/accessKey:AccessKey",
    "aws:iam/userGroupMembership:UserGroupMembership",
    "aws:iam/group:Group",
    "aws:iam/groupPolicy:GroupPolicy",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/groupMembership:GroupMembership",
)
IDENTITY_POLICY_TYPES = (ROLE, ROLE_POLICY, POLICY)
MANAGED_POLICY_TYPES = (
    ROLE,
    ROLE_POLICY_ATTACHMENT,
    POLICY_ATTACHMENT,
    ROLE_POLICY_ATTACHMENTS_EXCLUSIVE,
)

_AWS_MANAGED_POLICY = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/")
LAMBDA_SERVICE = "lambda.amazonaws.com"

# Actions AWS does not let a policy scope to a resource: they may take "*".
DEFAULT_UNSCOPED_ACTIONS = (
    "cloudwatch:GetMetricData",
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:ListMetrics",
    "cloudwatch:PutMetricData",
    "ce:GetCostAndUsage",
    "ce:GetCostForecast",
    "ce:GetDimensionValues",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "sts:GetCallerIdentity",
    "tag:GetResources",
)


def _policy_documents(resource: Resource) -> Iterator[tuple[str, Any]]:
    """(what to call it in a message, the document) for each identity policy in `resource`."""
    if resource.type == ROLE:
        inline = resource.get("inlinePolicies")
        if inline is UNKNOWN:
            return
        for entry in inline or []:
            if entry is UNKNOWN or not isinstance(entry, dict):
                continue
            yield f"inline policy '{entry.get('name') or '?'}'", entry.get("policy")
    else:
        yield "policy", resource.get("policy")


def _statements(resource: Resource) -> Iterator[tuple[str, documents.Statement]]:
    for label, document in _policy_documents(resource):
        if document is UNKNOWN or document is None:
            continue
        for statement in documents.parse(document) or ():
            yield label, statement


def _no_wildcard_actions(resource: Resource, config: Config) -> Iterator[Finding]:
    for label, document in _policy_documents(resource):
        if document is UNKNOWN or document is None:
            continue
        statements = documents.parse(document)
        if statements is None:
            yield Finding(
                resource,
                f"its {label} is not a valid IAM policy document",
                "pass json.dumps() of a policy with a Statement list",
            )
            continue
        for statement in statements:
            if not statement.allows:
                continue
            if statement.not_action:
                yield Finding(
                    resource,
                    f"its {label} allows NotAction {list(statement.actions)}, i.e. every other action",
                    "list the actions the workload calls under Action",
                )
                continue
            wildcards = [a for a in statement.actions if "*" in a or "?" in a]
            if wildcards:
                yield Finding(
                    resource,
                    f"its {label} allows wildcard actions {wildcards}",
                    "replace each wildcard with the exact actions the code calls",
                )


def _scoped_resources(resource: Resource, config: Config) -> Iterator[Finding]:
    allowed = {action.lower() for action in config.strings("unscopedActionsAllowList")}
    for label, statement in _statements(resource):
        if not statement.allows:
            continue
        if statement.not_resource:
            yield Finding(
                resource,
                f"its {label} allows {list(statement.actions)} on NotResource, i.e. on every other resource",
                "list the resource ARNs under Resource",
            )
            continue
        if not any(documents.unscoped(item) for item in statement.resources):
            continue
        unscoped_actions = [a for a in statement.actions if a.lower() not in allowed]
        if statement.not_action or unscoped_actions:
            yield Finding(
                resource,
                f"its {label} allows {unscoped_actions or ['NotAction']} on every resource ('*')",
                "scope the statement to the ARNs it needs; only actions AWS cannot scope "
                "(the unscopedActionsAllowList in the policy config) may use '*'",
            )


def _no_pass_role_on_any_role(resource: Resource, config: Config) -> Iterator[Finding]:
    for label, statement in _statements(resource):
        if not (statement.allows and statement.allows_action("iam:PassRole")):
            continue
        broad = (
            [r for r in statement.resources if "*" in r] if not statement.not_resource else ["*"]
        )
        if broad:
            yield Finding(
                resource,
                f"its {label} allows iam:PassRole on {broad}: the workload could hand any role, "
                "and its permissions, to a service",
                "allow iam:PassRole only on the exact role ARNs it passes, with an "
                "iam:PassedToService condition",
            )


def _managed_policy_arns(resource: Resource) -> list[str]:
    if resource.type == ROLE:
        value = resource.get("managedPolicyArns")
    elif resource.type == ROLE_POLICY_ATTACHMENTS_EXCLUSIVE:
        value = resource.get("policyArns")
    else:
        value = [resource.get("policyArn")]
    if value is UNKNOWN or not isinstance(value, list):
        return []
    return [arn for arn in value if isinstance(arn, str)]


def _policy_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _no_admin_policies(resource: Resource, config: Config) -> Iterator[Finding]:
    for arn in _managed_policy_arns(resource):
        name = _policy_name(arn)
        if name in ("AdministratorAccess", "PowerUserAccess") or name.endswith("FullAccess"):
            yield Finding(
                resource,
                f"it attaches {arn}, which grants a whole service (or account) to the role",
                "remove the attachment and grant the exact actions and resources in an inline policy",
            )


def _no_aws_managed_policies(resource: Resource, config: Config) -> Iterator[Finding]:
    allowed = set(config.strings("allowedAwsManagedPolicyArns"))
    for arn in _managed_policy_arns(resource):
        if _AWS_MANAGED_POLICY.match(arn) and arn not in allowed:
            yield Finding(
                resource,
                f"it attaches the AWS managed policy {arn}, which AWS may widen at any time "
                "and which rarely scopes resources",
                "grant the actions the function needs on its own resources in an inline "
                "policy (or list the ARN in allowedAwsManagedPolicyArns with a reason)",
            )


def _trust_policy(resource: Resource, config: Config) -> Iterator[Finding]:
    document = resource.get("assumeRolePolicy")
    if document is UNKNOWN or document is None:
        return
    statements = documents.parse(document)
    if statements is None:
        yield Finding(
            resource,
            "its assumeRolePolicy is not a valid trust policy",
            "pass json.dumps() of a trust policy with a Statement list",
        )
        return
    trusted: set[str] = set()
    for statement in (s for s in statements if s.allows):
        if statement.everyone or statement.not_principal:
            yield Finding(
                resource,
                "its trust policy lets any principal assume the role",
                "trust only the AWS service that runs the workload, e.g. "
                '{"Service": "lambda.amazonaws.com"}',
            )
            continue
        others = sorted(kind for kind in statement.principals if kind != "Service")
        if others:
            yield Finding(
                resource,
                f"its trust policy trusts {others} principals; workload roles are assumed by "
                "AWS services only",
                "trust the service principal only; people reach the account through SSO",
            )
        trusted.update(statement.services)
    if LAMBDA_SERVICE in trusted and trusted != {LAMBDA_SERVICE}:
        yield Finding(
            resource,
            f"it is a Lambda execution role but also trusts {sorted(trusted - {LAMBDA_SERVICE})}",
            "give each service its own role; a Lambda role trusts lambda.amazonaws.com only",
        )


def _no_human_identities(resource: Resource, config: Config) -> Iterator[Finding]:
    if resource.type == POLICY_ATTACHMENT:
        members = [
            kind for kind in ("users", "groups") if resource.get(kind) not in (None, [], UNKNOWN)
        ]
        if not members:
            return
        problem = f"it attaches a policy to IAM {' and '.join(members)}"
    else:
        problem = (
            "IAM users, groups, login profiles and access keys do not belong in a workload stack"
        )
    yield Finding(
        resource,
        problem,
        "remove it: people sign in through IAM Identity Center (SSO), workloads use roles",
    )


def _no_static_credentials(provider: Resource, config: Config) -> Iterator[Finding]:
    fields = [field for field in ("accessKey", "secretKey", "token") if provider.get(field)]
    if fields:
        yield Finding(
            provider,
            f"it is configured with static credentials ({fields}) that end up in the stack's state",
            "remove them; the CLI and CI take credentials from the environment (OIDC role in CI)",
        )


def _policy_management_conflicts(stack: Stack, config: Config) -> Iterator[Finding]:
    roles = [
        role
        for role in stack.of_type(ROLE)
        if role.get("managedPolicyArns") not in (None, [], UNKNOWN)
        or role.get("inlinePolicies") not in (None, [], UNKNOWN)
    ]
    if not roles:
        return
    attachments = link(
        stack.of_type(ROLE_POLICY, ROLE_POLICY_ATTACHMENT),
        roles,
        reference=lambda attachment: references.role_name(attachment.get("role")),
        identity=lambda role: role.get("name"),
        prop="role",
    )
    for role in roles:
        for attachment in attachments.of(role):
            yield Finding(
                attachment,
                f"it manages a policy of role '{role.name}', which also sets "
                "managedPolicyArns/inlinePolicies itself: the two fight on every update",
                "manage the role's policies in one way only (separate RolePolicy and "
                "RolePolicyAttachment resources)",
            )


UNSCOPED_ACTIONS = Setting(
    "unscopedActionsAllowList",
    "Actions that may use Resource '*' because AWS offers no resource-level permission for them.",
    {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    list(DEFAULT_UNSCOPED_ACTIONS),
)
ALLOWED_AWS_MANAGED = Setting(
    "allowedAwsManagedPolicyArns",
    "AWS managed policies that may be attached anyway (each needs a documented reason).",
    {"type": "array", "items": {"type": "string", "pattern": "^arn:aws[a-z-]*:iam::aws:policy/"}},
    [],
)

POLICIES = [
    ResourceRule(
        name="iam-policy-no-wildcard-actions",
        description="IAM policies allow named actions only: no '*', 'service:*', 'Get*' or NotAction.",
        remediation="List the exact actions the code calls in the statement's Action.",
        severity=Severity.CRITICAL,
        resource_types=IDENTITY_POLICY_TYPES,
        check=_no_wildcard_actions,
    ),
    ResourceRule(
        name="iam-policy-scoped-resources",
        description="IAM policies allow actions on named resources; Resource '*' only for actions AWS cannot scope.",
        remediation="Put the ARNs the statement acts on under Resource; keep '*' only for the "
        "allow-listed unscoped actions, in a statement of their own.",
        severity=Severity.HIGH,
        resource_types=IDENTITY_POLICY_TYPES,
        check=_scoped_resources,
        settings=[UNSCOPED_ACTIONS],
    ),
    ResourceRule(
        name="iam-no-pass-role-on-any-role",
        description="No IAM policy allows iam:PassRole on '*' or on a wildcard of roles.",
        remediation="Allow iam:PassRole on the exact role ARNs, with an iam:PassedToService condition.",
        severity=Severity.CRITICAL,
        resource_types=IDENTITY_POLICY_TYPES,
        check=_no_pass_role_on_any_role,
    ),
    ResourceRule(
        name="iam-no-admin-or-full-access-policies",
        description="No role gets AdministratorAccess, PowerUserAccess or a '*FullAccess' managed policy.",
        remediation="Detach the policy and grant the needed actions on the needed resources inline.",
        severity=Severity.CRITICAL,
        resource_types=MANAGED_POLICY_TYPES,
        check=_no_admin_policies,
    ),
    ResourceRule(
        name="iam-no-aws-managed-policies",
        description="Roles use policies written for them, not AWS managed policies.",
        remediation="Replace the AWS managed policy with an inline policy scoped to the "
        "function's own resources (or allow-list the ARN in the policy config, with a reason).",
        severity=Severity.HIGH,
        resource_types=MANAGED_POLICY_TYPES,
        check=_no_aws_managed_policies,
        settings=[ALLOWED_AWS_MANAGED],
    ),
    ResourceRule(
        name="iam-role-trust-policy",
        description="Roles are assumable only by the AWS service that runs the workload; "
        "Lambda roles trust lambda.amazonaws.com only.",
        remediation="Trust one service principal per role (add an aws:SourceAccount condition "
        "against confused deputies); never '*', accounts or federated principals.",
        severity=Severity.CRITICAL,
        resource_types=[ROLE],
        check=_trust_policy,
    ),
    ResourceRule(
        name="iam-no-human-identities",
        description="The stack creates no IAM users, groups, login profiles or access keys.",
        remediation="Remove them; people use SSO and workloads use roles.",
        severity=Severity.HIGH,
        resource_types=(*HUMAN_IDENTITY_TYPES, POLICY_ATTACHMENT),
        check=_no_human_identities,
    ),
    ResourceRule(
        name="aws-provider-no-static-credentials",
        description="The AWS provider takes credentials from the environment, never from its inputs.",
        remediation="Drop accessKey/secretKey/token from the provider; use the CLI's or CI's role.",
        severity=Severity.CRITICAL,
        resource_types=["pulumi:providers:aws"],
        check=_no_static_credentials,
    ),
    StackRule(
        name="iam-role-policy-management-conflicts",
        description="A role's policies are managed one way: not both on the Role and by "
        "RolePolicy/RolePolicyAttachment resources.",
        remediation="Drop managedPolicyArns/inlinePolicies from the Role and keep the separate resources.",
        severity=Severity.MEDIUM,
        check=_policy_management_conflicts,
    ),
]
