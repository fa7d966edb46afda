"""S3 stack rules (settings joined to their bucket) and resource-policy rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components import bucket_rules
from policies.rules import ALL_POLICIES
from tests.test_policies_harness import UNKNOWN, Spec, check_resource, check_stack

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
BUCKET_NAME = "securebase-production-reports-123456789012"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET_NAME}"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0b1c"
S3 = "aws:s3/"


def tls_policy(arn: str = BUCKET_ARN) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def secure_bucket(bucket: str = BUCKET_NAME, name: str = "reports") -> list[Spec]:
    """What components.secure_bucket.SecureBucket creates, as the engine reports it."""
    ref = {"bucket": bucket}
    deps = [name]
    return [
        Spec(f"{S3}bucket:Bucket", name, {"bucket": bucket}, protect=True),
        Spec(
            f"{S3}bucketOwnershipControls:BucketOwnershipControls",
            f"{name}-ownership",
            {**ref, "rule": {"objectOwnership": "BucketOwnerEnforced"}},
            depends_on=deps,
        ),
        Spec(
            f"{S3}bucketPublicAccessBlock:BucketPublicAccessBlock",
            f"{name}-public-access-block",
            {
                **ref,
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            depends_on=deps,
        ),
        Spec(
            f"{S3}bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{name}-encryption",
            {
                **ref,
                "rules": [
                    {
                        "applyServerSideEncryptionByDefault": {
                            "sseAlgorithm": "aws:kms",
                            "kmsMasterKeyId": KEY_ARN,
                        },
                        "bucketKeyEnabled": True,
                    }
                ],
            },
            depends_on=deps,
        ),
        Spec(
            f"{S3}bucketVersioning:BucketVersioning",
            f"{name}-versioning",
            {**ref, "versioningConfiguration": {"status": "Enabled"}},
            depends_on=deps,
        ),
        Spec(
            f"{S3}bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            f"{name}-lifecycle",
            {
                **ref,
                "rules": [
                    {
                        "id": "expire-objects",
                        "status": "Enabled",
                        "filter": {"prefix": ""},
                        "expiration": {"days": 90},
                        "noncurrentVersionExpiration": {"noncurrentDays": 30},
                        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
                    }
                ],
            },
            depends_on=deps,
        ),
        Spec(
            f"{S3}bucketPolicy:BucketPolicy",
            f"{name}-tls-only",
            {**ref, "policy": tls_policy(f"arn:aws:s3:::{bucket}")},
            depends_on=deps,
        ),
    ]


BUCKET_RULES = [
    "s3-bucket-public-access-block",
    "s3-bucket-encryption",
    "s3-bucket-kms-encryption",
    "s3-bucket-tls-only",
    "s3-bucket-versioning",
    "s3-bucket-acls-disabled",
    "s3-bucket-lifecycle",
]


def check(name: str, specs: list[Spec], config: dict | None = None) -> list[tuple[str, str]]:
    return check_stack(POLICIES[name], specs, config)


def without(specs: list[Spec], suffix: str) -> list[Spec]:
    return [spec for spec in specs if not spec.name.endswith(suffix)]


def changed(specs: list[Spec], suffix: str, **props) -> list[Spec]:
    return [
        Spec(s.type, s.name, {**s.props, **props}, s.protect, s.depends_on)
        if s.name.endswith(suffix)
        else s
        for s in specs
    ]


@pytest.mark.parametrize("rule", BUCKET_RULES)
def test_a_secure_bucket_passes_every_bucket_rule(rule):
    assert check(rule, secure_bucket()) == []


@pytest.mark.parametrize(
    ("rule", "suffix", "problem"),
    [
        ("s3-bucket-public-access-block", "-public-access-block", "it has no public access block"),
        ("s3-bucket-encryption", "-encryption", "it has no default encryption configuration"),
        ("s3-bucket-tls-only", "-tls-only", "it has no bucket policy"),
        ("s3-bucket-versioning", "-versioning", "versioning is not configured"),
        ("s3-bucket-acls-disabled", "-ownership", "ACLs are not disabled"),
        ("s3-bucket-lifecycle", "-lifecycle", "it has no lifecycle configuration"),
    ],
)
def test_a_bucket_missing_a_setting_is_reported_on_the_bucket(rule, suffix, problem):
    [(name, message)] = check(rule, without(secure_bucket(), suffix))
    assert name == "reports"
    assert message.startswith(f"aws:s3/bucket:Bucket 'reports': {problem}")
    assert ". Fix: add an aws.s3." in message


def test_each_bucket_needs_its_own_settings():
    specs = [
        *secure_bucket(),
        *without(
            secure_bucket("securebase-production-phase2-monitor", "monitor"), "-public-access-block"
        ),
    ]
    assert check("s3-bucket-public-access-block", specs) == [
        (
            "monitor",
            "aws:s3/bucket:Bucket 'monitor': it has no public access block. Fix: add an "
            "aws.s3.BucketPublicAccessBlock with all four flags True",
        )
    ]


@pytest.mark.parametrize(
    "flag", ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]
)
def test_every_public_access_flag_must_be_on(flag):
    [(name, message)] = check(
        "s3-bucket-public-access-block",
        changed(secure_bucket(), "-public-access-block", **{flag: False}),
    )
    assert name == "reports-public-access-block"
    assert f"leaves ['{flag}'] off" in message


def test_settings_are_joined_through_dependencies_when_the_bucket_id_is_unknown():
    specs = [
        Spec(s.type, s.name, {**s.props, "bucket": UNKNOWN}, s.protect, s.depends_on)
        if s.name != "reports"
        else s
        for s in secure_bucket()
    ]
    for rule in BUCKET_RULES:
        assert check(rule, specs) == [], rule
    broken = changed(specs, "-versioning", versioningConfiguration={"status": "Suspended"})
    assert [n for n, _ in check("s3-bucket-versioning", broken)] == ["reports-versioning"]


def test_a_bucket_is_not_called_unprotected_while_a_setting_cannot_be_placed():
    # During preview a setting whose bucket is unknown and has no dependency
    # information may belong to this bucket: no verdict.
    specs = [
        Spec(s.type, s.name, {**s.props, "bucket": UNKNOWN})
        if s.name.endswith("-versioning")
        else s
        for s in secure_bucket()
    ]
    assert check("s3-bucket-versioning", specs) == []


def test_sse_s3_passes_encryption_but_not_the_kms_rule():
    aes = [
        {
            "applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
            "bucketKeyEnabled": False,
        }
    ]
    specs = changed(secure_bucket(), "-encryption", rules=aes)
    assert check("s3-bucket-encryption", specs) == []
    [(name, message)] = check("s3-bucket-kms-encryption", specs)
    assert name == "reports-encryption"
    assert "bucket 'reports' is not encrypted with a customer managed KMS key" in message


def test_a_kms_key_unknown_during_preview_still_counts_as_kms():
    rules = [
        {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": UNKNOWN,
            }
        }
    ]
    assert (
        check("s3-bucket-kms-encryption", changed(secure_bucket(), "-encryption", rules=rules))
        == []
    )


def test_a_bucket_policy_without_the_tls_deny_is_reported():
    allow_only = json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "s3:GetObject", "Resource": f"{BUCKET_ARN}/*"}]}
    )  # fmt: skip
    [(name, message)] = check(
        "s3-bucket-tls-only", changed(secure_bucket(), "-tls-only", policy=allow_only)
    )
    assert name == "reports-tls-only"
    assert "does not deny requests made without TLS" in message
    assert check("s3-bucket-tls-only", changed(secure_bucket(), "-tls-only", policy=UNKNOWN)) == []


def test_acls_set_on_the_bucket_or_as_a_resource_are_reported():
    specs = changed(secure_bucket(), "reports", acl="public-read")
    specs.append(Spec(f"{S3}bucketAcl:BucketAcl", "acl", {"bucket": BUCKET_NAME, "acl": "private"}))
    assert sorted(n for n, _ in check("s3-bucket-acls-disabled", specs)) == ["acl", "reports"]
    owner_preferred = changed(
        secure_bucket(), "-ownership", rule={"objectOwnership": "BucketOwnerPreferred"}
    )
    assert [n for n, _ in check("s3-bucket-acls-disabled", owner_preferred)] == [
        "reports-ownership"
    ]


def lifecycle_rule(**overrides) -> dict:
    rule = {
        "id": "expire-objects",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "expiration": {"days": 90},
        "noncurrentVersionExpiration": {"noncurrentDays": 30},
        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
    }
    return {**rule, **overrides}


@given(days=st.integers(min_value=1, max_value=400), limit=st.integers(min_value=1, max_value=400))
def test_objects_must_expire_within_the_configured_maximum(days, limit):
    specs = changed(
        secure_bucket(), "-lifecycle", rules=[lifecycle_rule(expiration={"days": days})]
    )
    found = check("s3-bucket-lifecycle", specs, {"maxExpirationDays": limit})
    assert (found == []) == (days <= limit)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"noncurrentVersionExpiration": None}, "old versions expire within 30 days"),
        ({"abortIncompleteMultipartUpload": {"daysAfterInitiation": 30}}, "incomplete multipart uploads are aborted within 7 days"),
        ({"status": "Disabled"}, "objects expire within 90 days"),
        ({"filter": {"prefix": "reports/"}}, "objects expire within 90 days"),
    ],
)  # fmt: skip
def test_lifecycle_needs_every_expiry_on_an_enabled_whole_bucket_rule(overrides, problem):
    specs = changed(secure_bucket(), "-lifecycle", rules=[lifecycle_rule(**overrides)])
    messages = [m for _, m in check("s3-bucket-lifecycle", specs)]
    assert any(problem in m for m in messages), messages


def test_lifecycle_rules_unknown_during_preview_are_not_judged():
    assert check("s3-bucket-lifecycle", changed(secure_bucket(), "-lifecycle", rules=UNKNOWN)) == []


# --- access logging ----------------------------------------------------------------------

LOG_BUCKET_NAME = "securebase-production-access-logs-123456789012"
ACCOUNT_ID = "123456789012"
SSE_S3 = [
    {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}, "bucketKeyEnabled": False}
]


def log_bucket(name: str = "logs", bucket: str = LOG_BUCKET_NAME) -> list[Spec]:
    """The stack's log bucket as SecureBucket builds it: SSE-S3, log delivery allowed."""
    policy = bucket_rules.access_log_bucket_policy(
        f"arn:aws:s3:::{bucket}", ACCOUNT_ID, "securebase-production-*"
    )
    specs = changed(secure_bucket(bucket, name), "-encryption", rules=SSE_S3)
    return changed(specs, "-tls-only", policy=policy)


