"""A private, encrypted, versioned S3 bucket whose objects expire.

Used for tenant reports (AnalyticsData) and Phase 2 monitor reports
(Phase2Monitor), so both carry the same guard rails.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import bucket_rules


@dataclass
class SecureBucketArgs:
    bucket_name: pulumi.Input[str]
    expiration_days: int
    # None: SSE-S3. A key: SSE-KMS with an S3 bucket key (fewer KMS requests).
    kms_key_arn: pulumi.Input[str] | None = None


class SecureBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket

    def __init__(
        self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("securebase:analytics:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(name, bucket=args.bucket_name, opts=child)

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
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(bucket_rules.tls_only_policy),
            # Putting a policy while the public access block is being created races.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block]),
        )

        self.register_outputs({"bucket_name": self.bucket.bucket, "bucket_arn": self.bucket.arn})
