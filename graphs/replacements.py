"""Which input changes replace a stateful resource, per type the stacks deploy.

pulumi-aws is bridged from terraform-provider-aws: an argument its Terraform
schema marks ForceNew (RequiresReplace) makes `pulumi up` delete the resource
and create a new one when the argument changes. Each rule cites the provider's
schema where that is declared. Input names are camelCase, as the engine
receives them. For any type, an input named in the `replaceOnChanges` option
replaces the resource too, and so does a change of the provider's region.

A type is listed because replacing it loses data (`loses`), or because it is
`protect`ed in production, where a replacement makes `pulumi up` fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TF = "https://github.com/hashicorp/terraform-provider-aws/blob/main/internal/service"


@dataclass(frozen=True)
class ReplacementRule:
    inputs: tuple[str, ...]
    loses: str
    source: str
    # Values that replace the resource but are no single input, and their source.
    derived: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    derived_source: str = ""


# DynamoDB cannot change a table's key schema, the key attributes' types
# included (UpdateTable takes no key schema:
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html),
# and the provider does not even notice a changed type: the table has to be rebuilt.
TABLE_KEY_TYPES_SOURCE = "https://github.com/pulumi/pulumi-aws/issues/1057"


def table_key_types(inputs: dict[str, Any]) -> dict[str, Any]:
    """The type of each key attribute, as "hashKey type" and "rangeKey type"."""
    types = {a.get("name"): a.get("type") for a in inputs.get("attributes") or []}
    return {
        f"{role} type": types.get(inputs[role])
        for role in ("hashKey", "rangeKey")
        if inputs.get(role)
    }


_S3_CONFIG_INPUTS = ("bucket", "expectedBucketOwner")
_PROTECTED_BUCKET_PART = "nothing itself, but it is protected in production: `pulumi up` fails"

RULES: dict[str, ReplacementRule] = {
    "aws:dynamodb/table:Table": ReplacementRule(
        inputs=(
            "name",
            "hashKey",
            "rangeKey",
            "localSecondaryIndexes",
            "restoreSourceName",
            "restoreToLatestTime",
            "restoreDateTime",
        ),
        loses="every item in the table",
        source=f"{TF}/dynamodb/table.go",  # name, hash_key, range_key, local_secondary_index, restore_*: ForceNew
        derived=table_key_types,
        derived_source=TABLE_KEY_TYPES_SOURCE,
    ),
    "aws:s3/bucket:Bucket": ReplacementRule(
        inputs=("bucket", "bucketPrefix", "objectLockEnabled"),
        loses="every object and object version in the bucket",
        source=f"{TF}/s3/bucket.go",  # bucket, bucket_prefix, object_lock_enabled: ForceNew
    ),
    "aws:kms/key:Key": ReplacementRule(
        inputs=(
            "customKeyStoreId",
            "customerMasterKeySpec",
            "keyUsage",
            "multiRegion",
            "xksKeyId",
        ),
        loses="the key material: whatever it encrypted can no longer be decrypted",
        source=f"{TF}/kms/key.go",  # custom_key_store_id, customer_master_key_spec, key_usage, multi_region, xks_key_id: ForceNew
    ),
    "aws:cloudwatch/logGroup:LogGroup": ReplacementRule(
        inputs=("name", "namePrefix", "logGroupClass"),
        loses="every log event in the group",
        source=f"{TF}/logs/group.go",  # name, name_prefix, log_group_class: ForceNew
    ),
    "aws:sqs/queue:Queue": ReplacementRule(
        inputs=("name", "namePrefix", "fifoQueue"),
        loses="every message in the queue",
        source=f"{TF}/sqs/queue.go",  # name, name_prefix, fifo_queue: ForceNew
    ),
    "aws:secretsmanager/secret:Secret": ReplacementRule(
        inputs=("name", "namePrefix"),
        loses="every version of the secret value",
        source=f"{TF}/secretsmanager/secret.go",  # name, name_prefix: ForceNew
    ),
}

# A SecureBucket's parts carry its protection in production: type -> (the
# provider's file, the arguments it marks ForceNew or RequiresReplace).
_BUCKET_PARTS = {
    "aws:s3/bucketPolicy:BucketPolicy": ("bucket_policy.go", ("bucket",)),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        "bucket_public_access_block.go",
        ("bucket",),
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (
        "bucket_ownership_controls.go",
        ("bucket",),
    ),
    "aws:s3/bucketVersioning:BucketVersioning": ("bucket_versioning.go", _S3_CONFIG_INPUTS),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "bucket_lifecycle_configuration.go",
        _S3_CONFIG_INPUTS,
    ),
    "aws:s3/bucketLogging:BucketLogging": ("bucket_logging.go", _S3_CONFIG_INPUTS),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "bucket_server_side_encryption_configuration.go",
        _S3_CONFIG_INPUTS,
    ),
}
RULES.update(
    {
        type_: ReplacementRule(inputs, loses=_PROTECTED_BUCKET_PART, source=f"{TF}/s3/{file}")
        for type_, (file, inputs) in _BUCKET_PARTS.items()
    }
)

# Any resource: the options that replace it when an input they name changes.
REPLACE_ON_CHANGES_SOURCE = "https://www.pulumi.com/docs/iac/concepts/options/replaceonchanges/"

# The provider's region: pulumi-aws v7 no longer moves resources to another
# region in place (https://github.com/pulumi/pulumi-aws/pull/5656); a new
# region means new resources and the old ones left behind or destroyed.
PROVIDER_TYPE = "pulumi:providers:aws"
PROVIDER_INPUTS = ("region",)
PROVIDER_SOURCE = "https://github.com/pulumi/pulumi-aws/pull/5656"


def holds_data(resource_type: str) -> bool:
    rule = RULES.get(resource_type)
    return rule is not None and rule.loses != _PROTECTED_BUCKET_PART


def forcing_values(resource: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """What replaces `resource` when it changes: name -> (value, where that is documented)."""
    inputs = resource["inputs"]
    values: dict[str, tuple[Any, str]] = {}
    for option in resource.get("replaceOnChanges") or ():
        names = inputs if option == "*" else [option.split(".")[0].split("[")[0]]
        for name in names:
            values[name] = (inputs.get(name), REPLACE_ON_CHANGES_SOURCE)
    rule = RULES.get(resource["type"])
    if rule:
        for name in rule.inputs:
            values[name] = (inputs.get(name), rule.source)
        if rule.derived:
            derived = rule.derived(inputs)
            values.update({name: (v, rule.derived_source) for name, v in derived.items()})
    return values
