import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.settings import LOG_RETENTION_DAYS, ConfigError, parse_settings
from tests.pulumi_program import RUNBOOK_SECRETS, STACKS, run_program, secret_keys, stack_config


def settings_with(stack: str = "staging", **overrides: str | None):
    config = stack_config(stack)
    for key, value in overrides.items():
        full_key = key.replace("__", ":") if "__" in key else f"securebase-analytics:{key}"
        if value is None:
            config.pop(full_key, None)
        else:
            config[full_key] = value
    return parse_settings(config.get, stack)


def error_for(stack: str = "staging", **overrides: str | None) -> str:
    with pytest.raises(ConfigError) as raised:
        settings_with(stack, **overrides)
    return str(raised.value)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_are_valid(stack):
    settings = settings_with(stack)
    assert settings.environment == stack
    assert settings.is_production == (stack == "production")
    assert settings.resource_name("metrics") == f"securebase-{stack}-metrics"
    assert settings.tags == {
        "Project": "securebase-analytics",
        "Environment": stack,
        "Owner": "platform-team@securebase.example.com",
        "CostCenter": "CC-4127-analytics",
    }


def test_staging_values_are_typed():
    settings = settings_with("staging")
    assert settings.region == "us-east-1"
    assert settings.log_retention_days == 14
    assert settings.alert_emails == ("devops@securebase.example.com",)
    assert settings.api_throttle_rate_limit == 50.0
    assert settings.api_throttle_burst_limit == 100
    assert settings.jwt.secret_name == "securebase/staging/jwt-signing-key"
    assert settings.jwt.jwks_url is None
    assert settings.usage_source.metric_names["storage_gb"] == "StorageBytes"
    assert settings.phase2.window_start == dt.date(2026, 11, 30)
    assert settings.phase2.window_end == dt.date(2026, 12, 7)
    assert settings.phase2.api.kind == "rest"
    assert settings.phase2.function_names[0] == "securebase-staging-auth-v2"


def test_every_committed_key_is_read():
    """A key in a stack file that the program never reads is a typo or dead config."""
    read: set[str] = set()
    config = stack_config("production")

    def lookup(key):
        read.add(key)
        return config.get(key)

    parse_settings(lookup, "production")
    assert set(config) <= read, f"unread keys: {sorted(set(config) - read)}"


def test_log_retention_must_be_a_cloudwatch_value():
    allowed = ", ".join(str(v) for v in LOG_RETENTION_DAYS)
    assert error_for(logRetentionDays="31") == (
        f"securebase-analytics:logRetentionDays must be one of {allowed}; got 31"
    )


@given(st.integers(min_value=-1000, max_value=5000).filter(lambda v: v not in LOG_RETENTION_DAYS))
def test_any_other_retention_is_rejected_naming_the_key(days):
    message = error_for(logRetentionDays=str(days))
    assert message.startswith("securebase-analytics:logRetentionDays must be one of 1, 3, 5")
    assert message.endswith(f"got {days}")


