"""Phase2Monitor under mocks, for both stacks' real config."""

import datetime as dt
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.phase2_monitor import monitor_config, schedule_window
from components.settings import parse_settings
from handlers.shared.monitoring.config import load_config
from tests.pulumi_program import (
    ACCOUNT_ID,
    PROGRAM_NOW,
    STACKS,
    Deployment,
    Resource,
    run_program,
    stack_config,
)

FUNCTION = "aws:lambda/function:Function"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
BUCKET = "aws:s3/bucket:Bucket"
COMPONENT = "securebase:analytics:Phase2Monitor"
REGION = "us-east-1"
TODAY = PROGRAM_NOW.date()  # the day the program runs under the mocks
FUTURE_START = TODAY + dt.timedelta(days=30)


@pytest.fixture(scope="module", params=STACKS)
def deployment(request) -> Deployment:
    return run_program(request.param, {"phase2WindowStart": FUTURE_START.isoformat()})


def prefix(deployment: Deployment) -> str:
    return f"securebase-{deployment.stack}"


def expected_config(env: str, start: dt.date) -> dict:
    staging = env == "staging"
    return {
        "aurora_cluster_id": f"securebase-{env}-aurora",
        "function_names": [
            f"securebase-{env}-auth-v2",
            f"securebase-{env}-billing-worker",
            f"securebase-{env}-metrics-aggregation",
        ],
        "api": {"kind": "rest", "name": f"securebase-{env}-api"},
        "table_names": [
            f"securebase-{env}-customers",
            f"securebase-{env}-api-keys",
            f"securebase-{env}-invoices",
            f"securebase-{env}-usage-metrics",
        ],
        "lookback_hours": 24,
        "window": {"start": start.isoformat(), "days": 7},
        "thresholds": {
            "lambda_error_rate_percent": 5,
            "lambda_max_throttles": 0,
            "api_5xx_rate_percent": 2 if staging else 1,
            "api_latency_ms": 1500 if staging else 1000,
            "aurora_cpu_percent": 80,
            "aurora_max_connections": 90 if staging else 1000,
        },
    }


def monitor_function(deployment: Deployment) -> Resource:
    name = f"{prefix(deployment)}-phase2-monitor"
    return deployment.one(FUNCTION, lambda r: r.inputs["name"] == name)


def owned(deployment: Deployment, type_: str) -> list[Resource]:
    component = deployment.one(COMPONENT)
    return [r for r in deployment.children_of(component) if r.type == type_]


def test_the_config_output_is_the_pinned_document_from_the_stack_settings(deployment):
    assert deployment.outputs["monitor_config"] == expected_config(deployment.stack, FUTURE_START)


@pytest.mark.parametrize("stack", STACKS)
def test_the_committed_config_gives_the_pinned_document(stack):
    config = stack_config(stack)
    settings = parse_settings(config.get, stack)
    start = {"staging": dt.date(2026, 11, 30), "production": dt.date(2026, 12, 1)}[stack]
    assert monitor_config(settings.phase2) == expected_config(stack, start)


def test_the_function_gets_the_config_its_handler_accepts(deployment):
    variables = monitor_function(deployment).inputs["environment"]["variables"]
    assert variables == {
        "ENVIRONMENT": deployment.stack,
        "LOG_LEVEL": "INFO",
        "METRICS_NAMESPACE": "SecureBase/Analytics",
        "MONITOR_CONFIG": json.dumps(expected_config(deployment.stack, FUTURE_START)),
        "MONITOR_BUCKET": f"{prefix(deployment)}-phase2-monitor-{ACCOUNT_ID}",
        "MONITOR_PREFIX": "phase2-monitor/",
        "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{prefix(deployment)}-analytics-alerts",
    }
    config = load_config(variables["MONITOR_CONFIG"], "MONITOR_CONFIG")
    assert config.api.dimension == "ApiName"
    assert config.window is not None and config.window.start == FUTURE_START


def test_the_component_owns_its_function_bucket_schedule_alarms_and_dashboard(deployment):
    component = deployment.one(COMPONENT)
    assert monitor_function(deployment).parent == component.urn
    assert {r.type for r in deployment.children_of(component)} >= {
        FUNCTION,
        SCHEDULE,
        ALARM,
        DASHBOARD,
        "securebase:analytics:SecureBucket",
    }


