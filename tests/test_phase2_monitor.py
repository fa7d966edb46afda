"""The Phase 2 monitor end to end on moto: seeded CloudWatch data, S3, SNS -> SQS.

Every run is checked for exactly one GetMetricData call, counted with a
botocore event hook on the client the run uses.
"""

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from handlers import phase2_monitor
from handlers.shared import telemetry
from handlers.shared.monitoring.config import ConfigError, parse_config
from tests.test_phase2_monitor_config import PRODUCTION

REGION = "us-east-1"
BUCKET = "securebase-production-phase2-monitor-123456789012"
PREFIX = "phase2-monitor/"
CLUSTER = "securebase-production-aurora"
AUTH = "securebase-production-auth-v2"
API = "securebase-production-api"
NOW = dt.datetime.now(dt.UTC)
AN_HOUR_AGO = NOW - dt.timedelta(hours=1)


class Aws:
    """moto clients, the monitor bucket, the alerts topic with an SQS subscriber,
    and a count of GetMetricData calls."""

    def __init__(self):
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.get_metric_data_calls = 0
        self.cloudwatch.meta.events.register(
            "before-call.cloudwatch.GetMetricData", self._count_get_metric_data
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.topic_arn = self.sns.create_topic(Name="securebase-production-analytics-alerts")[
            "TopicArn"
        ]
        self.queue_url = self.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def _count_get_metric_data(self, **_):
        self.get_metric_data_calls += 1

    def clients(self):
        return phase2_monitor.AwsClients(cloudwatch=self.cloudwatch, s3=self.s3, sns=self.sns)

    def put(self, namespace, dimension, resource, metric, value, at=AN_HOUR_AGO):
        datum = {
            "MetricName": metric,
            "Dimensions": [{"Name": dimension, "Value": resource}],
            "Timestamp": at,
        }
        if isinstance(value, dict):
            datum["StatisticValues"] = value
        else:
            datum["Value"] = value
        self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])

    def lambda_traffic(self, function, invocations, errors, throttles=0):
        # Two datapoints per counter: the window's Sum must add them up.
        for metric, total in (("Invocations", invocations), ("Errors", errors)):
            self.put("AWS/Lambda", "FunctionName", function, metric, total / 2)
            self.put(
                "AWS/Lambda",
                "FunctionName",
                function,
                metric,
                total / 2,
                NOW - dt.timedelta(hours=5),
            )
        self.put("AWS/Lambda", "FunctionName", function, "Throttles", throttles)
        duration = {"SampleCount": 10, "Sum": 1200, "Minimum": 40, "Maximum": 800}
        self.put("AWS/Lambda", "FunctionName", function, "Duration", duration)

    def alarm(self, name, dimensions, state="ALARM"):
        self.cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/RDS",
            MetricName="CPUUtilization",
            Dimensions=dimensions,
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=80,
            ComparisonOperator="GreaterThanThreshold",
        )
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    def alerts(self):
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def stored(self):
        listing = self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {item["Key"]: self.s3.get_object(Bucket=BUCKET, Key=item["Key"]) for item in listing}


@pytest.fixture
def aws(monkeypatch):
    with mock_aws():
        resources = Aws()
        monkeypatch.setenv("MONITOR_CONFIG", json.dumps(PRODUCTION))
        monkeypatch.setenv("MONITOR_BUCKET", BUCKET)
        monkeypatch.setenv("MONITOR_PREFIX", PREFIX)
        monkeypatch.setenv("ALERTS_TOPIC_ARN", resources.topic_arn)
        monkeypatch.setenv("ENVIRONMENT", "production")
        yield resources


def run_lambda(aws):
    return phase2_monitor.handler({"source": "aws.scheduler"}, None, clients=aws.clients())