def test_numbers_written_as_floats_are_accepted():
    # Pulumi mocks and some CLIs hand whole numbers over as "30.0".
    assert settings_with(logRetentionDays="30.0").log_retention_days == 30


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("logRetentionDays", "thirty", "logRetentionDays must be one of 1, 3"),
        (
            "hourlyRetentionDays",
            "3",
            "hourlyRetentionDays must be a whole number from 7 to 90; got 3",
        ),
        (
            "reportRetentionDays",
            "400",
            "reportRetentionDays must be a whole number from 1 to 365; got 400",
        ),
        (
            "reportUrlExpirySeconds",
            "7200",
            "reportUrlExpirySeconds must be a whole number from 60 to 3600; got 7200",
        ),
        (
            "jwtMaxTokenLifetimeHours",
            "48",
            "jwtMaxTokenLifetimeHours must be a whole number from 1 to 24; got 48",
        ),
        (
            "reportMaxPendingPerTenant",
            "0",
            "reportMaxPendingPerTenant must be a whole number from 1 to 100; got 0",
        ),
        (
            "reportEmailsPerDay",
            "0",
            "reportEmailsPerDay must be a whole number from 1 to 10000; got 0",
        ),
        (
            "reportRecipientDomains",
            '["partner example"]',
            "reportRecipientDomains must be a list of 0 to 20 domain names; got 'partner example'",
        ),
        (
            "apiThrottleRateLimit",
            "0",
            "apiThrottleRateLimit must be a number from 1 to 10000; got 0.0",
        ),
        (
            "apiThrottleBurstLimit",
            "1.5",
            "apiThrottleBurstLimit must be a whole number from 1 to 5000; got '1.5'",
        ),
        ("costRefreshHours", "48", "costRefreshHours must be a whole number from 1 to 24; got 48"),
        (
            "alertEmails",
            '["not-an-email"]',
            "alertEmails must be a list of 1 to 10 email addresses; got 'not-an-email'",
        ),
        (
            "alertEmails",
            "devops@securebase.example.com",
            "alertEmails must be a list of 1 to 10 email addresses",
        ),
        ("alertEmails", "[]", "alertEmails must be a list of 1 to 10 email addresses; got []"),
        (
            "corsAllowedOrigins",
            '["http://portal.example.com"]',
            "corsAllowedOrigins must be a list of 1 to 10 https:// origins",
        ),
        (
            "corsAllowedOrigins",
            '["https://a.example.com", "https://a.example.com"]',
            "without repeats",
        ),
        ("reportSender", "reports", "reportSender must be an email address; got 'reports'"),
        ("environment", "dev", "environment must be one of staging, production; got 'dev'"),
        (
            "environment",
            "production",
            "environment must match the stack name 'staging'; got 'production'",
        ),
        ("phase2ApiType", "websocket", "phase2ApiType must be one of rest, http; got 'websocket'"),
        (
            "phase2WindowStart",
            "30/11/2026",
            "phase2WindowStart must be a date in the form YYYY-MM-DD; got '30/11/2026'",
        ),
        ("phase2WindowDays", "0", "phase2WindowDays must be a whole number from 1 to 90; got 0"),
        (
            "phase2FunctionNames",
            '["ok", "bad name"]',
            "phase2FunctionNames must be a list of 1 to 20 Lambda function names; got 'bad name'",
        ),
        (
            "phase2LambdaErrorRatePercent",
            "150",
            "phase2LambdaErrorRatePercent must be a number from 0 to 100; got 150.0",
        ),
        (
            "usageMetricNames",
            '{"api_calls": "ApiCalls"}',
            "usageMetricNames must be an object with exactly the keys api_calls, storage_gb, compute_hours, data_transfer_gb",
        ),
        (
            "aggregatorTenantsPerShard",
            "1100",
            "aggregatorTenantsPerShard must be a multiple of 125 from 125 to 3000; got 1100",
        ),
        (
            "aggregatorTenantsPerShard",
            "5000",
            "aggregatorTenantsPerShard must be a whole number from 125 to 3000; got 5000",
        ),
        (
            "aggregatorShardThresholdTenants",
            "500",
            "aggregatorShardThresholdTenants must be a whole number from 1000 to 10000000; got 500",
        ),
        (
            "aggregatorShardConcurrency",
            "1",
            "aggregatorShardConcurrency must be a whole number from 2 to 1000; got 1",
        ),
        (
            "aggregatorShardMaxAttempts",
            "0",
            "aggregatorShardMaxAttempts must be a whole number from 1 to 10; got 0",
        ),
        (
            "aggregatorWriteConcurrency",
            "64",
            "aggregatorWriteConcurrency must be a whole number from 1 to 32; got 64",
        ),
        (
            "aws__region",
            "Mars-1",
            "aws:region must be an AWS region such as us-east-1; got 'Mars-1'",
        ),
    ],
)
def test_bad_values_name_the_key_the_allowed_values_and_the_value(key, value, expected):
    message = error_for(**{key: value})
    assert expected in message
    full_key = key.replace("__", ":") if "__" in key else f"securebase-analytics:{key}"
    assert message.startswith(full_key) or f" {full_key} " in f" {message}"


@pytest.mark.parametrize(
    "key",
    [
        "owner",
        "costCenter",
        "jwtIssuer",
        "reportSender",
        "phase2AuroraClusterId",
        "alertEmails",
        "aws__region",
    ],
)
def test_missing_required_keys_are_named(key):
    full_key = key.replace("__", ":") if "__" in key else f"securebase-analytics:{key}"
    assert error_for(**{key: None}).startswith(f"{full_key} is required")


def test_the_aggregator_scales_as_each_stack_says():
    staging, production = settings_with("staging"), settings_with("production")
    concurrency = (staging.aggregator.shard_concurrency, production.aggregator.shard_concurrency)
    assert concurrency == (5, 20)
    for settings in (staging, production):
        assert settings.aggregator.shard_threshold_tenants == 5000
        assert settings.aggregator.tenants_per_shard == 1000
        assert settings.aggregator.shard_max_attempts == 3
        assert settings.aggregator.write_concurrency == 4


def test_defaults_apply_to_optional_keys():
    settings = settings_with(
        logRetentionDays=None,
        usageMetricNames=None,
        phase2WindowDays=None,
        cacheTtlSeconds=None,
        reportMaxPendingPerTenant=None,
        jwtMaxTokenLifetimeHours=None,
        reportEmailsPerDay=None,
        reportRecipientDomains=None,
    )
    assert settings.jwt.max_token_lifetime_hours == 12
    assert settings.report_emails_per_day == 200
    assert settings.report_recipient_domains == ()
    assert settings.log_retention_days == 30
    assert settings.report_max_pending_per_tenant == 5
    assert settings.phase2.window_days == 7
    assert settings.cache_ttl_seconds == 300
    assert settings.usage_source.metric_names == {
        "api_calls": "ApiCalls",
        "storage_gb": "StorageBytes",
        "compute_hours": "ComputeSeconds",
        "data_transfer_gb": "DataTransferBytes",
    }


