"""S3: every bucket is private, encrypted, TLS-only, versioned and expires its objects.

With pulumi-aws v7 a bucket's settings are separate resources that name the
bucket in their `bucket` input, so these are stack policies: each joins the
setting resources to their bucket and reports the bucket that lacks one, or
the setting resource that is wrong.

Access logging: every bucket logs to a log bucket, and a log bucket is exactly
a bucket some aws.s3.BucketLogging of the stack names as its `targetBucket`
(never a name pattern). A log bucket is exempt from logging itself and from
the KMS rule, because S3 server access logging delivers only to SSE-S3
buckets; the access-logging rule checks it can receive the logs instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pulumi_policy import Severity

from . import documents, references
from .framework import (
    UNKNOWN,
    Config,
    Finding,
    Links,
    Resource,
    ResourceRule,
    Setting,
    Stack,
    StackCheck,
    StackRule,
    known,
    link,
)

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_ACL = "aws:s3/bucketAcl:BucketAcl"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LOG_DELIVERY_SERVICE = "logging.s3.amazonaws.com"

PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
SSE_ALGORITHMS = ("AES256", *KMS_ALGORITHMS)

Judge = Callable[[Resource, Resource, Config], Iterable[Finding]]


def _settings_of(stack: Stack, setting_type: str) -> tuple[list[Resource], Links]:
    buckets = stack.of_type(BUCKET)
    links = link(
        stack.of_type(setting_type),
        buckets,
        reference=lambda setting: references.bucket_name(setting.get("bucket")),
        identity=lambda bucket: bucket.get("bucket"),
        prop="bucket",
    )
    return buckets, links


def _log_targets(stack: Stack, buckets: list[Resource]) -> Links:
    """The buckets that receive server access logs: each BucketLogging joined to its target."""
    return link(
        stack.of_type(LOGGING),
        buckets,
        reference=lambda logging: references.bucket_name(logging.get("targetBucket")),
        identity=lambda bucket: bucket.get("bucket"),
        prop="targetBucket",
    )


def _per_bucket(
    setting_type: str, missing: str, fix: str, judge: Judge, *, except_log_buckets: bool = False
) -> StackCheck:
    """A stack check: each bucket has a `setting_type` resource and each one passes `judge`.

    `except_log_buckets` leaves out the buckets that receive access logs, and,
    while a log target is unknown (preview), every bucket that might be one.
    """

    def check(stack: Stack, config: Config) -> Iterator[Finding]:
        buckets, links = _settings_of(stack, setting_type)
        log_targets = _log_targets(stack, buckets) if except_log_buckets else None
        for bucket in buckets:
            if log_targets is not None and (
                log_targets.of(bucket) or log_targets.undecided(bucket)
            ):
                continue
            settings = links.of(bucket)
            if not settings and not links.undecided(bucket):
                yield Finding(bucket, missing, fix)
            for setting in settings:
                yield from judge(bucket, setting, config)

    return check


def _public_access_block(bucket: Resource, block: Resource, config: Config) -> Iterator[Finding]:
    off = [
        flag
        for flag in PUBLIC_ACCESS_FLAGS
        if known(block.get(flag)) and block.get(flag) is not True
    ]
    if off:
        yield Finding(
            block,
            f"the public access block of bucket '{bucket.name}' leaves {off} off",
            "set blockPublicAcls, blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets to True",
        )


def _default_algorithms(encryption: Resource) -> list[Any] | None:
    rules = encryption.get("rules")
    if rules is UNKNOWN:
        return None
    return [
        encryption.get("rules", index, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        for index in range(len(rules or []))
    ]


def _encryption(bucket: Resource, encryption: Resource, config: Config) -> Iterator[Finding]:
    algorithms = _default_algorithms(encryption)
    if algorithms is None or UNKNOWN in algorithms:
        return
    if not any(algorithm in SSE_ALGORITHMS for algorithm in algorithms):
        yield Finding(
            encryption,
            f"bucket '{bucket.name}' has no default encryption rule (found {algorithms})",
            "add a rule with applyServerSideEncryptionByDefault.sseAlgorithm 'aws:kms' (or 'AES256')",
        )


def _kms_encryption(bucket: Resource, encryption: Resource, config: Config) -> Iterator[Finding]:
    rules = encryption.get("rules")
    if rules is UNKNOWN:
        return
    for index in range(len(rules or [])):
        default = ("rules", index, "applyServerSideEncryptionByDefault")
        algorithm = encryption.get(*default, "sseAlgorithm")
        key = encryption.get(*default, "kmsMasterKeyId")
        if algorithm is UNKNOWN or (algorithm in KMS_ALGORITHMS and key is not None):
            return
    yield Finding(
        encryption,
        f"bucket '{bucket.name}' is not encrypted with a customer managed KMS key",
        "set sseAlgorithm 'aws:kms' with kmsMasterKeyId = a rotating aws.kms.Key, and "
        "bucketKeyEnabled True to keep KMS requests down",
    )


def _tls_only(bucket: Resource, policy: Resource, config: Config) -> Iterator[Finding]:
    document = policy.get("policy")
    if document is UNKNOWN:
        return
    statements = documents.parse(document) or ()
    if not any(documents.denies_insecure_transport(s, "s3:*") for s in statements):
        yield Finding(
            policy,
            f"the policy of bucket '{bucket.name}' does not deny requests made without TLS",
            "add a statement: Effect Deny, Principal '*', Action 's3:*', Resource the bucket "
            "and bucket/*, Condition {'Bool': {'aws:SecureTransport': 'false'}}",
        )


def _versioning(bucket: Resource, versioning: Resource, config: Config) -> Iterator[Finding]:
    status = versioning.get("versioningConfiguration", "status")
    if known(status) and status != "Enabled":
        yield Finding(
            versioning,
            f"versioning of bucket '{bucket.name}' is {status!r}",
            "set versioningConfiguration.status to 'Enabled'",
        )


def _ownership(bucket: Resource, controls: Resource, config: Config) -> Iterator[Finding]:
    ownership = controls.get("rule", "objectOwnership")
    if known(ownership) and ownership != "BucketOwnerEnforced":
        yield Finding(
            controls,
            f"bucket '{bucket.name}' keeps ACLs enabled (objectOwnership {ownership!r})",
            "set rule.objectOwnership to 'BucketOwnerEnforced'",
        )


def _whole_bucket(rule: Any) -> bool:
    """A lifecycle rule without a prefix, tag or size filter applies to every object."""
    if not isinstance(rule, dict):
        return False
    scope = rule.get("filter")
    prefixes = [rule.get("prefix"), scope.get("prefix") if isinstance(scope, dict) else None]
    narrowing = (
        [key for key, value in scope.items() if key != "prefix" and value is not None]
        if isinstance(scope, dict)
        else []
    )
    return not narrowing and all(prefix in (None, "") for prefix in prefixes)


def _days(rule: dict[str, Any], block: str, field: str) -> Any:
    value = rule.get(block)
    return value.get(field) if isinstance(value, dict) else None


def _lifecycle(bucket: Resource, lifecycle: Resource, config: Config) -> Iterator[Finding]:
    rules = lifecycle.get("rules")
    if rules is UNKNOWN:
        return
    if any(
        not isinstance(r, dict) or UNKNOWN in (r.get("status"), r.get("filter"), r.get("prefix"))
        for r in rules or []
    ):
        return
    enabled = [rule for rule in rules or [] if rule.get("status") == "Enabled"]
    whole = [rule for rule in enabled if _whole_bucket(rule)]
    limits = (
        ("expiration", "days", "maxExpirationDays", "objects expire"),
        ("noncurrentVersionExpiration", "noncurrentDays", "maxNoncurrentVersionDays",
         "old versions expire"),
        ("abortIncompleteMultipartUpload", "daysAfterInitiation",
         "maxAbortIncompleteUploadDays", "incomplete multipart uploads are aborted"),
    )  # fmt: skip
    for block, field, setting, what in limits:
        limit = config.integer(setting)
        days = [_days(rule, block, field) for rule in whole]
        if UNKNOWN in days:
            continue
        if not any(isinstance(d, int | float) and 0 < d <= limit for d in days):
            found = [f"{d:g}" if isinstance(d, int | float) else d for d in days if d is not None]
            yield Finding(
                lifecycle,
                f"bucket '{bucket.name}' has no enabled whole-bucket rule where {what} "
                f"within {limit} days (found {found or 'none'})",
                f"add {block}.{field} <= {limit} to an enabled rule with an empty filter",
            )


def _access_logging(stack: Stack, config: Config) -> Iterator[Finding]:
    buckets, logging_of = _settings_of(stack, LOGGING)
    log_targets = _log_targets(stack, buckets)
    _, encryption_of = _settings_of(stack, ENCRYPTION)
    _, policy_of = _settings_of(stack, BUCKET_POLICY)
    for bucket in buckets:
        deliveries = log_targets.of(bucket)
        if deliveries:
            yield from _log_bucket_self_logging(bucket, deliveries, logging_of.of(bucket))
            for encryption in encryption_of.of(bucket):
                yield from _log_bucket_encryption(bucket, encryption)
            yield from _log_bucket_policy(bucket, policy_of.of(bucket), policy_of.undecided(bucket))
        elif not (logging_of.of(bucket) or logging_of.undecided(bucket) or log_targets.unresolved):
            yield Finding(
                bucket,
                "server access logging is off: nobody can tell who fetched which object",
                "add an aws.s3.BucketLogging that sends its access logs to a log bucket",
            )


def _log_bucket_self_logging(
    bucket: Resource, deliveries: list[Resource], own_logging: list[Resource]
) -> Iterator[Finding]:
    delivered_here = {delivery.urn for delivery in deliveries}
    for logging in own_logging:
        if logging.urn in delivered_here:
            yield Finding(
                logging,
                f"bucket '{bucket.name}' sends its access logs to itself: every delivery is "
                "logged again, without end",
                "remove this aws.s3.BucketLogging; a log bucket does not log its own access",
            )


def _log_bucket_encryption(bucket: Resource, encryption: Resource) -> Iterator[Finding]:
    algorithms = _default_algorithms(encryption)
    if algorithms is None or UNKNOWN in algorithms:
        return
    kms = [algorithm for algorithm in algorithms if algorithm in KMS_ALGORITHMS]
    if kms:
        yield Finding(
            encryption,
            f"bucket '{bucket.name}' receives server access logs but encrypts with {kms[0]}: "
            "S3 cannot deliver access logs to a bucket whose default encryption is SSE-KMS",
            "set applyServerSideEncryptionByDefault.sseAlgorithm 'AES256' (SSE-S3) on the log bucket",
        )


def _lets_log_delivery_in(statement: documents.Statement) -> bool:
    return (
        statement.allows
        and LOG_DELIVERY_SERVICE in statement.services
        and statement.allows_action("s3:PutObject")
        and statement.narrowed
    )


def _log_bucket_policy(
    bucket: Resource, policies: list[Resource], undecided: bool
) -> Iterator[Finding]:
    fix = (
        "add a statement: Effect Allow, Principal {'Service': 'logging.s3.amazonaws.com'}, "
        "Action 's3:PutObject', Resource the bucket's objects, Condition aws:SourceAccount "
        "(and aws:SourceArn) of the logged buckets"
    )
    if not policies:
        if not undecided:
            yield Finding(
                bucket,
                "it receives server access logs but has no bucket policy letting S3 log "
                "delivery write them (ACLs are disabled, so only a policy can)",
                f"add an aws.s3.BucketPolicy with {fix.removeprefix('add ')}",
            )
        return
    for policy in policies:
        document = policy.get("policy")
        if document is UNKNOWN:
            return
        if any(_lets_log_delivery_in(s) for s in documents.parse(document) or ()):
            return
    yield Finding(
        policies[0],
        f"the policy of bucket '{bucket.name}' does not let logging.s3.amazonaws.com put "
        "the access logs it receives, for this account's buckets only",
        fix,
    )


def _acls(stack: Stack, config: Config) -> Iterator[Finding]:
    yield from _per_bucket(
        OWNERSHIP,
        "ACLs are not disabled (no BucketOwnershipControls)",
        "add an aws.s3.BucketOwnershipControls with objectOwnership 'BucketOwnerEnforced'",
        _ownership,
    )(stack, config)
    for bucket in stack.of_type(BUCKET):
        acl, grants = bucket.get("acl"), bucket.get("grants")
        if (known(acl) and acl not in (None, "private")) or (known(grants) and grants):
            yield Finding(
                bucket,
                f"it sets an ACL ({acl or 'grants'})",
                "remove acl/grants; access is granted with IAM and the bucket policy",
            )
    for acl in stack.of_type(BUCKET_ACL):
        yield Finding(
            acl,
            "bucket ACLs are disabled on every SecureBase bucket",
            "remove the aws.s3.BucketAcl; grant access with IAM and the bucket policy",
        )


LIFECYCLE_SETTINGS = [
    Setting(
        "maxExpirationDays",
        "Objects must expire within this many days.",
        {"type": "integer", "minimum": 1},
        90,
    ),
    Setting(
        "maxNoncurrentVersionDays",
        "Noncurrent object versions must expire within this many days.",
        {"type": "integer", "minimum": 1},
        30,
    ),
    Setting(
        "maxAbortIncompleteUploadDays",
        "Incomplete multipart uploads must be aborted within this many days.",
        {"type": "integer", "minimum": 1},
        7,
    ),
]


def _no_force_destroy(bucket: Resource, config: Config) -> Iterator[Finding]:
    if bucket.get("forceDestroy") is True:
        yield Finding(
            bucket,
            "forceDestroy is on: `pulumi destroy` or a replacement deletes every object and "
            "version in it",
            "remove forceDestroy (only staging buckets may be emptied on destroy)",
        )


POLICIES = [
    ResourceRule(
        name="s3-bucket-no-force-destroy",
        description="No bucket is emptied when it is destroyed or replaced (mandatory in "
        "production; staging buckets may be).",
        remediation="Leave forceDestroy unset or False.",
        severity=Severity.HIGH,
        resource_types=[BUCKET],
        check=_no_force_destroy,
    ),
    StackRule(
        name="s3-bucket-public-access-block",
        description="Every bucket has a public access block with all four flags on.",
        remediation="Add an aws.s3.BucketPublicAccessBlock for the bucket with blockPublicAcls, "
        "blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets True.",
        severity=Severity.CRITICAL,
        check=_per_bucket(
            PUBLIC_ACCESS_BLOCK,
            "it has no public access block",
            "add an aws.s3.BucketPublicAccessBlock with all four flags True",
            _public_access_block,
        ),
    ),
    StackRule(
        name="s3-bucket-encryption",
        description="Every bucket encrypts objects at rest by default.",
        remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration with a default rule "
        "(aws:kms with a customer managed key in production, AES256 elsewhere).",
        severity=Severity.HIGH,
        check=_per_bucket(
            ENCRYPTION,
            "it has no default encryption configuration",
            "add an aws.s3.BucketServerSideEncryptionConfiguration",
            _encryption,
        ),
    ),
    StackRule(
        name="s3-bucket-kms-encryption",
        description="Every bucket but a log bucket encrypts with a customer managed KMS key "
        "(mandatory in production).",
        remediation="Encrypt with sseAlgorithm 'aws:kms', kmsMasterKeyId of a rotating "
        "aws.kms.Key and bucketKeyEnabled True.",
        severity=Severity.MEDIUM,
        check=_per_bucket(
            ENCRYPTION,
            "it has no default encryption configuration",
            "add an aws.s3.BucketServerSideEncryptionConfiguration using aws:kms",
            _kms_encryption,
            # S3 delivers access logs only to SSE-S3 buckets (see s3-bucket-access-logging).
            except_log_buckets=True,
        ),
    ),
    StackRule(
        name="s3-bucket-tls-only",
        description="Every bucket policy denies requests that do not use TLS.",
        remediation="Add an aws.s3.BucketPolicy denying s3:* to '*' when aws:SecureTransport is false.",
        severity=Severity.HIGH,
        check=_per_bucket(
            BUCKET_POLICY,
            "it has no bucket policy, so plain-HTTP requests are accepted",
            "add an aws.s3.BucketPolicy that denies s3:* when aws:SecureTransport is 'false'",
            _tls_only,
        ),
    ),
    StackRule(
        name="s3-bucket-versioning",
        description="Every bucket keeps object versions, so an overwrite or delete can be undone.",
        remediation="Add an aws.s3.BucketVersioning with status 'Enabled' (and expire old versions).",
        severity=Severity.MEDIUM,
        check=_per_bucket(
            VERSIONING,
            "versioning is not configured",
            "add an aws.s3.BucketVersioning with versioningConfiguration.status 'Enabled'",
            _versioning,
        ),
    ),
    StackRule(
        name="s3-bucket-acls-disabled",
        description="Every bucket disables ACLs (BucketOwnerEnforced) and sets none.",
        remediation="Add an aws.s3.BucketOwnershipControls with 'BucketOwnerEnforced'; remove ACLs.",
        severity=Severity.HIGH,
        check=_acls,
    ),
    StackRule(
        name="s3-bucket-lifecycle",
        description="Every bucket expires objects, old versions and incomplete uploads within "
        "the configured limits.",
        remediation="Add an aws.s3.BucketLifecycleConfiguration with one enabled rule and an "
        "empty filter: expiration, noncurrentVersionExpiration and "
        "abortIncompleteMultipartUpload within the limits.",
        severity=Severity.MEDIUM,
        check=_per_bucket(
            LIFECYCLE,
            "it has no lifecycle configuration: objects are kept forever",
            "add an aws.s3.BucketLifecycleConfiguration",
            _lifecycle,
        ),
        settings=LIFECYCLE_SETTINGS,
    ),
    StackRule(
        name="s3-bucket-access-logging",
        description="Every bucket but a log bucket writes server access logs to a log bucket "
        "that can receive them: SSE-S3, a policy letting logging.s3.amazonaws.com in, no "
        "logging of its own.",
        remediation="Add an aws.s3.BucketLogging sending the bucket's access logs to a "
        "dedicated log bucket (SSE-S3, lifecycle, log delivery allowed by its bucket policy "
        "with aws:SourceAccount/aws:SourceArn, no logging of its own).",
        severity=Severity.MEDIUM,
        check=_access_logging,
    ),
]