def test_a_6_percent_error_rate_is_stored_and_published(aws):
    aws.lambda_traffic(AUTH, invocations=1000, errors=60)

    summary = run_lambda(aws)

    assert summary["violations"] == 1
    assert summary["published"] is True
    assert summary["get_metric_data_calls"] == 1
    assert summary["metric_queries"] == 44
    assert aws.get_metric_data_calls == 1

    [alert] = aws.alerts()
    assert alert["Subject"] == "Phase 2 monitor (production): 1 threshold violation"
    assert (
        "- Lambda securebase-production-auth-v2: Error rate 6.00% > 5.00% "
        "(60 errors of 1,000 invocations)"
    ) in alert["Message"].splitlines()
    assert f"Stored report: s3://{BUCKET}/{summary['report_keys'][0]}" in alert["Message"]

    markdown_key, json_key = summary["report_keys"]
    assert re.fullmatch(r"phase2-monitor/\d{4}/\d{2}/\d{2}/\d{6}Z-report\.md", markdown_key)
    assert json_key == markdown_key.removesuffix(".md") + ".json"
    stored = aws.stored()
    assert set(stored) == {markdown_key, json_key}
    assert stored[markdown_key]["ContentType"] == "text/markdown; charset=utf-8"
    assert stored[json_key]["ContentType"] == "application/json"
    document = json.loads(stored[json_key]["Body"].read())
    assert document["violations"][0]["metric"] == "error_rate"
    auth = document["components"]["lambda"][0]["metrics"]
    assert auth["invocations"]["value"] == 1000
    assert auth["errors"]["value"] == 60
    assert auth["duration_avg"]["value"] == 120.0
    markdown = stored[markdown_key]["Body"].read().decode()
    assert markdown.startswith("# Phase 2 monitoring report: production\n")


def test_a_4_percent_error_rate_is_stored_but_not_published(aws):
    aws.lambda_traffic(AUTH, invocations=1000, errors=40)

    summary = run_lambda(aws)

    assert summary["violations"] == 0
    assert summary["published"] is False
    assert aws.alerts() == []
    assert len(aws.stored()) == 2
    assert aws.get_metric_data_calls == 1


def test_no_datapoints_at_all_is_reported_as_no_data_without_publishing(aws):
    summary = run_lambda(aws)

    assert summary == {
        "violations": 0,
        "no_data": 44,
        "report_keys": summary["report_keys"],
        "published": False,
        "metric_queries": 44,
        "get_metric_data_calls": 1,
    }
    assert aws.alerts() == []
    markdown_key = summary["report_keys"][0]
    markdown = aws.stored()[markdown_key]["Body"].read().decode()
    assert "## No threshold violations" in markdown
    assert "- Lambda `securebase-production-auth-v2`: every metric" in markdown
    assert "| CPU (max) | no data | > 80.00% |" in markdown


def test_the_clusters_alarms_in_alarm_are_listed_and_published(aws):
    cluster = [{"Name": "DBClusterIdentifier", "Value": CLUSTER}]
    aws.alarm("securebase-production-aurora-cpu", cluster)
    aws.alarm("securebase-production-aurora-ok", cluster, state="OK")
    aws.alarm("someone-elses-cluster", [{"Name": "DBClusterIdentifier", "Value": "other"}])

    summary = run_lambda(aws)

    assert summary["violations"] == 1
    [alert] = aws.alerts()
    assert (
        "- Aurora securebase-production-aurora: alarm securebase-production-aurora-cpu "
        "(CPUUtilization) is in ALARM since"
    ) in alert["Message"]
    document = json.loads(aws.stored()[summary["report_keys"][1]]["Body"].read())
    assert [alarm["name"] for alarm in document["alarms"]] == ["securebase-production-aurora-cpu"]


def test_aurora_dynamodb_and_a_rest_api_are_read_under_their_dimensions(aws):
    rds = ("AWS/RDS", "DBClusterIdentifier", CLUSTER)
    for value in (35.0, 91.0):
        aws.put(*rds, "CPUUtilization", value)
    aws.put(*rds, "DatabaseConnections", 120.0)
    aws.put(*rds, "ReadLatency", 0.004)
    aws.put("AWS/ApiGateway", "ApiName", API, "Count", 1000.0)
    aws.put("AWS/ApiGateway", "ApiName", API, "5XXError", 20.0)
    aws.put("AWS/ApiGateway", "ApiName", API, "Latency", 150.0)
    table = ("AWS/DynamoDB", "TableName", "securebase-production-customers")
    aws.put(*table, "ConsumedReadCapacityUnits", 5000.0)
    aws.put(*table, "ReadThrottleEvents", 4.0)

    result = phase2_monitor.run(parse_config(PRODUCTION), aws.clients(), environment="production")

    assert [(v.component, v.metric, v.value) for v in result.report.violations] == [
        ("aurora", "cpu_max", 91.0),
        ("api_gateway", "rate_5xx", 2.0),
        ("dynamodb", "read_throttles", 4.0),
    ]
    aurora = result.document["components"]["aurora"][0]["metrics"]
    assert aurora["cpu_avg"]["value"] == 63.0
    assert aurora["read_latency_avg"] == {"value": 4.0, "unit": "ms"}
    assert result.report_keys == ()
    assert result.published is False
    assert aws.get_metric_data_calls == 1


