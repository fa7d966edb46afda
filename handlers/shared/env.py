"""Environment variables the functions read: the contract with AnalyticsApi.

`components.api` sets exactly these names, and the handlers read them only
through `require`/`optional`, so a missing variable fails loudly with its name.
Values are resource names, ARNs and settings, never secret values.
"""

from __future__ import annotations

import os

ENVIRONMENT = "ENVIRONMENT"
LOG_LEVEL = "LOG_LEVEL"
METRICS_NAMESPACE = "METRICS_NAMESPACE"  # custom CloudWatch namespace for EMF metrics

# Tables and bucket
METRICS_TABLE = "METRICS_TABLE"
REPORTS_TABLE = "REPORTS_TABLE"
SCHEDULES_TABLE = "SCHEDULES_TABLE"
CACHE_TABLE = "CACHE_TABLE"
REPORTS_BUCKET = "REPORTS_BUCKET"
REPORTS_KMS_KEY_ARN = "REPORTS_KMS_KEY_ARN"  # unset: the bucket's default encryption (SSE-S3)
# Phase 2 customers: the aggregator's tenants; the authorizer denies those not active.
CUSTOMERS_TABLE = "CUSTOMERS_TABLE"

# Authorizer
JWT_ISSUER = "JWT_ISSUER"
JWT_AUDIENCE = "JWT_AUDIENCE"
JWT_TENANT_CLAIM = "JWT_TENANT_CLAIM"
JWT_SECRET_ID = "JWT_SECRET_ID"  # noqa: S105 - the variable's name; holds a secret id, not a secret
JWT_JWKS_URL = "JWT_JWKS_URL"  # RS256/ES256 keys
# Optional: the longest a token may live, exp - iat, in seconds (default 12 hours).
JWT_MAX_LIFETIME_SECONDS = "JWT_MAX_LIFETIME_SECONDS"

# API behaviour
CORS_ALLOWED_ORIGINS = "CORS_ALLOWED_ORIGINS"  # comma-separated
CACHE_TTL_SECONDS = "CACHE_TTL_SECONDS"
REPORT_URL_EXPIRY_SECONDS = "REPORT_URL_EXPIRY_SECONDS"
# reportRetentionDays: days a report file lives (bucket lifecycle) and its record's TTL.
REPORT_RETENTION_DAYS = "REPORT_RETENTION_DAYS"
REPORT_JOBS_QUEUE_URL = "REPORT_JOBS_QUEUE_URL"  # deferred (202) reports for the engine
# Optional: seconds of estimated rendering the reporter does within the request
# (0 to 20, default 20); anything longer is deferred to the report engine.
REPORT_SYNC_BUDGET_SECONDS = "REPORT_SYNC_BUDGET_SECONDS"
REPORT_SENDER = "REPORT_SENDER"
# Optional: deferred reports a tenant may have pending at once (default 5).
REPORT_MAX_PENDING_PER_TENANT = "REPORT_MAX_PENDING_PER_TENANT"

# Report email (handlers.shared.mail)
REPORT_EMAILS_TABLE = "REPORT_EMAILS_TABLE"  # consent, deliveries, daily counts
# Comma-separated domains every tenant may mail without confirmation (may be empty).
REPORT_RECIPIENT_DOMAINS = "REPORT_RECIPIENT_DOMAINS"
REPORT_EMAILS_PER_DAY = "REPORT_EMAILS_PER_DAY"  # per tenant and UTC day
SES_CONFIGURATION_SET = "SES_CONFIGURATION_SET"  # bounce and complaint events
EMAIL_LINK_KEY_ID = "EMAIL_LINK_KEY_ID"  # the KMS HMAC key that signs email links
EMAIL_LINKS_BASE_URL = "EMAIL_LINKS_BASE_URL"  # the API's URL, where the links point

# Aggregator
USAGE_NAMESPACE = "USAGE_NAMESPACE"
USAGE_TENANT_DIMENSION = "USAGE_TENANT_DIMENSION"
USAGE_METRIC_NAMES = "USAGE_METRIC_NAMES"  # JSON: {"api_calls": "ApiCalls", ...}
COST_REFRESH_HOURS = "COST_REFRESH_HOURS"
HOURLY_RETENTION_DAYS = "HOURLY_RETENTION_DAYS"
AGGREGATOR_WRITE_CONCURRENCY = "AGGREGATOR_WRITE_CONCURRENCY"  # BatchWriteItem requests in flight
# Sharded runs: rosters of at least AGGREGATOR_SHARD_THRESHOLD tenants are
# split into shards of AGGREGATOR_TENANTS_PER_SHARD, sent to the shard queue.
AGGREGATOR_SHARD_QUEUE_URL = "AGGREGATOR_SHARD_QUEUE_URL"
AGGREGATOR_SHARD_THRESHOLD = "AGGREGATOR_SHARD_THRESHOLD"
AGGREGATOR_TENANTS_PER_SHARD = "AGGREGATOR_TENANTS_PER_SHARD"
# The shard queue's maxReceiveCount: the last attempt records a failing shard as failed.
AGGREGATOR_SHARD_MAX_ATTEMPTS = "AGGREGATOR_SHARD_MAX_ATTEMPTS"

# Phase 2 monitor
MONITOR_CONFIG = "MONITOR_CONFIG"  # JSON: resources, thresholds, lookback
MONITOR_BUCKET = "MONITOR_BUCKET"
MONITOR_PREFIX = "MONITOR_PREFIX"
ALERTS_TOPIC_ARN = "ALERTS_TOPIC_ARN"

# Set by the Lambda runtime and AWS tooling, not by AnalyticsApi: the Phase 2
# monitor command reads it (boto3 itself reads only AWS_DEFAULT_REGION).
AWS_REGION = "AWS_REGION"


class MissingEnvironment(RuntimeError):
    """A function was deployed without a variable it needs."""


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingEnvironment(f"environment variable {name} is not set")
    return value


def optional(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def require_int(name: str) -> int:
    value = require(name)
    try:
        return int(value)
    except ValueError:
        raise MissingEnvironment(
            f"environment variable {name} must be an integer; got {value!r}"
        ) from None
