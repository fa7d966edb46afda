"""The SecureBase Analytics CrossGuard rules, grouped by service.

`ALL_POLICIES` is what `policies/__main__.py` hands to the PolicyPack; tests
import the modules directly (constructing the PolicyPack starts a server).
"""

from __future__ import annotations

from pulumi_policy import Policy

from . import (
    apigateway,
    cloudwatch,
    dynamodb,
    events,
    iam,
    kms,
    lambda_,
    logs,
    resource_policies,
    s3,
    ses,
    sns,
    sqs,
    stack,
    tags,
)

ALL_POLICIES: list[Policy] = [
    *iam.POLICIES,
    *resource_policies.POLICIES,
    *s3.POLICIES,
    *dynamodb.POLICIES,
    *kms.POLICIES,
    *lambda_.POLICIES,
    *apigateway.POLICIES,
    *logs.POLICIES,
    *cloudwatch.POLICIES,
    *ses.POLICIES,
    *sns.POLICIES,
    *sqs.POLICIES,
    *events.POLICIES,
    *tags.POLICIES,
    *stack.POLICIES,
]
