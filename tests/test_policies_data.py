"""DynamoDB and KMS rules."""

from __future__ import annotations

import json

import pytest

from policies.rules import ALL_POLICIES
from tests.test_policies_harness import UNKNOWN, check_resource

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
TABLE = "aws:dynamodb/table:Table"
KEY = "aws:kms/key:Key"


def table(name: str = "securebase-production-metrics", **overrides) -> dict:
    """A table as components.data creates it in production."""
    return {
        "name": name,
        "billingMode": "PAY_PER_REQUEST",
        "hashKey": "pk",
        "rangeKey": "sk",
        "attributes": [{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}],
        "ttl": {"attributeName": "ttl", "enabled": True},
        "pointInTimeRecovery": {"enabled": True},
        "serverSideEncryption": {"enabled": True},
        "deletionProtectionEnabled": True,
        **overrides,
    }


def check(rule: str, resource_type: str, props: dict, **kwargs) -> list[str]:
    return check_resource(POLICIES[rule], resource_type, props, **kwargs)


TABLE_RULES = [
    "dynamodb-table-encryption",
    "dynamodb-table-point-in-time-recovery",
    "dynamodb-table-deletion-protection",
    "dynamodb-table-on-demand",
]


@pytest.mark.parametrize("rule", TABLE_RULES)
def test_a_production_table_passes(rule):
    assert check(rule, TABLE, table()) == []


@pytest.mark.parametrize(
    ("rule", "overrides", "problem"),
    [
        ("dynamodb-table-encryption", {"serverSideEncryption": {"enabled": False}}, "server-side encryption with KMS is not enabled"),
        ("dynamodb-table-encryption", {"serverSideEncryption": None}, "server-side encryption with KMS is not enabled"),
        ("dynamodb-table-point-in-time-recovery", {"pointInTimeRecovery": {"enabled": False}}, "point-in-time recovery is off"),
        ("dynamodb-table-deletion-protection", {"deletionProtectionEnabled": False}, "deletion protection is off"),
        ("dynamodb-table-on-demand", {"billingMode": "PROVISIONED"}, "it uses provisioned capacity (PROVISIONED)"),
        ("dynamodb-table-on-demand", {"billingMode": None}, "it uses provisioned capacity (PROVISIONED by default)"),
    ],
)  # fmt: skip
def test_table_violations_name_the_table_and_the_fix(rule, overrides, problem):
    [message] = check(rule, TABLE, table(**overrides), name="analytics-data-metrics")
    assert message.startswith(f"aws:dynamodb/table:Table 'analytics-data-metrics': {problem}")
    assert ". Fix: set " in message


def test_cache_tables_need_ttl_instead_of_point_in_time_recovery():
    cache = table("securebase-production-report-cache", pointInTimeRecovery={"enabled": False})
    assert check("dynamodb-table-point-in-time-recovery", TABLE, cache) == []
    [message] = check(
        "dynamodb-table-point-in-time-recovery",
        TABLE,
        {**cache, "ttl": {"attributeName": "ttl", "enabled": False}},
    )
    assert "it is a cache table without TTL" in message


def test_which_tables_are_caches_is_config():
    config = {"cacheTableNamePatterns": ["securebase-*-metrics"]}
    metrics = table(pointInTimeRecovery={"enabled": False})
    assert check("dynamodb-table-point-in-time-recovery", TABLE, metrics) != []
    assert check("dynamodb-table-point-in-time-recovery", TABLE, metrics, config=config) == []


@pytest.mark.parametrize("rule", TABLE_RULES)
def test_values_unknown_during_preview_are_not_judged(rule):
    unknown = table(
        serverSideEncryption={"enabled": UNKNOWN},
        pointInTimeRecovery=UNKNOWN,
        deletionProtectionEnabled=UNKNOWN,
        billingMode=UNKNOWN,
    )
    assert check(rule, TABLE, unknown) == []


def key(**overrides) -> dict:
    return {
        "description": "securebase-production analytics data at rest",
        "enableKeyRotation": True,
        "deletionWindowInDays": 30,
        **overrides,
    }


def test_a_rotating_key_passes():
    assert check("kms-key-rotation", KEY, key()) == []
    assert check("kms-key-enabled-and-recoverable", KEY, key()) == []


def test_keys_must_rotate():
    [message] = check("kms-key-rotation", KEY, key(enableKeyRotation=False), name="data-key")
    assert message == (
        "aws:kms/key:Key 'data-key': automatic key rotation is off. Fix: set enableKeyRotation True"
    )
    assert check("kms-key-rotation", KEY, key(enableKeyRotation=None)) != []


def test_asymmetric_keys_cannot_rotate_and_are_exempt():
    signing = key(enableKeyRotation=None, customerMasterKeySpec="RSA_2048", keyUsage="SIGN_VERIFY")
    assert check("kms-key-rotation", KEY, signing) == []


def test_keys_stay_enabled_with_a_long_deletion_window():
    messages = check(
        "kms-key-enabled-and-recoverable", KEY, key(isEnabled=False, deletionWindowInDays=7)
    )
    assert len(messages) == 2
    assert "the key is disabled" in messages[0]
    assert "completes after 7 days (at least 30 required)" in messages[1]
    relaxed = {"minDeletionWindowDays": 7}
    assert (
        check("kms-key-enabled-and-recoverable", KEY, key(deletionWindowInDays=7), config=relaxed)
        == []
    )


def key_policy(*statements: dict) -> str:
    administers = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [administers, *statements]})


def service_statement(service: str, condition: dict | None = None) -> dict:
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
        "Resource": "*",
    }
    if condition is not None:
        statement["Condition"] = condition
    return statement


FOR_THIS_ACCOUNT = {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_service_principals_in_a_key_policy_need_aws_source_account():
    unconditioned = key(policy=key_policy(service_statement("cloudwatch.amazonaws.com")))
    [message] = check("kms-key-policy-source-account", KEY, unconditioned, name="alerts-key")
    assert message == (
        "aws:kms/key:Key 'alerts-key': key policy statement 1 lets cloudwatch.amazonaws.com use "
        "the key without an aws:SourceAccount condition: the service could use it for another "
        "account's resources (confused deputy). Fix: add Condition {'StringEquals': "
        "{'aws:SourceAccount': '<this account id>'}} to the statement, keeping any condition "
        "the service documents"
    )


def test_a_documented_service_condition_does_not_replace_aws_source_account():
    logs_only = {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:*"}}
    only_context = key(
        policy=key_policy(service_statement("logs.us-east-1.amazonaws.com", logs_only))
    )
    assert len(check("kms-key-policy-source-account", KEY, only_context)) == 1
    both = key(
        policy=key_policy(
            service_statement("logs.us-east-1.amazonaws.com", {**logs_only, **FOR_THIS_ACCOUNT}),
            service_statement("sns.amazonaws.com", FOR_THIS_ACCOUNT),
        )
    )
    assert check("kms-key-policy-source-account", KEY, both) == []


def test_account_principals_and_keys_without_a_policy_are_not_service_grants():
    assert check("kms-key-policy-source-account", KEY, key()) == []
    assert check("kms-key-policy-source-account", KEY, key(policy=key_policy())) == []
    assert check("kms-key-policy-source-account", KEY, key(policy=UNKNOWN)) == []


def test_separate_key_policies_are_checked_too():
    policy = {"keyId": "k-1", "policy": key_policy(service_statement("sns.amazonaws.com"))}
    assert len(check("kms-key-policy-source-account", "aws:kms/keyPolicy:KeyPolicy", policy)) == 1
