"""AnalyticsData: the four tables, the reports bucket and the stack's access log bucket."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.secure_bucket import LogDelivery, SecureBucket, SecureBucketArgs
from handlers.shared.tables import ALL_TABLES, TableSpec


@dataclass
class AnalyticsDataArgs:
    name_prefix: str  # securebase-{env}
    account_id: pulumi.Input[str]
    report_retention_days: int
    # How long S3 server access logs are kept (the stack's log retention).
    access_log_retention_days: int
    # Production: deletion protection, `protect`, and a rotating customer
    # managed key for the reports bucket. Elsewhere buckets are emptied on destroy.
    is_production: bool


class AnalyticsData(pulumi.ComponentResource):
    tables: dict[str, aws.dynamodb.Table]
    bucket: aws.s3.Bucket
    data_key: aws.kms.Key | None
    # Receives the server access logs of every bucket of the stack.
    access_log_bucket: SecureBucket

    def __init__(
        self, name: str, args: AnalyticsDataArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("securebase:analytics:AnalyticsData", name, None, opts)
        # Data that must survive is protected in production; everything else
        # in the component stays replaceable.
        keep = pulumi.ResourceOptions(parent=self, protect=args.is_production)

        self.tables = {
            spec.name: _table(
                f"{name}-{spec.name}", f"{args.name_prefix}-{spec.name}", spec, args, keep
            )
            for spec in ALL_TABLES
        }

        self.data_key = None
        if args.is_production:
            self.data_key = aws.kms.Key(
                f"{name}-data-key",
                description=f"{args.name_prefix} analytics data at rest (reports, monitor reports)",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                opts=keep,
            )
            aws.kms.Alias(
                f"{name}-data-key-alias",
                name=f"alias/{args.name_prefix}-analytics-data",
                target_key_id=self.data_key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )

        # Audit data like the reports themselves, so protected in production too.
        self.access_log_bucket = SecureBucket(
            f"{name}-access-logs",
            SecureBucketArgs(
                bucket_name=pulumi.Output.concat(
                    args.name_prefix, "-access-logs-", args.account_id
                ),
                expiration_days=args.access_log_retention_days,
                access_log_bucket=None,
                log_delivery=LogDelivery(
                    account_id=args.account_id, source_bucket_pattern=f"{args.name_prefix}-*"
                ),
                force_destroy=not args.is_production,
            ),
            opts=keep,
        )
        reports = SecureBucket(
            f"{name}-reports",
            SecureBucketArgs(
                bucket_name=pulumi.Output.concat(args.name_prefix, "-reports-", args.account_id),
                expiration_days=args.report_retention_days,
                access_log_bucket=self.access_log_bucket,
                kms_key_arn=self.data_key.arn if self.data_key else None,
                force_destroy=not args.is_production,
            ),
            opts=keep,
        )
        self.bucket = reports.bucket

        self.register_outputs(
            {
                "table_names": {key: table.name for key, table in self.tables.items()},
                "table_arns": {key: table.arn for key, table in self.tables.items()},
                "bucket_name": self.bucket.bucket,
                "access_log_bucket_name": self.access_log_bucket.bucket.bucket,
            }
        )


def _table(
    resource_name: str,
    table_name: str,
    spec: TableSpec,
    args: AnalyticsDataArgs,
    opts: pulumi.ResourceOptions,
) -> aws.dynamodb.Table:
    return aws.dynamodb.Table(
        resource_name,
        name=table_name,
        billing_mode="PAY_PER_REQUEST",
        hash_key=spec.hash_key,
        range_key=spec.range_key,
        attributes=[
            aws.dynamodb.TableAttributeArgs(name=attr, type=spec.attribute_type(attr))
            for attr in spec.key_attributes
        ],
        global_secondary_indexes=[
            aws.dynamodb.TableGlobalSecondaryIndexArgs(
                name=index.name,
                projection_type=index.projection,
                key_schemas=[
                    aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                        attribute_name=index.hash_key, key_type="HASH"
                    ),
                    *(
                        [
                            aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                                attribute_name=index.range_key, key_type="RANGE"
                            )
                        ]
                        if index.range_key
                        else []
                    ),
                ],
            )
            for index in spec.indexes
        ]
        or None,
        ttl=aws.dynamodb.TableTtlArgs(attribute_name=spec.ttl_attribute, enabled=True)
        if spec.ttl_attribute
        else None,
        point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=not spec.is_cache),
        server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
        deletion_protection_enabled=args.is_production,
        opts=opts,
    )
