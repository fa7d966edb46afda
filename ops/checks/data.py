"""Tables and buckets: the data the stack must keep and keep private, and who read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from components import bucket_rules
from handlers.shared.tables import TableSpec
from ops.checks.aws import AwsView
from ops.checks.base import Check, Lazy, Outcome, failed, passed, verdict
from ops.checks.expectations import Expectations
from ops.checks.outputs import StackOutputs


def table_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    checks = []
    for spec in expect.tables:
        name = partial(outputs.entry, "table_names", spec.name)
        label = f"table {spec.name}"
        checks += [
            Check("table", f"{label}: active, on-demand", partial(_active, aws, name)),
            Check("table", f"{label}: keys and indexes", partial(_keys, aws, name, spec)),
            Check("table", f"{label}: encrypted with KMS", partial(_encrypted, aws, name)),
        ]
        if spec.ttl_attribute:
            checks.append(
                Check(
                    "table",
                    f"{label}: TTL on {spec.ttl_attribute!r}",
                    partial(_ttl, aws, name, spec),
                )
            )
        if not spec.is_cache:
            checks.append(
                Check("table", f"{label}: point-in-time recovery", partial(_pitr, aws, name))
            )
        if expect.is_production:
            checks.append(
                Check(
                    "table",
                    f"{label}: deletion protection",
                    partial(_deletion_protected, aws, name),
                )
            )
    return checks


def _active(aws: AwsView, name: Lazy) -> Outcome:
    table = aws.table(name())
    status = table["TableStatus"]
    billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    problems = []
    if status != "ACTIVE":
        problems.append(f"status {status}, expected ACTIVE")
    if billing != "PAY_PER_REQUEST":
        problems.append(f"billing mode {billing}, expected PAY_PER_REQUEST")
    return verdict(problems, f"{table['TableName']} ACTIVE, PAY_PER_REQUEST")


def _key_schema(hash_key: str, range_key: str | None) -> list[tuple[str, str]]:
    return [(hash_key, "HASH"), *([(range_key, "RANGE")] if range_key else [])]


def _keys(aws: AwsView, name: Lazy, spec: TableSpec) -> Outcome:
    table = aws.table(name())
    problems = []
    actual = [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]]
    expected = _key_schema(spec.hash_key, spec.range_key)
    if actual != expected:
        problems.append(f"key schema {actual}, expected {expected}")
    indexes = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
    for index in spec.indexes:
        found = indexes.get(index.name)
        if found is None:
            problems.append(f"index {index.name} is missing")
            continue
        keys = [(k["AttributeName"], k["KeyType"]) for k in found["KeySchema"]]
        if keys != _key_schema(index.hash_key, index.range_key):
            problems.append(f"index {index.name} keys {keys}")
        if found.get("IndexStatus") != "ACTIVE":
            problems.append(f"index {index.name} is {found.get('IndexStatus')}")
    extra = sorted(set(indexes) - {index.name for index in spec.indexes})
    if extra:
        problems.append(f"unexpected indexes {extra}")
    described = ", ".join(f"{key}({kind})" for key, kind in expected)
    index_names = ", ".join(index.name for index in spec.indexes) or "no indexes"
    return verdict(problems, f"{described}; {index_names}")


def _encrypted(aws: AwsView, name: Lazy) -> Outcome:
    sse = aws.table(name()).get("SSEDescription") or {}
    if sse.get("Status") == "ENABLED":
        return passed(
            f"SSE {sse.get('SSEType', 'KMS')} ({sse.get('KMSMasterKeyArn', 'AWS managed key')})"
        )
    return failed(
        f"server-side encryption with KMS is not enabled (SSEDescription {sse or 'absent'})"
    )


def _ttl(aws: AwsView, name: Lazy, spec: TableSpec) -> Outcome:
    ttl = aws.time_to_live(name())
    status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
    if status == "ENABLED" and attribute == spec.ttl_attribute:
        return passed(f"ENABLED on {attribute!r}")
    return failed(f"TTL {status} on {attribute!r}, expected ENABLED on {spec.ttl_attribute!r}")


def _pitr(aws: AwsView, name: Lazy) -> Outcome:
    backups = aws.continuous_backups(name())
    status = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    if status == "ENABLED":
        return passed("ENABLED")
    return failed(f"point-in-time recovery is {status}, expected ENABLED")


def _deletion_protected(aws: AwsView, name: Lazy) -> Outcome:
    if aws.table(name()).get("DeletionProtectionEnabled"):
        return passed("enabled")
    return failed("deletion protection is off in production")


@dataclass(frozen=True)
class ExpectedBucket:
    label: str
    output: str  # the stack output naming the bucket
    expiration_days: int | None  # None: any expiry is accepted
    # The log bucket: receives every other bucket's server access logs.
    receives_access_logs: bool = False


def expected_buckets(expect: Expectations) -> tuple[ExpectedBucket, ...]:
    settings = expect.settings
    return (
        ExpectedBucket("reports", "reports_bucket", settings.report_retention_days),
        # The monitor bucket's expiry is the Phase2Monitor's choice; any is accepted.
        ExpectedBucket("monitor", "monitor_bucket", None),
        ExpectedBucket(
            "access-logs",
            "access_log_bucket",
            settings.log_retention_days,
            receives_access_logs=True,
        ),
    )


def bucket_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    """Every bucket carries the SecureBucket rules and logs its access to the log bucket."""
    checks = []
    s3 = aws.client("s3")

    def log_bucket() -> str:
        return outputs.text("access_log_bucket")

    for bucket in expected_buckets(expect):
        name = partial(outputs.text, bucket.output)
        prefix = f"bucket {bucket.label}"
        if bucket.receives_access_logs:
            encryption = Check("bucket", f"{prefix}: SSE-S3 encryption", partial(_sse_s3, s3, name))
        else:
            encryption = Check(
                "bucket", f"{prefix}: default encryption", partial(_encryption, s3, name, expect)
            )
        checks += [
            encryption,
            Check("bucket", f"{prefix}: public access blocked", partial(_public_access, s3, name)),
            Check("bucket", f"{prefix}: ACLs disabled", partial(_ownership, s3, name)),
            Check("bucket", f"{prefix}: versioning", partial(_versioning, s3, name)),
            Check(
                "bucket",
                f"{prefix}: lifecycle rules",
                partial(_lifecycle, s3, name, bucket.expiration_days),
            ),
            Check("bucket", f"{prefix}: TLS-only policy", partial(_tls_only, s3, name)),
        ]
        if bucket.receives_access_logs:
            checks += [
                Check(
                    "bucket",
                    f"{prefix}: S3 log delivery allowed for this account",
                    partial(_log_delivery_allowed, aws, name),
                ),
                Check(
                    "bucket",
                    f"{prefix}: does not log its own access",
                    partial(_not_logged, s3, name),
                ),
            ]
        else:
            checks.append(
                Check(
                    "bucket",
                    f"{prefix}: access logs to the log bucket",
                    partial(_logs_to, s3, name, log_bucket),
                )
            )
            if expect.is_production:
                checks.append(
                    Check(
                        "bucket", f"{prefix}: KMS key rotation", partial(_key_rotation, aws, name)
                    )
                )
    return checks


def _default_encryption(s3: Any, bucket: str) -> dict[str, Any]:
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    return rules[0]


def _encryption(s3: Any, name: Lazy, expect: Expectations) -> Outcome:
    rule = _default_encryption(s3, name())
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    algorithm = default.get("SSEAlgorithm")
    if expect.is_production:
        # Production reports are encrypted with the stack's rotating customer managed key.
        problems = []
        if algorithm != "aws:kms" or not default.get("KMSMasterKeyID"):
            problems.append(f"{algorithm} without a customer managed key, expected aws:kms")
        if not rule.get("BucketKeyEnabled"):
            problems.append("S3 bucket key is off (every object costs a KMS request)")
        return verdict(problems, f"aws:kms with {default.get('KMSMasterKeyID')}, bucket key on")
    if algorithm in ("AES256", "aws:kms"):
        return passed(algorithm)
    return failed(f"default encryption {algorithm}, expected AES256 or aws:kms")


def _sse_s3(s3: Any, name: Lazy) -> Outcome:
    algorithm = _default_encryption(s3, name()).get("ApplyServerSideEncryptionByDefault", {})
    algorithm = algorithm.get("SSEAlgorithm")
    if algorithm == bucket_rules.ACCESS_LOG_ENCRYPTION:
        return passed(algorithm)
    # S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS.
    return failed(
        f"default encryption {algorithm}: S3 delivers access logs only to "
        f"{bucket_rules.ACCESS_LOG_ENCRYPTION} (SSE-S3) buckets"
    )


def _public_access(s3: Any, name: Lazy) -> Outcome:
    config = s3.get_public_access_block(Bucket=name())["PublicAccessBlockConfiguration"]
    off = [
        flag
        for flag, wanted in bucket_rules.PUBLIC_ACCESS_BLOCK.items()
        if config.get(flag) != wanted
    ]
    if off:
        return failed(f"not blocked: {', '.join(off)}")
    return passed("all four public access block flags on")


def _ownership(s3: Any, name: Lazy) -> Outcome:
    rules = s3.get_bucket_ownership_controls(Bucket=name())["OwnershipControls"]["Rules"]
    ownership = rules[0].get("ObjectOwnership") if rules else None
    if ownership == bucket_rules.OBJECT_OWNERSHIP:
        return passed(ownership)
    return failed(f"object ownership {ownership}, expected {bucket_rules.OBJECT_OWNERSHIP}")


def _versioning(s3: Any, name: Lazy) -> Outcome:
    status = s3.get_bucket_versioning(Bucket=name()).get("Status", "never enabled")
    return (
        passed(status) if status == "Enabled" else failed(f"versioning {status}, expected Enabled")
    )


def _lifecycle(s3: Any, name: Lazy, expiration_days: int | None) -> Outcome:
    rules = s3.get_bucket_lifecycle_configuration(Bucket=name())["Rules"]
    enabled = [rule for rule in rules if rule.get("Status") == "Enabled"]
    expected = bucket_rules.lifecycle_rule(expiration_days or 0)
    problems = []
    expiry = [
        rule["Expiration"]["Days"] for rule in enabled if "Days" in rule.get("Expiration", {})
    ]
    if not expiry:
        problems.append("no rule expires objects")
    elif expiration_days is not None and expiration_days not in expiry:
        problems.append(f"objects expire after {expiry} days, expected {expiration_days}")
    for action, field in (
        ("NoncurrentVersionExpiration", "NoncurrentDays"),
        ("AbortIncompleteMultipartUpload", "DaysAfterInitiation"),
    ):
        wanted = expected[action][field]
        if not any(rule.get(action, {}).get(field) == wanted for rule in enabled):
            problems.append(f"no rule with {action} {field}={wanted}")
    noncurrent = expected["NoncurrentVersionExpiration"]["NoncurrentDays"]
    uploads = expected["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    return verdict(
        problems,
        f"objects {expiry[0] if expiry else '?'} d, old versions {noncurrent} d, "
        f"incomplete uploads {uploads} d",
    )


def _tls_only(s3: Any, name: Lazy) -> Outcome:
    bucket = name()
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    bucket_arn = f"arn:aws:s3:::{bucket}"
    for statement in _statements(policy):
        condition = statement.get("Condition", {}).get("Bool", {})
        resources = _as_list(statement.get("Resource"))
        if (
            statement.get("Effect") == "Deny"
            and statement.get("Principal") in ("*", {"AWS": "*"})
            and "s3:*" in _as_list(statement.get("Action"))
            and str(condition.get("aws:SecureTransport")).lower() == "false"
            and {bucket_arn, f"{bucket_arn}/*"} <= set(resources)
        ):
            return passed("denies every request without TLS")
    return failed(
        "no statement denies s3:* on the bucket and its objects when aws:SecureTransport is false"
    )


def _logging(s3: Any, bucket: str) -> dict[str, Any]:
    return s3.get_bucket_logging(Bucket=bucket).get("LoggingEnabled") or {}


def _logs_to(s3: Any, name: Lazy, log_bucket: Lazy) -> Outcome:
    bucket = name()
    logging = _logging(s3, bucket)
    if not logging:
        return failed("server access logging is off")
    wanted = (log_bucket(), bucket_rules.access_log_prefix(bucket))
    found = (logging.get("TargetBucket"), logging.get("TargetPrefix"))
    if found != wanted:
        return failed(f"logs to {found[0]}/{found[1]}, expected {wanted[0]}/{wanted[1]}")
    return passed(f"to {wanted[0]}/{wanted[1]}")


def _not_logged(s3: Any, name: Lazy) -> Outcome:
    target = _logging(s3, name()).get("TargetBucket")
    if target is None:
        return passed("no access logging of its own")
    return failed(f"logs its own access to {target}: a log bucket must not (it loops on itself)")


def _log_delivery_allowed(aws: AwsView, name: Lazy) -> Outcome:
    """ACLs are disabled, so only the bucket policy can let S3 log delivery write."""
    bucket = name()
    account = aws.account_id()
    policy = json.loads(aws.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])
    for statement in _statements(policy):
        conditions = statement.get("Condition", {})
        source_account = conditions.get("StringEquals", {}).get("aws:SourceAccount")
        if (
            statement.get("Effect") == "Allow"
            and statement.get("Principal") == {"Service": bucket_rules.LOG_DELIVERY_SERVICE}
            and "s3:PutObject" in _as_list(statement.get("Action"))
            and f"arn:aws:s3:::{bucket}/*" in _as_list(statement.get("Resource"))
            and source_account == account
        ):
            return passed(f"{bucket_rules.LOG_DELIVERY_SERVICE} may put objects for {account}")
    return failed(
        f"no statement lets {bucket_rules.LOG_DELIVERY_SERVICE} s3:PutObject into the bucket "
        "with aws:SourceAccount of this account: access logs are not delivered"
    )


def _key_rotation(aws: AwsView, name: Lazy) -> Outcome:
    default = _default_encryption(aws.client("s3"), name()).get(
        "ApplyServerSideEncryptionByDefault", {}
    )
    key = default.get("KMSMasterKeyID")
    if not key:
        return failed("the bucket has no customer managed key")
    if aws.key_rotation_enabled(key):
        return passed(f"automatic rotation on for {key}")
    return failed(f"automatic rotation is off for {key}")


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return _as_list(policy.get("Statement"))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