def test_reports_go_to_a_private_bucket_that_expires_them_after_30_days(deployment):
    bucket = deployment.one(BUCKET, lambda r: r.name == "phase2-monitor-reports")
    assert bucket.inputs["bucket"] == f"{prefix(deployment)}-phase2-monitor-{ACCOUNT_ID}"
    assert bucket.protect == (deployment.stack == "production")
    assert deployment.outputs["monitor_bucket"] == bucket.inputs["bucket"]
    lifecycle = deployment.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        lambda r: r.name == "phase2-monitor-reports-lifecycle",
    )
    assert lifecycle.inputs["rules"][0]["expiration"] == {"days": 30}
    encryption = deployment.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        lambda r: r.name == "phase2-monitor-reports-encryption",
    )
    default = encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    if deployment.stack == "production":
        assert default == {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/analytics-data-data-key-key-id",
        }
    else:
        assert default == {"sseAlgorithm": "AES256"}


def test_access_to_the_reports_is_logged_to_the_stacks_log_bucket(deployment):
    logging = deployment.one(
        "aws:s3/bucketLogging:BucketLogging",
        lambda r: r.name == "phase2-monitor-reports-access-logging",
    )
    monitor_bucket = deployment.outputs["monitor_bucket"]
    assert logging.inputs == {
        "bucket": monitor_bucket,
        "targetBucket": deployment.outputs["access_log_bucket"],
        "targetPrefix": f"{monitor_bucket}/",
    }
    secure_bucket = deployment.by_urn(logging.parent)
    assert deployment.by_urn(secure_bucket.parent).type == COMPONENT


def test_the_schedule_runs_every_6_hours_within_the_observation_window(deployment):
    name = f"{prefix(deployment)}-phase2-monitor"
    schedule = deployment.one(SCHEDULE, lambda r: r.inputs["name"] == name).inputs
    end = FUTURE_START + dt.timedelta(days=7)
    assert schedule["scheduleExpression"] == "rate(6 hours)"
    assert schedule["startDate"] == f"{FUTURE_START.isoformat()}T00:00:00Z"
    assert schedule["endDate"] == f"{end.isoformat()}T00:00:00Z"
    assert schedule["state"] == "ENABLED"
    assert schedule["actionAfterCompletion"] == "NONE"
    assert schedule["target"] == {
        "arn": monitor_function(deployment).outputs["arn"],
        "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-scheduler",
        "input": json.dumps({"source": "securebase.scheduler", "schedule": name}),
        "retryPolicy": {"maximumRetryAttempts": 2, "maximumEventAgeInSeconds": 21600},
        "deadLetterConfig": {
            "arn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{prefix(deployment)}-analytics-async-failures"
        },
    }


def test_a_window_under_way_starts_now_and_still_ends_on_time():
    start = TODAY - dt.timedelta(days=2)
    deployment = run_program("staging", {"phase2WindowStart": start.isoformat()})
    schedule = deployment.one(
        SCHEDULE, lambda r: r.inputs["name"] == "securebase-staging-phase2-monitor"
    )
    assert "startDate" not in schedule.inputs
    assert schedule.inputs["endDate"] == f"{(start + dt.timedelta(days=7)).isoformat()}T00:00:00Z"
    assert schedule.inputs["state"] == "ENABLED"


def test_a_window_that_is_over_deploys_the_schedule_disabled_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        deployment = run_program("staging", {"phase2WindowStart": "2025-01-01"})
    schedule = deployment.one(
        SCHEDULE, lambda r: r.inputs["name"] == "securebase-staging-phase2-monitor"
    )
    assert schedule.inputs["state"] == "DISABLED"
    assert "startDate" not in schedule.inputs and "endDate" not in schedule.inputs
    assert any("observation window" in record.getMessage() for record in caplog.records)


@given(
    start=st.dates(dt.date(2024, 1, 1), dt.date(2030, 12, 31)),
    days=st.integers(1, 90),
    now=st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2031, 6, 30), timezones=st.just(dt.UTC)),
)
def test_schedule_dates_never_lie_in_the_past_and_always_end_with_the_window(start, days, now):
    window = schedule_window(start, days, now)
    begins = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    ends = begins + dt.timedelta(days=days)
    assert window.enabled == (now < ends)
    if window.enabled:
        assert window.end_date == ends.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (window.start_date is None) == (begins <= now)
        if window.start_date is not None:
            assert window.start_date == begins.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        assert window.start_date is None and window.end_date is None


def alarms(deployment: Deployment) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in owned(deployment, ALARM)}


def test_every_phase2_alarm_notifies_the_alerts_topic(deployment):
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{prefix(deployment)}-analytics-alerts"
    found = alarms(deployment)
    assert len(found) == 2 + 3 * 2 + 2 + 4
    for name, alarm in found.items():
        assert name.startswith(f"{prefix(deployment)}-phase2-")
        assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic], name
        assert alarm["actionsEnabled"] is True, name