def test_jwt_needs_exactly_one_key_source():
    both = error_for(jwtJwksUrl="https://auth.example.com/.well-known/jwks.json")
    assert both == (
        "exactly one of securebase-analytics:jwtSecretName (HS256 secret in Secrets Manager) or "
        "securebase-analytics:jwtJwksUrl (RS256/ES256 keys) must be set; got both"
    )
    assert error_for(jwtSecretName=None).endswith("got neither")
    jwks = settings_with(
        jwtSecretName=None, jwtJwksUrl="https://auth.example.com/.well-known/jwks.json"
    )
    assert jwks.jwt.jwks_url == "https://auth.example.com/.well-known/jwks.json"
    assert "jwtJwksUrl must be an https:// URL" in error_for(
        jwtSecretName=None, jwtJwksUrl="http://auth.example.com/jwks"
    )


def test_http_phase2_api_needs_its_id():
    assert error_for(phase2ApiType="http").startswith(
        "securebase-analytics:phase2ApiId is required"
    )
    settings = settings_with(phase2ApiType="http", phase2ApiId="abcde12345")
    assert (settings.phase2.api.kind, settings.phase2.api.api_id, settings.phase2.api.name) == (
        "http",
        "abcde12345",
        None,
    )


def test_a_bad_webhook_secret_is_rejected_without_echoing_it():
    message = error_for(alertWebhookUrl="http://hooks.example.com/T000/SECRET-TOKEN")
    assert "alertWebhookUrl must be an https:// URL" in message
    assert "SECRET-TOKEN" not in message


def test_production_refuses_to_deploy_without_a_paging_webhook():
    command = (
        "`pulumi config set --secret securebase-analytics:alertWebhookUrl "
        "https://events.pagerduty.com/integration/<key>/enqueue --stack production`"
    )
    assert error_for("production", alertWebhookUrl=None) == (
        "securebase-analytics:alertWebhookUrl is required in production (alarms page the "
        f"on-call rotation through it): set it with {command}"
    )
    with pytest.raises(ConfigError, match=re.escape(command)):
        run_program("production", {"alertWebhookUrl": None})


def test_staging_may_go_without_a_webhook():
    assert settings_with("staging", alertWebhookUrl=None).alert_webhook_url is None


@pytest.mark.parametrize("stack", STACKS)
def test_the_runbooks_webhook_reaches_the_program_as_a_secret(stack):
    config = stack_config(stack)
    assert (
        config["securebase-analytics:alertWebhookUrl"]
        == (RUNBOOK_SECRETS[stack]["securebase-analytics:alertWebhookUrl"])
    )
    assert secret_keys(stack, config) == ["securebase-analytics:alertWebhookUrl"]
    assert settings_with(stack).alert_webhook_url is not None


def test_reserved_concurrency_must_leave_lambdas_100_unreserved():
    # Production reserves 42: reporter 20, shards 20, aggregator 1, monitor 1.
    assert settings_with("production", lambdaConcurrencyQuota="142").lambda_concurrency_quota == 142
    assert error_for("production", lambdaConcurrencyQuota="141") == (
        "securebase-analytics:lambdaConcurrencyQuota is 141: the functions reserve 42 concurrent "
        "executions (aggregator-shard 20 (securebase-analytics:aggregatorShardConcurrency), "
        "reporter 20, aggregator 1, phase2-monitor 1) and Lambda keeps 100 unreserved, so the "
        "account's quota must be at least 142; request a higher 'Concurrent executions' quota in "
        "Service Quotas and set securebase-analytics:lambdaConcurrencyQuota to it (`aws lambda "
        "get-account-settings` shows AccountLimit.ConcurrentExecutions), or lower "
        "securebase-analytics:aggregatorShardConcurrency"
    )
    # More shards at once need a bigger quota; staging reserves 27.
    assert "must be at least 1122" in error_for("production", aggregatorShardConcurrency="1000")
    assert settings_with("staging", lambdaConcurrencyQuota="127").lambda_concurrency_quota == 127
    assert "must be at least 127" in error_for("staging", lambdaConcurrencyQuota="126")


def test_the_concurrency_quota_defaults_to_lambdas_default_of_1000():
    assert settings_with("production", lambdaConcurrencyQuota=None).lambda_concurrency_quota == 1000


def test_the_program_fails_with_the_message_naming_the_key():
    with pytest.raises(
        ConfigError, match=re.escape("securebase-analytics:logRetentionDays must be one of")
    ):
        run_program("production", {"logRetentionDays": "31"})
