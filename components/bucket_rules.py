"""What every SecureBase bucket enforces, as plain data (no Pulumi import).

`components.secure_bucket.SecureBucket` deploys these rules; the local stack
applies the same ones to the emulator's bucket through the S3 API, and the
deployment validator checks them, so the three cannot drift apart.

Every bucket sends its server access logs to the stack's access log bucket,
under its own name as the prefix. The log bucket itself carries the same rules
except two that S3 dictates: it is encrypted with SSE-S3 (S3 cannot deliver
access logs to a bucket whose default encryption is SSE-KMS) and it does not
log its own access (that would loop).
"""

from __future__ import annotations

import json
from typing import Any

# Old versions and abandoned multipart uploads are never worth keeping.
NONCURRENT_VERSION_EXPIRATION_DAYS = 30
ABORT_INCOMPLETE_UPLOAD_DAYS = 7
OBJECT_OWNERSHIP = "BucketOwnerEnforced"  # ACLs disabled
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
LIFECYCLE_RULE_ID = "expire-objects"
# The only default encryption S3 server access logging can deliver to.
ACCESS_LOG_ENCRYPTION = "AES256"
# The service principal S3 server access logging writes with.
LOG_DELIVERY_SERVICE = "logging.s3.amazonaws.com"


def access_log_prefix(bucket_name: str) -> str:
    """Where a bucket's access logs land in the log bucket: under its own name."""
    return f"{bucket_name}/"


def lifecycle_rule(expiration_days: int) -> dict[str, Any]:
    """The bucket's one lifecycle rule, in the S3 API's shape."""
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "Expiration": {"Days": expiration_days},
        "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_EXPIRATION_DAYS},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_UPLOAD_DAYS},
    }


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [_deny_insecure_transport(bucket_arn)]}
    )


def access_log_bucket_policy(bucket_arn: str, account_id: str, source_bucket_pattern: str) -> str:
    """The log bucket's policy: TLS only, and S3 log delivery may write the logs of the
    account's buckets named like `source_bucket_pattern` (e.g. "securebase-staging-*").

    ACLs are disabled (BucketOwnerEnforced), so this policy is the only way S3 log
    delivery gets in; aws:SourceAccount and aws:SourceArn keep other accounts' buckets
    from writing here (confused deputy).
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                _deny_insecure_transport(bucket_arn),
                {
                    "Sid": "S3ServerAccessLogsDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": LOG_DELIVERY_SERVICE},
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/*",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{source_bucket_pattern}"},
                    },
                },
            ],
        }
    )


def _deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
