"""AnalyticsObservability under mocks, for both stacks' real config."""

import json

import pytest
from pulumi.runtime import rpc

from components.alarms import AlarmFactory, Metric
from components.functions import ALL_FUNCTIONS
from tests.pulumi_program import (
    ACCOUNT_ID,
    STACKS,
    Deployment,
    Resource,
    committed_deployment,
    run_program,
)

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
KEY = "aws:kms/key:Key"
QUEUE = "aws:sqs/queue:Queue"
REGION = "us-east-1"
API_ID = "a1b2c3d4e5"
TABLES = ("metrics", "reports", "report-schedules", "report-cache", "report-emails")
COMPONENT = "securebase:analytics:AnalyticsObservability"


@pytest.fixture(scope="module", params=STACKS)
def deployment(request) -> Deployment:
    return committed_deployment(request.param)


def prefix(deployment: Deployment) -> str:
    return f"securebase-{deployment.stack}"


def alarms(deployment: Deployment) -> dict[str, dict]:
    """Alarm name -> inputs, for the alarms this component owns."""
    component = deployment.one(COMPONENT)
    return {
        r.inputs["name"]: r.inputs for r in deployment.children_of(component) if r.type == ALARM
    }


def topic_arn(deployment: Deployment) -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{prefix(deployment)}-analytics-alerts"


def test_log_groups_exist_for_every_function_and_the_api_with_retention(deployment):
    retention = {"staging": 14, "production": 30}[deployment.stack]
    component = deployment.one(COMPONENT)
    groups = {r.inputs["name"]: r for r in deployment.of_type(LOG_GROUP)}
    expected = {spec.log_group_name(prefix(deployment)) for spec in ALL_FUNCTIONS} | {
        f"/aws/apigateway/{prefix(deployment)}-analytics-api-access"
    }
    assert set(groups) == expected
    for group in groups.values():
        assert group.inputs["retentionInDays"] == retention
        assert group.parent == component.urn
    assert deployment.outputs["log_group_names"] == {
        **{spec.key: spec.log_group_name(prefix(deployment)) for spec in ALL_FUNCTIONS},
        "api-access": f"/aws/apigateway/{prefix(deployment)}-analytics-api-access",
    }


def test_every_log_group_is_encrypted_with_the_stacks_logs_key(deployment):
    key = deployment.one(KEY, lambda r: r.name == "analytics-observability-logs-key")
    groups = deployment.of_type(LOG_GROUP)
    assert len(groups) == len(ALL_FUNCTIONS) + 1
    for group in groups:
        assert group.inputs["kmsKeyId"] == key.outputs["arn"], group.name
    alias = deployment.one("aws:kms/alias:Alias", lambda r: r.name.endswith("-logs-key-alias"))
    assert alias.inputs["name"] == f"alias/{prefix(deployment)}-analytics-logs"
    assert alias.inputs["targetKeyId"] == key.outputs["keyId"]


def test_the_logs_key_rotates_and_survives_in_production(deployment):
    key = deployment.one(KEY, lambda r: r.name == "analytics-observability-logs-key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    assert key.protect == (deployment.stack == "production")


def test_cloudwatch_logs_may_use_the_key_for_exactly_this_stacks_log_groups(deployment):
    key = deployment.one(KEY, lambda r: r.name == "analytics-observability-logs-key")
    group_arns = sorted(
        f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group.inputs['name']}"
        for group in deployment.of_type(LOG_GROUP)
    )
    policy = json.loads(key.inputs["policy"])
    [administers, logs] = policy["Statement"]
    assert administers == {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    context = logs["Condition"]["ArnLike"].pop("kms:EncryptionContext:aws:logs:arn")
    assert sorted(context) == group_arns
    assert logs == {
        "Sid": "CloudWatchLogsEncrypt",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{REGION}.amazonaws.com"},
        "Action": [
            "kms:Encrypt*",
            "kms:Decrypt*",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:Describe*",
        ],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}, "ArnLike": {}},
    }