def test_aurora_alarms_use_the_cluster_and_thresholds(deployment):
    found = alarms(deployment)
    cluster = {"DBClusterIdentifier": f"{prefix(deployment)}-aurora"}
    cpu = found[f"{prefix(deployment)}-phase2-aurora-cpu"]
    connections = found[f"{prefix(deployment)}-phase2-aurora-connections"]
    assert (cpu["namespace"], cpu["metricName"], cpu["dimensions"]) == (
        "AWS/RDS",
        "CPUUtilization",
        cluster,
    )
    assert cpu["threshold"] == 80
    assert (connections["metricName"], connections["dimensions"]) == (
        "DatabaseConnections",
        cluster,
    )
    assert connections["threshold"] == {"staging": 90, "production": 1000}[deployment.stack]


@pytest.mark.parametrize("function", ["auth-v2", "billing-worker", "metrics-aggregation"])
def test_phase2_functions_alarm_on_error_rate_and_throttles(deployment, function):
    found = alarms(deployment)
    function_name = {"FunctionName": f"{prefix(deployment)}-{function}"}
    rate = found[f"{prefix(deployment)}-phase2-{function}-error-rate"]
    metrics = {q["id"]: q.get("metric") for q in rate["metricQueries"]}
    assert metrics["errors"]["metricName"] == "Errors"
    assert metrics["total"]["metricName"] == "Invocations"
    assert metrics["errors"]["dimensions"] == metrics["total"]["dimensions"] == function_name
    assert rate["threshold"] == 5
    throttles = found[f"{prefix(deployment)}-phase2-{function}-throttles"]
    assert (throttles["metricName"], throttles["dimensions"], throttles["threshold"]) == (
        "Throttles",
        function_name,
        0,
    )


def test_a_rest_api_is_watched_by_name_with_rest_metric_names(deployment):
    found = alarms(deployment)
    api = {"ApiName": f"{prefix(deployment)}-api"}
    rate = found[f"{prefix(deployment)}-phase2-api-5xx-rate"]
    metrics = {q["id"]: q.get("metric") for q in rate["metricQueries"]}
    assert (metrics["errors"]["metricName"], metrics["errors"]["dimensions"]) == ("5XXError", api)
    assert (metrics["total"]["metricName"], metrics["total"]["dimensions"]) == ("Count", api)
    latency = found[f"{prefix(deployment)}-phase2-api-latency"]
    assert (latency["metricName"], latency["dimensions"], latency["statistic"]) == (
        "Latency",
        api,
        "Average",
    )


def test_an_http_api_is_watched_by_id_with_http_metric_names():
    deployment = run_program("production", {"phase2ApiType": "http", "phase2ApiId": "abcde12345"})
    found = alarms(deployment)
    rate = found["securebase-production-phase2-api-5xx-rate"]
    metrics = {q["id"]: q.get("metric") for q in rate["metricQueries"]}
    assert (metrics["errors"]["metricName"], metrics["errors"]["dimensions"]) == (
        "5xx",
        {"ApiId": "abcde12345"},
    )
    assert found["securebase-production-phase2-api-latency"]["dimensions"] == {
        "ApiId": "abcde12345"
    }
    assert deployment.outputs["monitor_config"]["api"] == {"kind": "http", "id": "abcde12345"}


@pytest.mark.parametrize("table", ["customers", "api-keys", "invoices", "usage-metrics"])
def test_phase2_tables_alarm_on_any_read_or_write_throttle(deployment, table):
    alarm = alarms(deployment)[f"{prefix(deployment)}-phase2-{table}-throttles"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["result"]["expression"] == "SUM([reads, writes])"
    assert queries["reads"]["metric"]["metricName"] == "ReadThrottleEvents"
    assert queries["writes"]["metric"]["metricName"] == "WriteThrottleEvents"
    for query_id in ("reads", "writes"):
        assert queries[query_id]["metric"]["dimensions"] == {
            "TableName": f"{prefix(deployment)}-{table}"
        }
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)


def test_the_phase2_dashboard_shows_every_phase2_resource(deployment):
    name = f"{prefix(deployment)}-phase2"
    board = deployment.one(DASHBOARD, lambda r: r.inputs["dashboardName"] == name)
    body = json.loads(board.inputs["dashboardBody"])
    rows = [row for w in body["widgets"] for row in w["properties"]["metrics"]]

    def dimension_values(dimension: str) -> set[str]:
        return {row[row.index(dimension) + 1] for row in rows if dimension in row}

    env = deployment.stack
    assert dimension_values("DBClusterIdentifier") == {f"securebase-{env}-aurora"}
    assert dimension_values("FunctionName") == {
        f"securebase-{env}-{f}" for f in ("auth-v2", "billing-worker", "metrics-aggregation")
    }
    assert dimension_values("ApiName") == {f"securebase-{env}-api"}
    assert dimension_values("TableName") == {
        f"securebase-{env}-{t}" for t in ("customers", "api-keys", "invoices", "usage-metrics")
    }
    assert deployment.outputs["dashboard_names"]["phase2"] == name