def logging_to(source: str, target: str = LOG_BUCKET_NAME, name: str = "reports-logging") -> Spec:
    return Spec(
        f"{S3}bucketLogging:BucketLogging",
        name,
        {"bucket": source, "targetBucket": target, "targetPrefix": f"{source}/"},
    )


def logged_stack() -> list[Spec]:
    return [*secure_bucket(), *log_bucket(), logging_to(BUCKET_NAME)]


def test_every_bucket_logs_to_a_log_bucket_that_can_receive_the_logs():
    assert check("s3-bucket-access-logging", logged_stack()) == []
    [(name, message)] = check("s3-bucket-access-logging", secure_bucket())
    assert name == "reports"
    assert "server access logging is off" in message


def test_the_log_bucket_is_known_by_the_logging_that_targets_it_not_by_its_name():
    # Named like a log bucket, but nothing logs to it: it must log like any other.
    specs = [*secure_bucket(), *log_bucket(), logging_to(BUCKET_NAME, target="elsewhere")]
    assert [n for n, _ in check("s3-bucket-access-logging", specs)] == ["logs"]


@pytest.mark.parametrize("rule", BUCKET_RULES)
def test_the_log_bucket_passes_every_bucket_rule(rule):
    # Its SSE-S3 passes the KMS rule only because it receives access logs.
    assert check(rule, logged_stack()) == []


