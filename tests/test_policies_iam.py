"""IAM rules, fed properties the way the engine sends them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.rules import ALL_POLICIES
from tests.test_policies_harness import UNKNOWN, Spec, check_resource, check_stack

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICIES = {policy.name: policy for policy in ALL_POLICIES}
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/securebase-production-metrics"


def document(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions, resources, **extra) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def role_policy(*statements: dict) -> dict:
    return {"role": "securebase-production-analytics-query", "policy": document(*statements)}


def check(name: str, resource_type: str, props: dict, **kwargs) -> list[str]:
    return check_resource(POLICIES[name], resource_type, props, **kwargs)


LEAST_PRIVILEGE = role_policy(
    allow(["logs:CreateLogStream", "logs:PutLogEvents"], ["arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/q:*"]),
    allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
    allow("dynamodb:Query", TABLE_ARN),
)  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        "iam-policy-no-wildcard-actions",
        "iam-policy-scoped-resources",
        "iam-no-pass-role-on-any-role",
    ],
)
def test_a_least_privilege_policy_passes(name):
    assert check(name, ROLE_POLICY, LEAST_PRIVILEGE) == []


@pytest.mark.parametrize("action", ["*", "s3:*", "dynamodb:Get*", "iam:Pass?ole"])
def test_wildcard_actions_are_violations(action):
    messages = check(
        "iam-policy-no-wildcard-actions", ROLE_POLICY, role_policy(allow([action], TABLE_ARN))
    )
    assert messages == [
        "aws:iam/rolePolicy:RolePolicy 'subject': its policy allows wildcard actions "
        f"['{action}']. Fix: replace each wildcard with the exact actions the code calls"
    ]


def test_not_action_counts_as_a_wildcard_but_deny_statements_do_not():
    props = role_policy(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": TABLE_ARN},
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
    )
    [message] = check("iam-policy-no-wildcard-actions", ROLE_POLICY, props)
    assert "allows NotAction ['iam:*']" in message


def test_inline_policies_of_a_role_are_checked_by_name():
    props = {
        "assumeRolePolicy": document(),
        "inlinePolicies": [
            {"name": "ok", "policy": LEAST_PRIVILEGE["policy"]},
            {"name": "too-wide", "policy": document(allow("s3:*", "*"))},
        ],
    }
    [message] = check("iam-policy-no-wildcard-actions", ROLE, props)
    assert "its inline policy 'too-wide' allows wildcard actions ['s3:*']" in message


def test_an_unparseable_policy_is_reported():
    [message] = check("iam-policy-no-wildcard-actions", ROLE_POLICY, {"policy": "{not json"})
    assert "is not a valid IAM policy document" in message


@pytest.mark.parametrize(
    "name",
    [
        "iam-policy-no-wildcard-actions",
        "iam-policy-scoped-resources",
        "iam-no-pass-role-on-any-role",
    ],
)
def test_a_policy_unknown_during_preview_is_not_judged(name):
    assert check(name, ROLE_POLICY, {"role": "r", "policy": UNKNOWN}) == []


def test_star_resources_only_for_actions_aws_cannot_scope():
    props = role_policy(
        allow(["cloudwatch:GetMetricData", "ce:GetCostAndUsage"], "*"),
        allow(["dynamodb:Query", "xray:PutTraceSegments"], "*"),
    )
    [message] = check("iam-policy-scoped-resources", ROLE_POLICY, props)
    assert "allows ['dynamodb:Query'] on every resource ('*')" in message


def test_the_unscoped_allow_list_is_config():
    props = role_policy(allow("securityhub:GetFindings", "*"))
    assert check("iam-policy-scoped-resources", ROLE_POLICY, props) != []
    config = {"unscopedActionsAllowList": ["securityhub:GetFindings"]}
    assert check("iam-policy-scoped-resources", ROLE_POLICY, props, config=config) == []


@pytest.mark.parametrize(
    "resource",
    ["arn:aws:dynamodb:us-east-1:123456789012:*", "*"],
)
def test_an_arn_ending_in_star_is_as_broad_as_star(resource):
    assert check(
        "iam-policy-scoped-resources", ROLE_POLICY, role_policy(allow("dynamodb:Query", resource))
    )


def test_scoped_wildcards_inside_an_arn_are_fine():
    props = role_policy(allow("s3:GetObject", "arn:aws:s3:::securebase-production-reports/*"))
    assert check("iam-policy-scoped-resources", ROLE_POLICY, props) == []


@pytest.mark.parametrize("resource", ["*", "arn:aws:iam::123456789012:role/*"])
def test_pass_role_on_any_role_is_a_violation(resource):
    [message] = check(
        "iam-no-pass-role-on-any-role", ROLE_POLICY, role_policy(allow("iam:PassRole", resource))
    )
    assert f"allows iam:PassRole on ['{resource}']" in message


def test_pass_role_on_one_role_is_fine():
    arn = "arn:aws:iam::123456789012:role/securebase-production-analytics-scheduler"
    assert (
        check("iam-no-pass-role-on-any-role", ROLE_POLICY, role_policy(allow("iam:PassRole", arn)))
        == []
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess",
        "arn:aws:iam::aws:policy/PowerUserAccess",
        "arn:aws:iam::123456789012:policy/TeamS3FullAccess",
    ],
)
def test_admin_and_full_access_policies_are_violations(arn):
    [message] = check(
        "iam-no-admin-or-full-access-policies", ATTACHMENT, {"role": "r", "policyArn": arn}
    )
    assert f"it attaches {arn}" in message


def test_managed_policy_arns_on_the_role_are_checked_too():
    props = {
        "assumeRolePolicy": document(),
        "managedPolicyArns": ["arn:aws:iam::aws:policy/IAMFullAccess"],
    }
    assert check("iam-no-admin-or-full-access-policies", ROLE, props) != []


def test_aws_managed_policies_need_an_allow_list_entry():
    arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    props = {"role": "r", "policyArn": arn}
    [message] = check("iam-no-aws-managed-policies", ATTACHMENT, props)
    assert f"it attaches the AWS managed policy {arn}" in message
    config = {"allowedAwsManagedPolicyArns": [arn]}
    assert check("iam-no-aws-managed-policies", ATTACHMENT, props, config=config) == []
    own = {"role": "r", "policyArn": "arn:aws:iam::123456789012:policy/securebase-reader"}
    assert check("iam-no-aws-managed-policies", ATTACHMENT, own) == []


def trust(*statements: dict) -> dict:
    return {"assumeRolePolicy": document(*statements)}


def trusting(principal, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def test_a_lambda_role_trusting_only_lambda_passes():
    condition = {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    props = trust(trusting({"Service": "lambda.amazonaws.com"}, Condition=condition))
    assert check("iam-role-trust-policy", ROLE, props) == []


@pytest.mark.parametrize(
    ("principal", "problem"),
    [
        ("*", "its trust policy lets any principal assume the role"),
        ({"AWS": "*"}, "its trust policy lets any principal assume the role"),
        ({"AWS": "arn:aws:iam::210987654321:root"}, "its trust policy trusts ['AWS'] principals"),
        ({"Federated": "cognito-identity.amazonaws.com"}, "trusts ['Federated'] principals"),
    ],
)
def test_roles_are_assumed_by_services_only(principal, problem):
    [message] = check("iam-role-trust-policy", ROLE, trust(trusting(principal)))
    assert problem in message


def test_a_lambda_role_trusts_nothing_else():
    props = trust(
        trusting({"Service": ["lambda.amazonaws.com", "scheduler.amazonaws.com"]}),
    )
    [message] = check("iam-role-trust-policy", ROLE, props)
    assert "it is a Lambda execution role but also trusts ['scheduler.amazonaws.com']" in message


def test_an_unknown_trust_policy_is_not_judged():
    assert check("iam-role-trust-policy", ROLE, {"assumeRolePolicy": UNKNOWN}) == []


@pytest.mark.parametrize(
    "resource_type",
    ["aws:iam/user:User", "aws:iam/accessKey:AccessKey", "aws:iam/group:Group"],
)
def test_human_identities_are_violations(resource_type):
    assert check("iam-no-human-identities", resource_type, {"name": "someone"}) != []


def test_policy_attachments_to_roles_only_are_fine():
    attachment = "aws:iam/policyAttachment:PolicyAttachment"
    props = {"policyArn": "arn:aws:iam::123456789012:policy/p", "roles": ["r"]}
    assert check("iam-no-human-identities", attachment, props) == []
    [message] = check("iam-no-human-identities", attachment, {**props, "users": ["alice"]})
    assert "it attaches a policy to IAM users" in message


def test_a_role_managed_two_ways_is_a_conflict():
    policy = POLICIES["iam-role-policy-management-conflicts"]
    role = Spec(
        ROLE,
        "role",
        {"name": "securebase-x", "managedPolicyArns": ["arn:aws:iam::123456789012:policy/p"]},
    )
    inline = Spec(ROLE_POLICY, "inline", {"role": "securebase-x", "policy": document()})
    other = Spec(ROLE_POLICY, "other", {"role": "securebase-y", "policy": document()})
    found = check_stack(policy, [role, inline, other])
    assert [name for name, _ in found] == ["inline"]
    assert "also sets managedPolicyArns/inlinePolicies itself" in found[0][1]
    plain_role = Spec(ROLE, "role", {"name": "securebase-x"})
    assert check_stack(policy, [plain_role, inline]) == []


def test_the_conflict_is_found_through_dependencies_when_the_role_id_is_unknown():
    policy = POLICIES["iam-role-policy-management-conflicts"]
    role = Spec(
        ROLE,
        "role",
        {"name": "securebase-x", "inlinePolicies": [{"name": "a", "policy": document()}]},
    )
    inline = Spec(
        ROLE_POLICY, "inline", {"role": UNKNOWN}, property_dependencies={"role": ["role"]}
    )
    assert [name for name, _ in check_stack(policy, [role, inline])] == ["inline"]


@given(
    service=st.sampled_from(["dynamodb", "s3", "sqs", "kms", "ses"]),
    verb=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=20
    ),
)
def test_any_named_action_on_a_named_resource_passes(service, verb):
    props = role_policy(
        allow(f"{service}:{verb}", f"arn:aws:{service}:us-east-1:123456789012:thing/x")
    )
    for name in ("iam-policy-no-wildcard-actions", "iam-policy-scoped-resources"):
        assert check(name, ROLE_POLICY, props) == []


def test_the_aws_provider_takes_no_static_credentials():
    provider = "pulumi:providers:aws"
    assert check("aws-provider-no-static-credentials", provider, {"region": "us-east-1"}) == []
    [message] = check(
        "aws-provider-no-static-credentials",
        provider,
        {"region": "us-east-1", "accessKey": "AKIAIOSFODNN7EXAMPLE", "secretKey": "x"},
    )
    assert "configured with static credentials (['accessKey', 'secretKey'])" in message
    assert "AKIAIOSFODNN7EXAMPLE" not in message
