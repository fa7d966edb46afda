"""AnalyticsData under mocks, for both stacks' real config."""

import json

import boto3
import pytest
from moto import mock_aws

from components.secure_bucket import LogDelivery, SecureBucketArgs
from handlers.shared.tables import ALL_TABLES, create_table_request, create_tables
from tests.pulumi_program import ACCOUNT_ID, STACKS, Deployment, committed_deployment, run_program

TABLE = "aws:dynamodb/table:Table"
BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


@pytest.fixture(scope="module", params=STACKS)
def deployment(request) -> Deployment:
    return committed_deployment(request.param)


@pytest.fixture(scope="module")
def staging() -> Deployment:
    return committed_deployment("staging")


@pytest.fixture(scope="module")
def production() -> Deployment:
    return committed_deployment("production")


def table(deployment: Deployment, logical: str):
    return deployment.one(
        TABLE, lambda r: r.inputs["name"] == f"securebase-{deployment.stack}-{logical}"
    )


def data_resource(deployment: Deployment, type_: str):
    return deployment.one(type_, lambda r: r.name.startswith("analytics-data-reports"))


def test_the_component_owns_the_tables_and_the_bucket(deployment):
    component = deployment.one("securebase:analytics:AnalyticsData")
    assert {r.name for r in deployment.children_of(component) if r.type == TABLE} == {
        "analytics-data-metrics",
        "analytics-data-reports",
        "analytics-data-report-schedules",
        "analytics-data-report-cache",
        "analytics-data-report-emails",
    }
    bucket = data_resource(deployment, BUCKET)
    assert deployment.by_urn(bucket.parent).parent == component.urn


@pytest.mark.parametrize("logical", ["metrics", "reports", "report-schedules", "report-cache"])
def test_every_table_is_on_demand_and_encrypted(deployment, logical):
    inputs = table(deployment, logical).inputs
    assert inputs["billingMode"] == "PAY_PER_REQUEST"
    assert inputs["serverSideEncryption"] == {"enabled": True}


def test_metrics_keys_hold_samples_and_rollups_with_ttl_and_no_index(deployment):
    inputs = table(deployment, "metrics").inputs
    assert (inputs["hashKey"], inputs["rangeKey"]) == ("pk", "sk")
    assert inputs["ttl"] == {"attributeName": "ttl", "enabled": True}
    assert "globalSecondaryIndexes" not in inputs
    assert inputs["pointInTimeRecovery"] == {"enabled": True}


def test_reports_list_by_tenant_without_an_index_and_expire_by_ttl(deployment):
    inputs = table(deployment, "reports").inputs
    assert (inputs["hashKey"], inputs["rangeKey"]) == ("customer_id", "report_id")
    assert "globalSecondaryIndexes" not in inputs
    # Report records expire with their files (reportRetentionDays), through TTL...
    assert inputs["ttl"] == {"attributeName": "ttl", "enabled": True}
    # ...but they are the tenants' history, not a cache: recovery stays on.
    assert inputs["pointInTimeRecovery"] == {"enabled": True}


def test_schedules_have_an_index_for_due_schedules(deployment):
    inputs = table(deployment, "report-schedules").inputs
    assert (inputs["hashKey"], inputs["rangeKey"]) == ("customer_id", "schedule_id")
    assert inputs["globalSecondaryIndexes"] == [
        {
            "name": "due-by-next-run",
            "projectionType": "ALL",
            "keySchemas": [
                {"attributeName": "due_shard", "keyType": "HASH"},
                {"attributeName": "next_run", "keyType": "RANGE"},
            ],
        }
    ]
    assert sorted(a["name"] for a in inputs["attributes"]) == [
        "customer_id",
        "due_shard",
        "next_run",
        "schedule_id",
    ]


def test_cache_expires_by_ttl_and_skips_point_in_time_recovery(deployment):
    inputs = table(deployment, "report-cache").inputs
    assert inputs["hashKey"] == "cache_key"
    assert "rangeKey" not in inputs
    assert inputs["ttl"] == {"attributeName": "ttl", "enabled": True}
    assert inputs["pointInTimeRecovery"] == {"enabled": False}


@pytest.mark.parametrize("logical", ["metrics", "reports", "report-schedules"])
def test_durable_tables_have_point_in_time_recovery(deployment, logical):
    assert table(deployment, logical).inputs["pointInTimeRecovery"] == {"enabled": True}


def test_production_tables_are_protected_twice(production):
    for resource in production.of_type(TABLE):
        assert resource.inputs["deletionProtectionEnabled"] is True, resource.name
        assert resource.protect, resource.name


