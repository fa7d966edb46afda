"""A private, encrypted, versioned S3 bucket whose objects expire and whose access is logged.

Used for tenant reports (AnalyticsData), Phase 2 monitor reports
(Phase2Monitor) and the stack's access log bucket (AnalyticsData), so all carry
the same guard rails (components.bucket_rules). Every bucket sends its server
access logs to the log bucket; the log bucket differs only where S3 requires
it: SSE-S3, no logging of its own, and a policy that lets S3 log delivery in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import bucket_rules


@dataclass(frozen=True)
class LogDelivery:
    """Makes the bucket an access log bucket for this account's buckets named like
    `source_bucket_pattern` (e.g. "securebase-staging-*")."""

    account_id: pulumi.Input[str]
    source_bucket_pattern: str


@dataclass
class SecureBucketArgs:
    bucket_name: pulumi.Input[str]
    expiration_days: int
    # The log bucket that receives this bucket's server access logs. None only
    # for the log bucket itself (`log_delivery` set): logging to itself loops.
    access_log_bucket: SecureBucket | None
    # None: SSE-S3. A key: SSE-KMS with an S3 bucket key (fewer KMS requests).
    kms_key_arn: pulumi.Input[str] | None = None
    log_delivery: LogDelivery | None = None
    # Staging only: `pulumi destroy` (or a replacement) empties the bucket, every
    # version included, instead of failing with BucketNotEmpty. The policy pack's
    # s3-bucket-no-force-destroy keeps it out of production.
    force_destroy: bool = False

    def __post_init__(self) -> None:
        """Refuses what S3 would accept and then never deliver logs for."""
        if self.log_delivery is None and self.access_log_bucket is None:
            raise ValueError("a bucket needs an access_log_bucket for its server access logs")
        if self.log_delivery is not None and self.access_log_bucket is not None:
            raise ValueError("an access log bucket must not log its own access (it would loop)")
        if self.log_delivery is not None and self.kms_key_arn is not None:
            raise ValueError(
                "an access log bucket must use SSE-S3: S3 server access logging cannot "
                "deliver to a bucket whose default encryption is SSE-KMS"
            )


class SecureBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket

    def __init__(
        self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("securebase:analytics:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(
            name, bucket=args.bucket_name, force_destroy=args.force_destroy, opts=child
        )

        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(
                object_ownership=bucket_rules.OBJECT_OWNERSHIP
            ),
            opts=child,
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=bucket_rules.PUBLIC_ACCESS_BLOCK["BlockPublicAcls"],
            block_public_policy=bucket_rules.PUBLIC_ACCESS_BLOCK["BlockPublicPolicy"],
            ignore_public_acls=bucket_rules.PUBLIC_ACCESS_BLOCK["IgnorePublicAcls"],
            restrict_public_buckets=bucket_rules.PUBLIC_ACCESS_BLOCK["RestrictPublicBuckets"],
            opts=child,
        )
        if args.kms_key_arn is not None:
            default_encryption = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
            )
        else:
            default_encryption = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"
            )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default_encryption,
                    bucket_key_enabled=args.kms_key_arn is not None,
                )
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id=bucket_rules.LIFECYCLE_RULE_ID,
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.expiration_days
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=bucket_rules.NONCURRENT_VERSION_EXPIRATION_DAYS
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=bucket_rules.ABORT_INCOMPLETE_UPLOAD_DAYS
                    ),
                )
            ],
            # S3 rejects lifecycle rules with noncurrent actions until versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        delivery = args.log_delivery
        if delivery is None:
            policy_name = f"{name}-tls-only"
            policy = self.bucket.arn.apply(bucket_rules.tls_only_policy)
        else:
            policy_name = f"{name}-tls-only-and-log-delivery"
            policy = pulumi.Output.all(self.bucket.arn, delivery.account_id).apply(
                lambda values: bucket_rules.access_log_bucket_policy(
                    values[0], values[1], delivery.source_bucket_pattern
                )
            )
        aws.s3.BucketPolicy(
            policy_name,
            bucket=self.bucket.id,
            policy=policy,
            # Putting a policy while the public access block is being created races.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block]),
        )
        if args.access_log_bucket is not None:
            log_bucket = args.access_log_bucket
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=self.bucket.id,
                target_bucket=log_bucket.bucket.bucket,
                target_prefix=self.bucket.bucket.apply(bucket_rules.access_log_prefix),
                # Logging starts once the log bucket, and the policy letting S3 in, exist.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[log_bucket]),
            )

        self.register_outputs({"bucket_name": self.bucket.bucket, "bucket_arn": self.bucket.arn})