def test_an_http_api_is_read_by_id_with_its_own_metric_names(aws):
    config = parse_config({**PRODUCTION, "api": {"kind": "http", "id": "abcde12345"}})
    aws.put("AWS/ApiGateway", "ApiId", "abcde12345", "Count", 400.0)
    aws.put("AWS/ApiGateway", "ApiId", "abcde12345", "5xx", 1.0)
    aws.put("AWS/ApiGateway", "ApiId", "abcde12345", "Latency", 1500.0)
    # The same facts under the REST API's name must not count for an HTTP API.
    aws.put("AWS/ApiGateway", "ApiName", API, "5XXError", 400.0)

    result = phase2_monitor.run(config, aws.clients())

    assert [(v.metric, v.value) for v in result.report.violations] == [("latency_avg", 1500.0)]
    api = result.document["components"]["api_gateway"][0]
    assert api["dimension"] == "ApiId"
    assert api["metrics"]["rate_5xx"]["value"] == 0.25
    assert aws.get_metric_data_calls == 1


def test_datapoints_older_than_the_lookback_are_ignored(aws):
    aws.put("AWS/Lambda", "FunctionName", AUTH, "Invocations", 100.0, NOW - dt.timedelta(hours=30))
    aws.put("AWS/Lambda", "FunctionName", AUTH, "Errors", 100.0, NOW - dt.timedelta(hours=30))

    short = phase2_monitor.run(parse_config(PRODUCTION), aws.clients())
    long = phase2_monitor.run(parse_config({**PRODUCTION, "lookback_hours": 48}), aws.clients())

    assert short.report.violations == ()
    assert [v.metric for v in long.report.violations] == ["error_rate"]
    assert long.document["window"]["hours"] == 48
    assert aws.get_metric_data_calls == 2  # one per run


def test_the_lambda_uses_its_own_clients_created_once(aws, monkeypatch):
    monkeypatch.setattr(phase2_monitor, "_container_clients", phase2_monitor.AwsClients())
    aws.lambda_traffic(AUTH, invocations=100, errors=10)

    first = phase2_monitor.handler({}, None)
    cloudwatch = phase2_monitor._container_clients.get("cloudwatch")
    second = phase2_monitor.handler({}, None)

    assert first["published"] and second["published"]
    assert phase2_monitor._container_clients.get("cloudwatch") is cloudwatch
    assert len(aws.alerts()) == 2


def test_the_lambda_fails_loudly_on_a_bad_config(aws, monkeypatch):
    monkeypatch.setenv("MONITOR_CONFIG", json.dumps({**PRODUCTION, "lookback_hours": 0}))
    with pytest.raises(ConfigError, match=r"MONITOR_CONFIG\.lookback_hours must be"):
        run_lambda(aws)
    assert aws.get_metric_data_calls == 0


# The command -------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps(PRODUCTION))
    return path


def test_the_commands_stdout_is_only_the_report_even_after_lambda_logging(aws, config_file, capsys):
    """CI appends stdout to the job summary: no log line may end up in it."""
    telemetry.configure_logging()  # what importing any Lambda handler does
    aws.lambda_traffic(AUTH, invocations=1000, errors=60)

    phase2_monitor.main(
        ["--config", str(config_file), "--format", "markdown"], clients=aws.clients()
    )

    out, _ = capsys.readouterr()
    assert out.startswith("# Phase 2 monitoring report: production\n")
    assert '"level"' not in out
    telemetry.configure_logging()


def test_the_command_prints_markdown_and_fails_on_violations_when_asked(aws, config_file, capsys):
    aws.lambda_traffic(AUTH, invocations=1000, errors=60)

    code = phase2_monitor.main(
        [
            "--config",
            str(config_file),
            "--hours",
            "24",
            "--format",
            "markdown",
            "--fail-on-violation",
        ],
        clients=aws.clients(),
    )

    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith("# Phase 2 monitoring report: production\n")
    assert "## ⚠️ 1 threshold violation" in out
    assert err == ""
    # Print-only by default: nothing stored, nothing published.
    assert aws.stored() == {}
    assert aws.alerts() == []
    assert aws.get_metric_data_calls == 1


def test_the_command_exits_0_on_violations_unless_asked_and_prints_json(aws, config_file, capsys):
    aws.lambda_traffic(AUTH, invocations=1000, errors=60)

    code = phase2_monitor.main(
        ["--config", str(config_file), "--format", "json"], clients=aws.clients()
    )

    out, _ = capsys.readouterr()
    assert code == 0
    document = json.loads(out)
    assert document["violations"][0]["resource"] == AUTH