def test_writers_of_the_log_groups_need_no_permission_on_the_logs_key(deployment):
    # CloudWatch Logs encrypts with the key itself; the functions only put log events.
    key_arn = deployment.one(KEY, lambda r: r.name == "analytics-observability-logs-key").outputs[
        "arn"
    ]
    for policy in deployment.of_type("aws:iam/rolePolicy:RolePolicy"):
        assert key_arn not in policy.inputs["policy"], policy.name


def test_log_retention_follows_config():
    deployment = run_program("staging", {"logRetentionDays": "90"})
    assert {g.inputs["retentionInDays"] for g in deployment.of_type(LOG_GROUP)} == {90}


def test_the_alerts_topic_is_encrypted_with_a_rotating_key_cloudwatch_can_use(deployment):
    key = deployment.one(KEY, lambda r: r.name == "analytics-observability-alerts-key")
    topic = deployment.one(TOPIC, lambda r: r.name == "analytics-observability-alerts")
    assert topic.inputs["name"] == f"{prefix(deployment)}-analytics-alerts"
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert key.protect == (deployment.stack == "production")
    policy = json.loads(key.inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["AccountAdministers"]["Principal"] == {
        "AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"
    }
    assert statements["CloudWatchAlarmsPublish"] == {
        "Sid": "CloudWatchAlarmsPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
    }
    # The runbook's webhook has a dead-letter queue encrypted with this key.
    assert statements["SnsDeadLetterQueue"] == {
        "Sid": "SnsDeadLetterQueue",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
    }
    assert deployment.outputs["alerts_topic_arn"] == topic_arn(deployment)


def test_only_this_accounts_alarms_may_publish_as_cloudwatch_over_tls(deployment):
    topic_policy = deployment.one(
        "aws:sns/topicPolicy:TopicPolicy",
        lambda r: r.name == "analytics-observability-alerts-policy",
    )
    policy = json.loads(topic_policy.inputs["policy"])
    assert policy["Statement"] == [
        {
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn(deployment),
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:*"},
            },
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sns:Publish",
            "Resource": topic_arn(deployment),
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]


def test_every_configured_email_is_subscribed(deployment):
    emails = {
        "staging": ["devops@securebase.example.com"],
        "production": ["devops@securebase.example.com", "platform-lead@securebase.example.com"],
    }[deployment.stack]
    subscriptions = [s for s in deployment.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "email"]
    assert sorted(s.inputs["endpoint"] for s in subscriptions) == emails
    for subscription in subscriptions:
        assert subscription.inputs["topic"] == topic_arn(deployment)


def dead_letter_queue_arn(deployment: Deployment) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{prefix(deployment)}-analytics-alerts-webhook-dlq"


def test_undeliverable_pages_wait_in_an_encrypted_dead_letter_queue(deployment):
    webhook = deployment.one(SUBSCRIPTION, lambda r: r.inputs["protocol"] == "https")
    queue = deployment.one(QUEUE, lambda r: r.name == "analytics-observability-alerts-webhook-dlq")
    key = deployment.one(KEY, lambda r: r.name == "analytics-observability-alerts-key")
    assert json.loads(webhook.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": dead_letter_queue_arn(deployment)
    }
    assert queue.inputs["name"] == f"{prefix(deployment)}-analytics-alerts-webhook-dlq"
    # SNS writes only to a queue encrypted with a key whose policy lets it in.
    assert queue.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_only_the_alerts_topic_may_fill_the_dead_letter_queue_over_tls(deployment):
    queue_policy = deployment.one(
        "aws:sqs/queuePolicy:QueuePolicy",
        lambda r: r.name == "analytics-observability-alerts-webhook-dlq-policy",
    )
    queue = dead_letter_queue_arn(deployment)
    assert json.loads(queue_policy.inputs["policy"])["Statement"] == [
        {
            "Sid": "AlertsTopicDeadLetters",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {
                "ArnEquals": {"aws:SourceArn": topic_arn(deployment)},
                "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
            },
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": queue,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]


def test_a_page_in_the_dead_letter_queue_raises_an_alarm(deployment):
    queue_name = f"{prefix(deployment)}-analytics-alerts-webhook-dlq"
    alarm = alarms(deployment)[f"{queue_name}-not-empty"]
    assert alarm["dimensions"] == {"QueueName": queue_name}
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    # Emails still reach the on-call when the paging service is what fails.
    assert alarm["alarmActions"] == [topic_arn(deployment)]


def test_staging_without_a_webhook_has_no_dead_letter_queue_and_no_sns_key_grant():
    deployment = run_program("staging", {"alertWebhookUrl": None})
    alert_subscriptions = [
        s for s in deployment.of_type(SUBSCRIPTION) if "email-feedback" not in s.name
    ]
    assert [s.inputs["protocol"] for s in alert_subscriptions] == ["email"]
    assert [q for q in deployment.of_type(QUEUE) if "webhook" in q.name] == []
    assert not any("webhook" in name for name in alarms(deployment))
    key = deployment.one(KEY, lambda r: r.name == "analytics-observability-alerts-key")
    sids = [s["Sid"] for s in json.loads(key.inputs["policy"])["Statement"]]
    assert sids == ["AccountAdministers", "CloudWatchAlarmsPublish"]


def test_a_webhook_is_subscribed_as_a_secret_when_configured():
    url = "https://events.pagerduty.com/integration/abc123/enqueue"
    deployment = run_program("production", {"alertWebhookUrl": url})
    webhook = deployment.one(SUBSCRIPTION, lambda r: r.inputs["protocol"] == "https")
    assert rpc.is_rpc_secret(webhook.inputs["endpoint"])
    assert rpc.unwrap_rpc_secret(webhook.inputs["endpoint"]) == url
    assert webhook.inputs["endpointAutoConfirms"] is True
    for resource in deployment.resources:
        assert url not in json.dumps(resource.inputs.get("environment", {})), resource.name


def test_every_alarm_notifies_the_topic_when_it_fires_and_recovers(deployment):
    everything = {r.inputs["name"]: r.inputs for r in deployment.of_type(ALARM)}
    for name, alarm in everything.items():
        assert alarm["actionsEnabled"] is True, name
        assert alarm["alarmActions"] == [topic_arn(deployment)], name
        assert alarm["okActions"] == [topic_arn(deployment)], name
        assert "alarmDescription" in alarm, name
    assert sorted(deployment.outputs["alarm_names"]) == sorted(everything)


@pytest.mark.parametrize("spec", ALL_FUNCTIONS, ids=lambda s: s.key)
def test_every_function_has_error_throttle_and_duration_alarms(deployment, spec):
    found = alarms(deployment)
    name = f"{prefix(deployment)}-analytics-{spec.key}"
    function = {"FunctionName": spec.function_name(prefix(deployment))}
    errors = found[f"{name}-errors"]
    assert (errors["namespace"], errors["metricName"], errors["dimensions"]) == (
        "AWS/Lambda",
        "Errors",
        function,
    )
    assert (errors["statistic"], errors["period"], errors["threshold"]) == ("Sum", 3600, 5)
    assert errors["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    throttles = found[f"{name}-throttles"]
    assert (throttles["metricName"], throttles["dimensions"], throttles["threshold"]) == (
        "Throttles",
        function,
        0,
    )
    assert throttles["comparisonOperator"] == "GreaterThanThreshold"
    duration = found[f"{name}-duration-p95"]
    assert (duration["metricName"], duration["dimensions"], duration["extendedStatistic"]) == (
        "Duration",
        function,
        "p95",
    )
    assert duration["threshold"] == spec.timeout_seconds * 1000 * 0.8
    assert duration["comparisonOperator"] == "GreaterThanThreshold"


@pytest.mark.parametrize(
    ("table", "operations"),
    [
        ("metrics", ["BatchWriteItem", "PutItem", "Query", "UpdateItem"]),
        ("reports", ["DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"]),
        (
            "report-schedules",
            ["DeleteItem", "GetItem", "PutItem", "Query", "TransactWriteItems", "UpdateItem"],
        ),
        ("report-cache", ["GetItem", "PutItem"]),
    ],
)
def test_table_alarms_add_up_every_operation_with_table_and_operation(
    deployment, table, operations
):
    found = alarms(deployment)
    table_name = f"{prefix(deployment)}-{table}"
    for what, metric_name, threshold in (
        ("throttles", "ThrottledRequests", 5),
        ("system-errors", "SystemErrors", 1),
    ):
        alarm = found[f"{prefix(deployment)}-analytics-table-{table}-{what}"]
        queries = {q["id"]: q for q in alarm["metricQueries"]}
        result = queries.pop("result")
        assert result["returnData"] is True
        assert result["expression"] == f"SUM([{', '.join(op.lower() for op in operations)}])"
        assert [q["metric"]["dimensions"] for q in queries.values()] == [
            {"TableName": table_name, "Operation": op} for op in operations
        ]
        for query in queries.values():
            assert query["metric"]["namespace"] == "AWS/DynamoDB"
            assert query["metric"]["metricName"] == metric_name
            assert (query["metric"]["stat"], query["metric"]["period"]) == ("Sum", 300)
        assert len(alarm["metricQueries"]) <= 10
        assert alarm["threshold"] == threshold


def test_api_alarms_watch_the_http_api_by_its_id(deployment):
    found = alarms(deployment)
    rate = found[f"{prefix(deployment)}-analytics-api-5xx-rate"]
    threshold = {"staging": 5, "production": 1}[deployment.stack]
    assert rate["threshold"] == threshold
    metrics = {q["id"]: q.get("metric") for q in rate["metricQueries"]}
    assert metrics["errors"]["metricName"] == "5xx"
    assert metrics["total"]["metricName"] == "Count"
    for metric in (metrics["errors"], metrics["total"]):
        assert metric["namespace"] == "AWS/ApiGateway"
        assert metric["dimensions"] == {"ApiId": API_ID}
    expression = next(q for q in rate["metricQueries"] if q["id"] == "result")["expression"]
    assert expression == "IF(total > 0, 100 * FILL(errors, 0) / total, 0)"

    # Latency is alarmed per route (tests/test_latency_alarms.py), never for the whole API.
    assert f"{prefix(deployment)}-analytics-api-latency-p95" not in found
    usage = found[f"{prefix(deployment)}-analytics-api-latency-p95-get-analytics-usage"]
    assert (usage["metricName"], usage["dimensions"], usage["extendedStatistic"]) == (
        "Latency",
        {"ApiId": API_ID, "Method": "GET", "Resource": "/analytics/usage", "Stage": "$default"},
        "p95",
    )
    assert usage["threshold"] == 500
    render = found[f"{prefix(deployment)}-analytics-api-latency-p95-post-analytics-reports"]
    assert render["threshold"] == 25000


def test_api_alarms_wait_for_the_api_whose_id_they_use(deployment):
    api = deployment.one("aws:apigatewayv2/api:Api")
    component = deployment.one(COMPONENT)
    for resource in deployment.children_of(component):
        if resource.type == ALARM and "-api-" in resource.inputs["name"]:
            assert api.urn in resource.dependencies, resource.name


def test_failed_reports_alarm_on_the_custom_metric_per_hour(deployment):
    alarm = alarms(deployment)[f"{prefix(deployment)}-analytics-report-failures"]
    assert alarm["namespace"] == "SecureBase/Analytics"
    assert alarm["metricName"] == "ReportGenerationFailures"
    assert alarm["dimensions"] == {"Environment": deployment.stack}
    assert (alarm["statistic"], alarm["period"]) == ("Sum", 3600)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 3)


def test_an_aggregator_that_stops_running_raises_an_alarm(deployment):
    alarm = alarms(deployment)[f"{prefix(deployment)}-analytics-aggregator-not-running"]
    assert alarm["metricName"] == "AggregatorRunsCompleted"
    assert alarm["dimensions"] == {"Environment": deployment.stack}
    assert (alarm["statistic"], alarm["period"]) == ("Sum", 3600)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", 1)
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (2, 2)
    assert alarm["treatMissingData"] == "breaching"


def test_only_the_heartbeat_treats_missing_data_as_breaching(deployment):
    for name, alarm in alarms(deployment).items():
        if not name.endswith("aggregator-not-running"):
            assert alarm["treatMissingData"] == "notBreaching", name


def test_a_failed_aggregator_shard_raises_an_alarm_within_the_hour(deployment):
    alarm = alarms(deployment)[f"{prefix(deployment)}-analytics-aggregator-shard-failures"]
    assert alarm["namespace"] == "SecureBase/Analytics"
    assert alarm["metricName"] == "AggregatorShardFailures"
    assert alarm["dimensions"] == {"Environment": deployment.stack}
    assert (alarm["statistic"], alarm["period"]) == ("Sum", 3600)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["alarmActions"] == alarm["okActions"] == [topic_arn(deployment)]


def test_a_tenant_reaching_its_daily_email_quota_raises_an_alarm(deployment):
    alarm = alarms(deployment)[f"{prefix(deployment)}-analytics-email-quota-exceeded"]
    assert alarm["namespace"] == "SecureBase/Analytics"
    assert alarm["metricName"] == "EmailQuotaExceeded"
    assert alarm["dimensions"] == {"Environment": deployment.stack}
    assert (alarm["statistic"], alarm["period"]) == ("Sum", 3600)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["alarmActions"] == alarm["okActions"] == [topic_arn(deployment)]


@pytest.mark.parametrize(
    "queue", ["report-jobs-dlq", "aggregator-shards-dlq", "async-failures", "email-feedback-dlq"]
)
def test_dead_letter_queues_alarm_as_soon_as_anything_lands(deployment, queue):
    queue_name = f"{prefix(deployment)}-analytics-{queue}"
    alarm = alarms(deployment)[f"{queue_name}-not-empty"]
    assert alarm["namespace"] == "AWS/SQS"
    assert alarm["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["dimensions"] == {"QueueName": queue_name}
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)


def dashboard(deployment: Deployment, name: str) -> Resource:
    return deployment.one(DASHBOARD, lambda r: r.inputs["dashboardName"] == name)


def metric_rows(body: dict) -> list[list]:
    return [
        row for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]
    ]


def test_the_dashboard_shows_every_function_table_the_api_and_the_bucket(deployment):
    body = json.loads(
        dashboard(deployment, f"{prefix(deployment)}-analytics").inputs["dashboardBody"]
    )
    rows = metric_rows(body)
    for row in rows:
        namespace, _metric, *dimensions = (part for part in row if not isinstance(part, dict))
        assert namespace.startswith("AWS/") or namespace == "SecureBase/Analytics", row
        assert len(dimensions) % 2 == 0 and dimensions, row
        assert all(isinstance(part, str) and part for part in dimensions), row

    def dimension_values(name: str) -> set[str]:
        return {row[row.index(name) + 1] for row in rows if name in row}

    assert {spec.function_name(prefix(deployment)) for spec in ALL_FUNCTIONS} <= dimension_values(
        "FunctionName"
    )
    assert dimension_values("TableName") == {f"{prefix(deployment)}-{t}" for t in TABLES}
    assert dimension_values("ApiId") == {API_ID}
    assert dimension_values("BucketName") == {f"{prefix(deployment)}-reports-{ACCOUNT_ID}"}
    assert dimension_values("StorageType") == {"StandardStorage", "AllStorageTypes"}
    assert dimension_values("Environment") == {deployment.stack}
    for widget in body["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == REGION
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}" for name in alarms(deployment)
    )
    assert deployment.outputs["dashboard_names"]["analytics"] == f"{prefix(deployment)}-analytics"


@pytest.mark.parametrize(
    "watched",
    [
        {},
        {
            "metric": Metric("AWS/Lambda", "Errors", {}, "Sum", 300),
            "metric_queries": [Metric("AWS/Lambda", "Errors", {}, "Sum", 300).query("errors")],
        },
    ],
    ids=["neither", "both"],
)
def test_an_alarm_watches_one_metric_or_one_metric_math_result(watched):
    factory = AlarmFactory("test", "securebase-test", "arn:aws:sns:us-east-1:1:t", parent=None)
    with pytest.raises(ValueError, match="give either a metric or metric queries"):
        factory.create("x", "x", comparison="GreaterThanThreshold", threshold=1, **watched)
