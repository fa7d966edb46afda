"""What every SecureBase bucket enforces, as plain data (no Pulumi import).

`components.secure_bucket.SecureBucket` deploys these rules; the local stack
applies the same ones to the emulator's bucket through the S3 API, so the
two cannot drift apart.
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
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