def test_the_command_reads_monitor_config_by_default_and_can_store_and_publish(aws, capsys):
    aws.lambda_traffic(AUTH, invocations=1000, errors=60)

    code = phase2_monitor.main(["--hours", "6", "--store", "--publish"], clients=aws.clients())

    _, err = capsys.readouterr()
    assert code == 0
    stored = aws.stored()
    assert len(stored) == 2
    assert all(key.startswith(PREFIX) for key in stored)
    [alert] = aws.alerts()
    assert "last 6 h" in alert["Message"]
    assert f"stored s3://{BUCKET}/" in err
    assert f"published to {aws.topic_arn}" in err


def test_the_command_with_nothing_violated_exits_0_even_with_fail_on_violation(aws, config_file):
    aws.lambda_traffic(AUTH, invocations=1000, errors=10)
    code = phase2_monitor.main(
        ["--config", str(config_file), "--fail-on-violation"], clients=aws.clients()
    )
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        (["--config", "/nonexistent/monitor.json"], {}, "error: cannot read --config /nonexistent/monitor.json"),
        ([], {"MONITOR_CONFIG": ""}, "error: MONITOR_CONFIG is not set; set it or pass --config FILE"),
        ([], {"MONITOR_CONFIG": "{"}, "error: MONITOR_CONFIG is not valid JSON"),
        ([], {"MONITOR_CONFIG": json.dumps({**PRODUCTION, "api": {"kind": "soap"}})}, "error: MONITOR_CONFIG.api.kind must be one of rest, http"),
        (["--store"], {"MONITOR_BUCKET": ""}, "error: --store needs MONITOR_BUCKET to be set"),
        (["--publish"], {"ALERTS_TOPIC_ARN": ""}, "error: --publish needs ALERTS_TOPIC_ARN to be set"),
        (["--hours", "0"], {}, "--hours: must be a whole number from 1 to 336; got '0'"),
        (["--format", "html"], {}, "argument --format: invalid choice: 'html'"),
        (["--config", "a.json", "--config-env"], {}, "not allowed with argument"),
    ],
)  # fmt: skip
def test_usage_and_config_errors_exit_2_with_a_message(
    aws, monkeypatch, capsys, argv, environment, message
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    code = phase2_monitor.main(argv, clients=aws.clients())

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert message in err
    assert aws.get_metric_data_calls == 0


def test_an_aws_failure_exits_3_with_the_error(aws, config_file, capsys):
    aws.cloudwatch.meta.events.register(
        "before-call.cloudwatch.GetMetricData", deny_get_metric_data
    )
    code = phase2_monitor.main(["--config", str(config_file)], clients=aws.clients())
    _, err = capsys.readouterr()
    assert code == 3
    assert "error: AWS call failed:" in err
    assert "AccessDenied" in err


def deny_get_metric_data(**_):
    raise ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "GetMetricData"
    )


# --- The command's region --------------------------------------------------------------

NO_REGION = "error: no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile)\n"  # fmt: skip


@pytest.fixture
def region_env(monkeypatch, tmp_path):
    """No region anywhere: no variables, an AWS config file without one."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    profile = tmp_path / "aws-config"
    profile.write_text("[default]\noutput = json\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    return monkeypatch, profile


@pytest.mark.parametrize(
    ("flag", "variables", "profile_region", "expected"),
    [
        ("ap-south-1", {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, "eu-north-1", "ap-south-1"),
        (None, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, "eu-north-1", "eu-west-1"),
        (None, {"AWS_DEFAULT_REGION": "us-west-2"}, "eu-north-1", "us-west-2"),
        (None, {}, "eu-north-1", "eu-north-1"),
    ],
)  # fmt: skip
def test_the_region_is_the_flag_then_aws_region_then_botocores_lookup(
    region_env, flag, variables, profile_region, expected
):
    monkeypatch, profile = region_env
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    profile.write_text(f"[default]\nregion = {profile_region}\n")

    assert phase2_monitor.cli_region(flag) == expected


@pytest.mark.usefixtures("region_env")
def test_without_a_region_the_command_says_how_to_give_one(config_file):
    done = subprocess.run(
        [sys.executable, "-m", "handlers.phase2_monitor", "--config", str(config_file)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == NO_REGION


def test_the_command_reads_the_resources_in_the_region_it_is_given(aws, region_env, config_file):
    monkeypatch, _ = region_env
    # The metrics are in us-east-1; the environment points elsewhere.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    aws.lambda_traffic(AUTH, invocations=1000, errors=60)
    argv = ["--config", str(config_file), "--fail-on-violation"]

    assert phase2_monitor.main(argv) == 0  # eu-west-1: no data, nothing violated
    assert phase2_monitor.main([*argv, "--region", REGION]) == 1