def test_an_sse_s3_bucket_that_receives_no_logs_still_needs_a_kms_key():
    specs = [*secure_bucket(), *log_bucket()]
    assert [n for n, _ in check("s3-bucket-kms-encryption", specs)] == ["logs-encryption"]


def test_a_log_bucket_encrypted_with_kms_cannot_receive_access_logs():
    kms = [
        {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": KEY_ARN,
            }
        }
    ]
    log_bucket_with_kms = changed(log_bucket(), "-encryption", rules=kms)
    specs = [*secure_bucket(), *log_bucket_with_kms, logging_to(BUCKET_NAME)]
    [(name, message)] = check("s3-bucket-access-logging", specs)
    assert name == "logs-encryption"
    assert (
        "S3 cannot deliver access logs to a bucket whose default encryption is SSE-KMS" in message
    )


def _delivery_policy(**overrides) -> str:
    document = json.loads(
        bucket_rules.access_log_bucket_policy(
            f"arn:aws:s3:::{LOG_BUCKET_NAME}", ACCOUNT_ID, "securebase-production-*"
        )
    )
    delivery = document["Statement"][1]
    document["Statement"][1] = {k: v for k, v in {**delivery, **overrides}.items() if v is not None}
    return json.dumps(document)


@pytest.mark.parametrize(
    "policy",
    [
        tls_policy(f"arn:aws:s3:::{LOG_BUCKET_NAME}"),
        _delivery_policy(Condition=None),
        _delivery_policy(Action="s3:GetObject"),
        _delivery_policy(Principal={"Service": "cloudtrail.amazonaws.com"}),
    ],
    ids=["tls-only", "no-source-condition", "other-action", "other-service"],
)
def test_a_log_bucket_policy_must_let_s3_log_delivery_in_for_this_account_only(policy):
    log_bucket_with_policy = changed(log_bucket(), "-tls-only", policy=policy)
    specs = [*secure_bucket(), *log_bucket_with_policy, logging_to(BUCKET_NAME)]
    [(name, message)] = check("s3-bucket-access-logging", specs)
    assert name == "logs-tls-only"
    assert "does not let logging.s3.amazonaws.com put the access logs it receives" in message


