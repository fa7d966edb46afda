"""Typed stack settings: the only place the program reads Pulumi config.

`load_settings()` reads `pulumi.Config`; `parse_settings()` does the validation
on plain strings so it can be tested without a Pulumi engine. Every error names
the full config key, what is allowed and what was given.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi

from components.functions import AGGREGATOR_SHARD, reserved_concurrency_by_function
from handlers.shared.aggregation.shards import MAX_TENANTS_PER_SHARD, TENANTS_PER_QUERY_BATCH

PROJECT = "securebase-analytics"
ENVIRONMENTS = ("staging", "production")

# The values CloudWatch Logs accepts for retentionInDays.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# The four usage metrics the API serves, and the CloudWatch metric names the
# platform publishes them under unless `usageMetricNames` says otherwise.
USAGE_METRICS = ("api_calls", "storage_gb", "compute_hours", "data_transfer_gb")
DEFAULT_USAGE_METRIC_NAMES = {
    "api_calls": "ApiCalls",
    "storage_gb": "StorageBytes",
    "compute_hours": "ComputeSeconds",
    "data_transfer_gb": "DataTransferBytes",
}

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$")
_ORIGIN = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?$")
_TAG_VALUE = re.compile(r"^[\w .:/=+@-]{1,256}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_AWS_NAME = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_CW_NAME = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
_HTTP_API_ID = re.compile(r"^[a-z0-9]{10}$")

# Lambda keeps this many concurrent executions of the account's quota unreserved:
# a function may not reserve what would leave fewer
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
LAMBDA_UNRESERVED_MINIMUM = 100

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class JwtSettings:
    issuer: str
    audience: str
    tenant_claim: str
    # Exactly one of these: an HS256 secret in Secrets Manager (the Phase 2
    # tokens) or a JWKS URL for RS256/ES256 tokens.
    secret_name: str | None
    jwks_url: str | None
    # The longest a token may live (exp - iat); longer ones are denied.
    max_token_lifetime_hours: int = 12


@dataclass(frozen=True)
class UsageSourceSettings:
    namespace: str
    tenant_dimension: str
    metric_names: Mapping[str, str]


@dataclass(frozen=True)
class AggregatorSettings:
    """How the hourly aggregator scales (see handlers.aggregator)."""

    # Rosters of at least this many active tenants run as shards.
    shard_threshold_tenants: int
    # Tenants per shard: a multiple of 125, the tenants one GetMetricData request covers.
    tenants_per_shard: int
    # Shards running at once: the shard queue mapping's maximum concurrency and the
    # shard function's reserved concurrency.
    shard_concurrency: int
    # Deliveries of a shard (the queue's maxReceiveCount); the last records it failed.
    shard_max_attempts: int
    # BatchWriteItem requests in flight per invocation.
    write_concurrency: int


@dataclass(frozen=True)
class AlarmSettings:
    function_errors_per_hour: int
    duration_percent_of_timeout: int
    table_throttles_per_5_minutes: int
    api_5xx_rate_percent: float
    # p95 latency budgets: every route but the report routes; the report routes,
    # which render PDF and XLSX synchronously for up to 28 s.
    api_latency_p95_ms: int
    report_latency_p95_ms: int
    failed_reports_per_hour: int
    aggregator_missing_hours: int


@dataclass(frozen=True)
class Phase2ApiSettings:
    kind: str  # "rest" (ApiName dimension) or "http" (ApiId dimension)
    name: str | None
    api_id: str | None


@dataclass(frozen=True)
class Phase2Thresholds:
    lambda_error_rate_percent: float
    lambda_max_throttles: int
    api_5xx_rate_percent: float
    api_latency_ms: int
    aurora_cpu_percent: float
    aurora_max_connections: int


@dataclass(frozen=True)
class Phase2Settings:
    aurora_cluster_id: str
    function_names: tuple[str, ...]
    api: Phase2ApiSettings
    table_names: tuple[str, ...]
    window_start: dt.date
    window_days: int
    lookback_hours: int
    thresholds: Phase2Thresholds

    @property
    def window_end(self) -> dt.date:
        return self.window_start + dt.timedelta(days=self.window_days)


@dataclass(frozen=True)
class StackSettings:
    stack: str
    environment: str
    region: str
    owner: str
    cost_center: str
    log_retention_days: int
    hourly_retention_days: int
    report_retention_days: int
    alert_emails: tuple[str, ...]
    alert_webhook_url: pulumi.Output[str] | None
    cors_allowed_origins: tuple[str, ...]
    api_throttle_rate_limit: float
    api_throttle_burst_limit: int
    report_url_expiry_seconds: int
    report_max_pending_per_tenant: int
    report_sender: str
    ses_identity: str
    # Domains every tenant may email reports to without the recipient confirming.
    report_recipient_domains: tuple[str, ...]
    report_emails_per_day: int  # per tenant and UTC day, confirmations included
    phase2_customers_table: str
    cost_refresh_hours: int
    cache_ttl_seconds: int
    jwt: JwtSettings
    usage_source: UsageSourceSettings
    aggregator: AggregatorSettings
    alarms: AlarmSettings
    phase2: Phase2Settings
    # The account's Lambda concurrent executions quota in the stack's region
    # (`aws lambda get-account-settings`: AccountLimit.ConcurrentExecutions).
    lambda_concurrency_quota: int

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def name_prefix(self) -> str:
        return f"securebase-{self.environment}"

    def resource_name(self, what: str) -> str:
        """Physical names follow `securebase-{env}-{what}`."""
        return f"{self.name_prefix}-{what}"

    @property
    def tags(self) -> dict[str, str]:
        return {
            "Project": PROJECT,
            "Environment": self.environment,
            "Owner": self.owner,
            "CostCenter": self.cost_center,
        }


class _Values:
    """Reads raw config strings and turns them into typed, validated values."""

    def __init__(self, lookup: Callable[[str], str | None], namespace: str = PROJECT):
        self._lookup = lookup
        self._namespace = namespace

    def key(self, name: str) -> str:
        return f"{self._namespace}:{name}"

    def fail(self, name: str, expected: str, got: object) -> ConfigError:
        return ConfigError(f"{self.key(name)} must be {expected}; got {got!r}")

    def raw(self, name: str) -> str | None:
        value = self._lookup(self.key(name))
        return None if value is None or value == "" else value

    def string(
        self,
        name: str,
        pattern: re.Pattern[str],
        expected: str,
        default: str | None = None,
    ) -> str:
        value = self.raw(name)
        if value is None:
            if default is not None:
                return default
            raise ConfigError(f"{self.key(name)} is required: set it to {expected}")
        if not pattern.match(value):
            raise self.fail(name, expected, value)
        return value

    def optional_string(self, name: str, pattern: re.Pattern[str], expected: str) -> str | None:
        value = self.raw(name)
        if value is not None and not pattern.match(value):
            raise self.fail(name, expected, value)
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.raw(name) or default
        expected = "one of " + ", ".join(allowed)
        if value is None:
            raise ConfigError(f"{self.key(name)} is required: set it to {expected}")
        if value not in allowed:
            raise self.fail(name, expected, value)
        return value

    def integer(
        self,
        name: str,
        default: int,
        low: int | None = None,
        high: int | None = None,
        allowed: tuple[int, ...] | None = None,
    ) -> int:
        if allowed is not None:
            expected = "one of " + ", ".join(str(v) for v in allowed)
        else:
            expected = f"a whole number from {low} to {high}"
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)  # Pulumi mocks and YAML may hand over "30.0"
        except ValueError:
            raise self.fail(name, expected, value) from None
        if not number.is_integer():
            raise self.fail(name, expected, value)
        result = int(number)
        ok = result in allowed if allowed is not None else low <= result <= high
        if not ok:
            raise self.fail(name, expected, result)
        return result

    def number(self, name: str, default: float, low: float, high: float) -> float:
        expected = f"a number from {low:g} to {high:g}"
        value = self.raw(name)
        if value is None:
            return default
        try:
            result = float(value)
        except ValueError:
            raise self.fail(name, expected, value) from None
        if not low <= result <= high:
            raise self.fail(name, expected, result)
        return result

    def json_value(self, name: str) -> Any:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            # A bare YAML scalar where a list or object was expected.
            return value

    def string_list(
        self,
        name: str,
        item: re.Pattern[str],
        expected_item: str,
        min_items: int,
        max_items: int,
        default: tuple[str, ...] | None = None,
    ) -> tuple[str, ...]:
        expected = f"a list of {min_items} to {max_items} {expected_item}"
        value = self.json_value(name)
        if value is None:
            if default is not None:
                return default
            raise ConfigError(f"{self.key(name)} is required: set it to {expected}")
        if not isinstance(value, list) or not min_items <= len(value) <= max_items:
            raise self.fail(name, expected, value)
        for entry in value:
            if not isinstance(entry, str) or not item.match(entry):
                raise self.fail(name, expected, entry)
        if len(set(value)) != len(value):
            raise self.fail(name, expected + " without repeats", value)
        return tuple(value)

    def date(self, name: str) -> dt.date:
        expected = "a date in the form YYYY-MM-DD"
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{self.key(name)} is required: set it to {expected}")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.fail(name, expected, value) from None

    def mapping(
        self, name: str, keys: tuple[str, ...], item: re.Pattern[str], default: Mapping[str, str]
    ) -> dict[str, str]:
        expected = "an object with exactly the keys " + ", ".join(keys) + " mapped to metric names"
        value = self.json_value(name)
        if value is None:
            return dict(default)
        if not isinstance(value, dict) or set(value) != set(keys):
            raise self.fail(name, expected, value)
        for entry in value.values():
            if not isinstance(entry, str) or not item.match(entry):
                raise self.fail(name, expected, value)
        return {k: value[k] for k in keys}


def parse_settings(lookup: Callable[[str], str | None], stack: str) -> StackSettings:
    """Builds and validates the settings from raw config values.

    `lookup` takes a full key (`securebase-analytics:owner`, `aws:region`) and
    returns its raw string value or None.
    """
    values = _Values(lookup)
    aws = _Values(lookup, namespace="aws")

    environment = values.choice("environment", ENVIRONMENTS)
    if environment != stack:
        raise ConfigError(
            f"{values.key('environment')} must match the stack name {stack!r}; got {environment!r}"
        )

    webhook = values.raw("alertWebhookUrl")
    if webhook is None and environment == "production":
        # Emails alone page nobody: production's alarms must reach the on-call rotation.
        raise ConfigError(
            f"{values.key('alertWebhookUrl')} is required in production (alarms page the "
            "on-call rotation through it): set it with `pulumi config set --secret "
            f"{values.key('alertWebhookUrl')} https://events.pagerduty.com/integration/<key>/enqueue "
            "--stack production`"
        )
    if webhook is not None and not webhook.startswith("https://"):
        # Never echo the value: it carries the integration key.
        raise ConfigError(
            f"{values.key('alertWebhookUrl')} must be an https:// URL set with "
            "`pulumi config set --secret`; got a value that is not one"
        )

    settings = StackSettings(
        stack=stack,
        environment=environment,
        region=aws.string("region", _REGION, "an AWS region such as us-east-1"),
        owner=values.string("owner", _TAG_VALUE, "a tag value of 1 to 256 characters"),
        cost_center=values.string("costCenter", _TAG_VALUE, "a tag value of 1 to 256 characters"),
        log_retention_days=values.integer("logRetentionDays", 30, allowed=LOG_RETENTION_DAYS),
        hourly_retention_days=values.integer("hourlyRetentionDays", 14, low=7, high=90),
        report_retention_days=values.integer("reportRetentionDays", 90, low=1, high=365),
        alert_emails=values.string_list("alertEmails", _EMAIL, "email addresses", 1, 10),
        alert_webhook_url=pulumi.Output.secret(webhook) if webhook is not None else None,
        cors_allowed_origins=values.string_list(
            "corsAllowedOrigins", _ORIGIN, "https:// origins without a path", 1, 10
        ),
        api_throttle_rate_limit=values.number("apiThrottleRateLimit", 100, 1, 10000),
        api_throttle_burst_limit=values.integer("apiThrottleBurstLimit", 200, low=1, high=5000),
        report_url_expiry_seconds=values.integer("reportUrlExpirySeconds", 900, low=60, high=3600),
        report_max_pending_per_tenant=values.integer(
            "reportMaxPendingPerTenant", 5, low=1, high=100
        ),
        report_sender=values.string("reportSender", _EMAIL, "an email address"),
        ses_identity=values.string(
            "sesIdentity", _DOMAIN, "the SES-verified domain the sender belongs to"
        ),
        report_recipient_domains=values.string_list(
            "reportRecipientDomains", _DOMAIN, "domain names", 0, 20, default=()
        ),
        report_emails_per_day=values.integer("reportEmailsPerDay", 200, low=1, high=10000),
        phase2_customers_table=values.string(
            "phase2CustomersTable", _AWS_NAME, "a DynamoDB table name"
        ),
        cost_refresh_hours=values.integer("costRefreshHours", 6, low=1, high=24),
        cache_ttl_seconds=values.integer("cacheTtlSeconds", 300, low=0, high=86400),
        jwt=_parse_jwt(values),
        usage_source=UsageSourceSettings(
            namespace=values.string(
                "usageNamespace", _CW_NAME, "a CloudWatch namespace", "SecureBase/Platform"
            ),
            tenant_dimension=values.string(
                "usageTenantDimension", _CW_NAME, "a CloudWatch dimension name", "CustomerId"
            ),
            metric_names=values.mapping(
                "usageMetricNames", USAGE_METRICS, _CW_NAME, DEFAULT_USAGE_METRIC_NAMES
            ),
        ),
        aggregator=_parse_aggregator(values),
        alarms=AlarmSettings(
            function_errors_per_hour=values.integer("alarmFunctionErrorsPerHour", 5, 1, 1000),
            duration_percent_of_timeout=values.integer(
                "alarmDurationPercentOfTimeout", 80, 10, 100
            ),
            table_throttles_per_5_minutes=values.integer(
                "alarmTableThrottlesPer5Minutes", 5, 1, 1000
            ),
            api_5xx_rate_percent=values.number("alarmApi5xxRatePercent", 1, 0.1, 100),
            api_latency_p95_ms=values.integer("alarmApiLatencyP95Ms", 500, 50, 30000),
            report_latency_p95_ms=values.integer("alarmReportLatencyP95Ms", 25000, 1000, 30000),
            failed_reports_per_hour=values.integer("alarmFailedReportsPerHour", 3, 0, 1000),
            aggregator_missing_hours=values.integer("alarmAggregatorMissingHours", 2, 1, 24),
        ),
        phase2=_parse_phase2(values),
        lambda_concurrency_quota=values.integer(
            "lambdaConcurrencyQuota", 1000, low=10, high=1_000_000
        ),
    )
    _check_reserved_concurrency(values, settings)
    return settings


def _check_reserved_concurrency(values: _Values, settings: StackSettings) -> None:
    """Refuses a stack whose functions would reserve more than the account can spare.

    Lambda rejects a reserved concurrency that leaves fewer than 100 executions
    unreserved, so the first deploy would fail part way through.
    """
    reserved = reserved_concurrency_by_function(settings)
    total = sum(reserved.values())
    quota = settings.lambda_concurrency_quota
    if quota - total >= LAMBDA_UNRESERVED_MINIMUM:
        return
    shard_key = values.key("aggregatorShardConcurrency")
    parts = ", ".join(
        f"{key} {count}" + (f" ({shard_key})" if key == AGGREGATOR_SHARD.key else "")
        for key, count in sorted(reserved.items(), key=lambda item: (-item[1], item[0]))
    )
    key = values.key("lambdaConcurrencyQuota")
    raise ConfigError(
        f"{key} is {quota}: the functions reserve {total} concurrent executions ({parts}) and "
        f"Lambda keeps {LAMBDA_UNRESERVED_MINIMUM} unreserved, so the account's quota must be "
        f"at least {total + LAMBDA_UNRESERVED_MINIMUM}; request a higher 'Concurrent executions' "
        f"quota in Service Quotas and set {key} to it (`aws lambda get-account-settings` shows "
        f"AccountLimit.ConcurrentExecutions), or lower {shard_key}"
    )


def _parse_aggregator(values: _Values) -> AggregatorSettings:
    # Whole GetMetricData requests (125 tenants x 4 metrics = 500 queries) per shard.
    batch, most = TENANTS_PER_QUERY_BATCH, MAX_TENANTS_PER_SHARD
    per_shard = values.integer("aggregatorTenantsPerShard", 1000, low=batch, high=most)
    if per_shard % batch:
        raise values.fail(
            "aggregatorTenantsPerShard", f"a multiple of {batch} from {batch} to {most}", per_shard
        )
    return AggregatorSettings(
        shard_threshold_tenants=values.integer(
            "aggregatorShardThresholdTenants", 5000, low=per_shard, high=10_000_000
        ),
        tenants_per_shard=per_shard,
        # An SQS event source mapping's maximum concurrency is 2 to 1,000.
        shard_concurrency=values.integer("aggregatorShardConcurrency", 20, low=2, high=1000),
        shard_max_attempts=values.integer("aggregatorShardMaxAttempts", 3, low=1, high=10),
        write_concurrency=values.integer("aggregatorWriteConcurrency", 4, low=1, high=32),
    )


def _parse_jwt(values: _Values) -> JwtSettings:
    secret_name = values.optional_string(
        "jwtSecretName", _SECRET_NAME, "a Secrets Manager secret name"
    )
    jwks_url = values.raw("jwtJwksUrl")
    if jwks_url is not None and not jwks_url.startswith("https://"):
        raise values.fail("jwtJwksUrl", "an https:// URL", jwks_url)
    if (secret_name is None) == (jwks_url is None):
        raise ConfigError(
            f"exactly one of {values.key('jwtSecretName')} (HS256 secret in Secrets Manager) "
            f"or {values.key('jwtJwksUrl')} (RS256/ES256 keys) must be set; "
            f"got {'both' if secret_name else 'neither'}"
        )
    issuer = values.raw("jwtIssuer")
    if issuer is None:
        raise ConfigError(f"{values.key('jwtIssuer')} is required: set it to the token issuer")
    return JwtSettings(
        issuer=issuer,
        audience=values.string(
            "jwtAudience", re.compile(r"^\S{1,256}$"), "an audience without spaces"
        ),
        tenant_claim=values.string(
            "jwtTenantClaim", re.compile(r"^[A-Za-z_][\w:.-]{0,63}$"), "a claim name", "customer_id"
        ),
        secret_name=secret_name,
        jwks_url=jwks_url,
        max_token_lifetime_hours=values.integer("jwtMaxTokenLifetimeHours", 12, low=1, high=24),
    )


def _parse_phase2(values: _Values) -> Phase2Settings:
    kind = values.choice("phase2ApiType", ("rest", "http"), default="rest")
    if kind == "rest":
        api = Phase2ApiSettings(
            kind="rest",
            name=values.string("phase2ApiName", _AWS_NAME, "the REST API's name"),
            api_id=None,
        )
    else:
        api = Phase2ApiSettings(
            kind="http",
            name=None,
            api_id=values.string(
                "phase2ApiId", _HTTP_API_ID, "the HTTP API's id (10 lowercase letters or digits)"
            ),
        )
    return Phase2Settings(
        aurora_cluster_id=values.string(
            "phase2AuroraClusterId", re.compile(r"^[a-z][a-z0-9-]{0,62}$"), "an Aurora cluster id"
        ),
        function_names=values.string_list(
            "phase2FunctionNames", _AWS_NAME, "Lambda function names", 1, 20
        ),
        api=api,
        table_names=values.string_list(
            "phase2TableNames", _AWS_NAME, "DynamoDB table names", 1, 20
        ),
        window_start=values.date("phase2WindowStart"),
        window_days=values.integer("phase2WindowDays", 7, low=1, high=90),
        lookback_hours=values.integer("phase2LookbackHours", 24, low=1, high=336),
        thresholds=Phase2Thresholds(
            lambda_error_rate_percent=values.number("phase2LambdaErrorRatePercent", 5, 0, 100),
            lambda_max_throttles=values.integer("phase2LambdaMaxThrottles", 0, 0, 1_000_000),
            api_5xx_rate_percent=values.number("phase2Api5xxRatePercent", 1, 0, 100),
            api_latency_ms=values.integer("phase2ApiLatencyMs", 1000, 1, 60_000),
            aurora_cpu_percent=values.number("phase2AuroraCpuPercent", 80, 1, 100),
            aurora_max_connections=values.integer("phase2AuroraMaxConnections", 500, 1, 100_000),
        ),
    )


def load_settings() -> StackSettings:
    """Reads the current stack's config through the Pulumi engine."""

    def lookup(full_key: str) -> str | None:
        namespace, key = full_key.split(":", 1)
        return pulumi.Config(namespace).get(key)

    return parse_settings(lookup, pulumi.get_stack())