def test_staging_tables_can_be_torn_down(staging):
    for resource in staging.of_type(TABLE):
        assert resource.inputs["deletionProtectionEnabled"] is False, resource.name
        assert not resource.protect, resource.name


def test_staging_buckets_are_emptied_on_destroy_production_buckets_never(deployment):
    # Versioned buckets otherwise fail `pulumi destroy` (and a replacement) with BucketNotEmpty.
    buckets = {
        bucket.name: bucket.inputs.get("forceDestroy") for bucket in deployment.of_type(BUCKET)
    }
    assert sorted(buckets) == [
        "analytics-data-access-logs",
        "analytics-data-reports",
        "phase2-monitor-reports",
    ]
    assert set(buckets.values()) == {deployment.stack == "staging"}


def test_bucket_is_named_per_account_and_protected_in_production(deployment):
    bucket = data_resource(deployment, BUCKET)
    assert bucket.inputs["bucket"] == f"securebase-{deployment.stack}-reports-{ACCOUNT_ID}"
    assert bucket.protect == (deployment.stack == "production")


def test_public_access_is_blocked_with_all_four_flags(deployment):
    block = data_resource(
        deployment, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    ).inputs
    assert {
        k: block[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    } == {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }


def test_acls_are_disabled(deployment):
    controls = data_resource(
        deployment, "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    ).inputs
    assert controls["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_staging_bucket_uses_s3_managed_encryption(staging):
    encryption = data_resource(
        staging,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ).inputs
    assert encryption["rules"] == [
        {
            "applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
            "bucketKeyEnabled": False,
        }
    ]
    assert [
        k for k in staging.of_type("aws:kms/key:Key") if k.name.startswith("analytics-data")
    ] == []


def test_production_bucket_uses_a_rotating_customer_key(production):
    key = production.one("aws:kms/key:Key", lambda r: r.name == "analytics-data-data-key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.protect
    encryption = data_resource(
        production,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ).inputs
    assert encryption["rules"] == [
        {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": key.outputs["arn"],
            },
            "bucketKeyEnabled": True,
        }
    ]


def test_versioning_is_enabled(deployment):
    versioning = data_resource(deployment, "aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}


def expiry_rule(days: int) -> dict:
    """The one lifecycle rule of every bucket: objects after `days`, the rest as fixed."""
    return {
        "id": "expire-objects",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "expiration": {"days": days},
        "noncurrentVersionExpiration": {"noncurrentDays": 30},
        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
    }


def test_lifecycle_expires_reports_old_versions_and_abandoned_uploads(deployment):
    lifecycle = data_resource(
        deployment, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    )
    assert lifecycle.inputs["rules"] == [expiry_rule(90)]
    versioning = data_resource(deployment, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.urn in lifecycle.dependencies


def deny_insecure_transport(bucket_arn: str) -> dict:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def test_bucket_policy_denies_requests_without_tls(deployment):
    policy = data_resource(deployment, "aws:s3/bucketPolicy:BucketPolicy")
    arn = f"arn:aws:s3:::securebase-{deployment.stack}-reports-{ACCOUNT_ID}"
    assert json.loads(policy.inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [deny_insecure_transport(arn)],
    }


def access_log_resource(deployment: Deployment, type_: str):
    return deployment.one(type_, lambda r: r.name.startswith("analytics-data-access-logs"))


def access_log_bucket_name(deployment: Deployment) -> str:
    return f"securebase-{deployment.stack}-access-logs-{ACCOUNT_ID}"


def test_one_access_log_bucket_per_stack_owned_by_the_data_and_protected_in_production(
    deployment,
):
    component = deployment.one("securebase:analytics:AnalyticsData")
    bucket = access_log_resource(deployment, BUCKET)
    assert bucket.inputs["bucket"] == access_log_bucket_name(deployment)
    assert deployment.by_urn(bucket.parent).parent == component.urn
    assert bucket.protect == (deployment.stack == "production")
    assert deployment.outputs["access_log_bucket"] == access_log_bucket_name(deployment)


def test_the_access_log_bucket_has_the_guard_rails_of_every_bucket(deployment):
    block = access_log_resource(
        deployment, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    ).inputs
    assert [block[flag] for flag in PUBLIC_ACCESS_FLAGS] == [True] * 4
    ownership = access_log_resource(
        deployment, "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    )
    assert ownership.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    versioning = access_log_resource(deployment, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}


def test_access_logs_use_s3_managed_encryption_in_every_stack(deployment):
    # S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS.
    encryption = access_log_resource(
        deployment,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    assert encryption.inputs["rules"] == [
        {
            "applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
            "bucketKeyEnabled": False,
        }
    ]


def test_access_logs_expire_with_the_stacks_log_retention(deployment):
    days = {"staging": 14, "production": 30}[deployment.stack]
    lifecycle = access_log_resource(
        deployment, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    )
    assert lifecycle.inputs["rules"] == [expiry_rule(days)]


def test_access_log_retention_follows_config():
    deployment = run_program("staging", {"logRetentionDays": "60"})
    lifecycle = access_log_resource(
        deployment, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    )
    assert lifecycle.inputs["rules"][0]["expiration"] == {"days": 60}


def test_the_access_log_bucket_takes_tls_only_deliveries_from_this_stacks_buckets(deployment):
    policy = access_log_resource(deployment, "aws:s3/bucketPolicy:BucketPolicy")
    arn = f"arn:aws:s3:::{access_log_bucket_name(deployment)}"
    assert json.loads(policy.inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            deny_insecure_transport(arn),
            {
                "Sid": "S3ServerAccessLogsDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{arn}/*",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::securebase-{deployment.stack}-*"},
                },
            },
        ],
    }


@pytest.mark.parametrize(
    ("logging", "bucket"),
    [
        ("analytics-data-reports-access-logging", "reports"),
        ("phase2-monitor-reports-access-logging", "phase2-monitor"),
    ],
)
def test_every_other_bucket_logs_to_it_under_its_own_name(deployment, logging, bucket):
    resource = deployment.named(logging)
    source = f"securebase-{deployment.stack}-{bucket}-{ACCOUNT_ID}"
    assert resource.inputs == {
        "bucket": source,
        "targetBucket": access_log_bucket_name(deployment),
        "targetPrefix": f"{source}/",
    }
    # Deliveries start only once the log bucket's policy lets S3 write there.
    assert access_log_resource(deployment, "aws:s3/bucketPolicy:BucketPolicy").urn in (
        resource.dependencies
    )


def test_the_access_log_bucket_does_not_log_itself(deployment):
    targets = {r.inputs["bucket"] for r in deployment.of_type("aws:s3/bucketLogging:BucketLogging")}
    buckets = {r.inputs["bucket"] for r in deployment.of_type(BUCKET)}
    assert buckets - targets == {access_log_bucket_name(deployment)}


class _StandInLogBucket:
    """Where a SecureBucket's args expect the stack's log bucket."""


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "needs an access_log_bucket"),
        (
            {"access_log_bucket": _StandInLogBucket(), "log_delivery": LogDelivery("1", "x-*")},
            "must not log its own access",
        ),
        (
            {
                "kms_key_arn": "arn:aws:kms:us-east-1:1:key/k",
                "log_delivery": LogDelivery("1", "x-*"),
            },
            "must use SSE-S3",
        ),
    ],
)
def test_bucket_args_refuse_logging_that_s3_would_never_deliver(arguments, problem):
    with pytest.raises(ValueError, match=problem):
        SecureBucketArgs(
            **{"bucket_name": "b", "expiration_days": 1, "access_log_bucket": None, **arguments}
        )


def test_every_aws_resource_goes_through_the_tagged_provider(deployment):
    provider = deployment.one("pulumi:providers:aws")
    # Providers receive nested config JSON-encoded, as the engine sends it.
    assert json.loads(provider.inputs["defaultTags"]) == {
        "tags": {
            "Project": "securebase-analytics",
            "Environment": deployment.stack,
            "Owner": "platform-team@securebase.example.com",
            "CostCenter": "CC-4127-analytics",
        }
    }
    assert provider.inputs["region"] == "us-east-1"
    for resource in deployment.resources:
        if resource.custom and resource.type.startswith("aws:"):
            assert resource.provider.startswith(provider.urn), resource.name


def test_outputs_name_the_tables_and_bucket(deployment):
    env = deployment.stack
    assert deployment.outputs["table_names"] == {
        "metrics": f"securebase-{env}-metrics",
        "reports": f"securebase-{env}-reports",
        "report-schedules": f"securebase-{env}-report-schedules",
        "report-cache": f"securebase-{env}-report-cache",
        "report-emails": f"securebase-{env}-report-emails",
    }
    assert (
        deployment.outputs["table_arns"]["metrics"]
        == f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/securebase-{env}-metrics"
    )
    assert deployment.outputs["reports_bucket"] == f"securebase-{env}-reports-{ACCOUNT_ID}"


def _normalised(deployment: Deployment) -> dict[str, dict]:
    def scrub(value):
        if isinstance(value, str):
            return value.replace(deployment.stack, "{env}")
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value

    return {
        f"{r.type}::{r.name}": {"inputs": scrub(r.inputs), "protect": r.protect}
        for r in deployment.resources
    }


def test_production_differs_from_staging_only_where_intended(staging, production):
    ours = ("securebase:analytics:AnalyticsData", "securebase:analytics:SecureBucket")

    def in_data(deployment):
        return {
            k: v
            for k, v in _normalised(deployment).items()
            if (k.startswith("aws:") or k.split("::")[0] in ours)
            and k.split("::")[1].startswith("analytics-data")
        }

    stage, prod = in_data(staging), in_data(production)

    assert set(prod) - set(stage) == {
        "aws:kms/key:Key::analytics-data-data-key",
        "aws:kms/alias:Alias::analytics-data-data-key-alias",
    }
    assert set(stage) - set(prod) == set()

    differences = set()
    for key in stage:
        for field in ("protect",):
            if stage[key][field] != prod[key][field]:
                differences.add((key, field))
        for name in set(stage[key]["inputs"]) | set(prod[key]["inputs"]):
            if stage[key]["inputs"].get(name) != prod[key]["inputs"].get(name):
                differences.add((key, name))
    tables = [
        f"aws:dynamodb/table:Table::analytics-data-{t}"
        for t in ("metrics", "reports", "report-schedules", "report-cache", "report-emails")
    ]

    def bucket_parts(bucket: str, policy: str) -> list[str]:
        return [
            f"aws:s3/bucket:Bucket::{bucket}",
            f"aws:s3/bucketOwnershipControls:BucketOwnershipControls::{bucket}-ownership",
            f"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock::{bucket}-public-access-block",
            f"aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration::{bucket}-encryption",
            f"aws:s3/bucketVersioning:BucketVersioning::{bucket}-versioning",
            f"aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration::{bucket}-lifecycle",
            f"aws:s3/bucketPolicy:BucketPolicy::{bucket}-{policy}",
            f"securebase:analytics:SecureBucket::{bucket}",
        ]

    reports = [
        *bucket_parts("analytics-data-reports", "tls-only"),
        "aws:s3/bucketLogging:BucketLogging::analytics-data-reports-access-logging",
    ]
    access_logs = bucket_parts("analytics-data-access-logs", "tls-only-and-log-delivery")
    assert differences == (
        {(t, "deletionProtectionEnabled") for t in tables}
        | {(t, "protect") for t in tables}
        | {(part, "protect") for part in (*reports, *access_logs)}
        # Staging buckets are emptied on destroy.
        | {(reports[0], "forceDestroy"), (access_logs[0], "forceDestroy")}
        # Production reports use the data key.
        | {(reports[3], "rules")}
        # Access logs are kept as long as the stack's logs (14 days in staging, 30 in production).
        | {(access_logs[5], "rules")}
    )


@mock_aws
def test_the_emulator_builds_the_same_tables_as_pulumi(production):
    client = boto3.client("dynamodb", region_name="us-east-1")
    names = create_tables(client, "production")
    assert names == {spec.name: f"securebase-production-{spec.name}" for spec in ALL_TABLES}
    for spec in ALL_TABLES:
        described = client.describe_table(TableName=names[spec.name])["Table"]
        inputs = table(production, spec.name).inputs
        keys = {k["KeyType"]: k["AttributeName"] for k in described["KeySchema"]}
        assert keys.get("HASH") == inputs["hashKey"]
        assert keys.get("RANGE") == inputs.get("rangeKey")
        assert sorted(
            (a["AttributeName"], a["AttributeType"]) for a in described["AttributeDefinitions"]
        ) == sorted((a["name"], a["type"]) for a in inputs["attributes"])
        emulated_indexes = {
            i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
            for i in described.get("GlobalSecondaryIndexes", [])
        }
        pulumi_indexes = {
            i["name"]: [k["attributeName"] for k in i["keySchemas"]]
            for i in inputs.get("globalSecondaryIndexes", [])
        }
        assert emulated_indexes == pulumi_indexes
        ttl = client.describe_time_to_live(TableName=names[spec.name])["TimeToLiveDescription"]
        if "ttl" in inputs:
            assert ttl == {
                "TimeToLiveStatus": "ENABLED",
                "AttributeName": inputs["ttl"]["attributeName"],
            }
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_create_table_request_is_on_demand():
    for spec in ALL_TABLES:
        assert create_table_request(spec, "t")["BillingMode"] == "PAY_PER_REQUEST"