def test_a_log_bucket_without_a_policy_is_reported_on_the_bucket():
    specs = [*secure_bucket(), *without(log_bucket(), "-tls-only"), logging_to(BUCKET_NAME)]
    [(name, message)] = check("s3-bucket-access-logging", specs)
    assert name == "logs"
    assert "has no bucket policy letting S3 log delivery write them" in message


def test_a_log_bucket_that_logs_to_itself_is_reported_on_its_logging():
    specs = [*logged_stack(), logging_to(LOG_BUCKET_NAME, name="logs-logging")]
    [(name, message)] = check("s3-bucket-access-logging", specs)
    assert name == "logs-logging"
    assert "sends its access logs to itself" in message


def test_a_log_target_unknown_during_preview_is_found_through_its_dependency():
    unknown_target = Spec(
        f"{S3}bucketLogging:BucketLogging",
        "reports-logging",
        {"bucket": BUCKET_NAME, "targetBucket": UNKNOWN, "targetPrefix": UNKNOWN},
        depends_on=["reports"],
        property_dependencies={"targetBucket": ["logs"]},
    )
    specs = [*secure_bucket(), *log_bucket(), unknown_target]
    assert check("s3-bucket-access-logging", specs) == []
    assert check("s3-bucket-kms-encryption", specs) == []
    # Still judged as the log bucket it is.
    broken = [*secure_bucket(), *without(log_bucket(), "-tls-only"), unknown_target]
    assert [n for n, _ in check("s3-bucket-access-logging", broken)] == ["logs"]


def test_while_a_log_target_cannot_be_placed_no_bucket_is_judged():
    unplaced = logging_to(BUCKET_NAME, target=UNKNOWN)
    specs = [*secure_bucket(), *log_bucket(), unplaced]
    assert check("s3-bucket-access-logging", specs) == []
    assert check("s3-bucket-kms-encryption", specs) == []


def test_the_log_bucket_policy_is_least_privilege():
    assert check_policy("aws:s3/bucketPolicy:BucketPolicy", _delivery_policy()) == []


# --- resource-policy-least-privilege ----------------------------------------------------


def check_policy(resource_type: str, policy: object) -> list[str]:
    return check_resource(
        POLICIES["resource-policy-least-privilege"], resource_type, {"policy": policy}
    )


def statement(**fields) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [fields]})


def test_the_tls_only_bucket_policy_is_least_privilege():
    assert check_policy("aws:s3/bucketPolicy:BucketPolicy", tls_policy()) == []


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}])
def test_allowing_everyone_is_a_violation(principal):
    [message] = check_policy(
        "aws:s3/bucketPolicy:BucketPolicy",
        statement(
            Effect="Allow", Principal=principal, Action="s3:GetObject", Resource=f"{BUCKET_ARN}/*"
        ),
    )
    assert "its policy allows ['s3:GetObject'] to everyone" in message


def test_everyone_narrowed_to_a_source_is_fine():
    policy = statement(
        Effect="Allow",
        Principal="*",
        Action="sns:Publish",
        Resource="arn:aws:sns:us-east-1:123456789012:alerts",
        Condition={"StringEquals": {"aws:SourceAccount": "123456789012"}},
    )
    assert check_policy("aws:sns/topicPolicy:TopicPolicy", policy) == []


def test_an_unconditional_deny_for_everyone_locks_everyone_out():
    [message] = check_policy(
        "aws:s3/bucketPolicy:BucketPolicy",
        statement(Effect="Deny", Principal="*", Action="s3:*", Resource=BUCKET_ARN),
    )
    assert "only the root user can undo it" in message


def test_queue_policies_name_their_actions():
    [message] = check_policy(
        "aws:sqs/queuePolicy:QueuePolicy",
        statement(
            Effect="Allow",
            Principal={"Service": "events.amazonaws.com"},
            Action="sqs:*",
            Resource="*",
        ),
    )
    assert "its queue policy allows every SQS action" in message


def test_the_account_administering_its_key_is_fine():
    policy = statement(
        Effect="Allow",
        Principal={"AWS": "arn:aws:iam::123456789012:root"},
        Action="kms:*",
        Resource="*",
    )
    assert check_policy("aws:kms/key:Key", policy) == []
    assert check_policy("aws:kms/key:Key", UNKNOWN) == []


def test_granting_another_account_is_a_violation():
    topic = "arn:aws:sns:us-east-1:123456789012:securebase-production-analytics-alerts"
    own = statement(
        Effect="Allow",
        Principal={"AWS": "arn:aws:iam::123456789012:role/r"},
        Action="sns:Publish",
        Resource=topic,
    )
    assert check_policy("aws:sns/topicPolicy:TopicPolicy", own) == []
    foreign = statement(
        Effect="Allow", Principal={"AWS": "210987654321"}, Action="sns:Publish", Resource=topic
    )
    [message] = check_policy("aws:sns/topicPolicy:TopicPolicy", foreign)
    assert "its policy grants ['sns:Publish'] to other accounts ['210987654321']" in message


def test_no_bucket_is_emptied_on_destroy():
    rule = POLICIES["s3-bucket-no-force-destroy"]
    bucket = {"bucket": BUCKET_NAME}
    [message] = check_resource(
        rule, f"{S3}bucket:Bucket", {**bucket, "forceDestroy": True}, name="reports"
    )
    assert message == (
        "aws:s3/bucket:Bucket 'reports': forceDestroy is on: `pulumi destroy` or a replacement "
        "deletes every object and version in it. Fix: remove forceDestroy (only staging "
        "buckets may be emptied on destroy)"
    )
    assert check_resource(rule, f"{S3}bucket:Bucket", {**bucket, "forceDestroy": False}) == []
    assert check_resource(rule, f"{S3}bucket:Bucket", bucket) == []
    assert check_resource(rule, f"{S3}bucket:Bucket", {**bucket, "forceDestroy": UNKNOWN}) == []
