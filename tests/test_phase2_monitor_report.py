"""Evaluation and rendering of the Phase 2 monitor report (pure, no AWS)."""

import dataclasses
import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from handlers.shared.monitoring import render
from handlers.shared.monitoring.alarms import Alarm, cluster_alarms
from handlers.shared.monitoring.config import parse_config
from handlers.shared.monitoring.evaluate import evaluate, rate
from handlers.shared.monitoring.queries import build_queries
from handlers.shared.monitoring.units import format_value
from tests.test_phase2_monitor_config import PRODUCTION

CONFIG = parse_config(PRODUCTION)
CLUSTER = "securebase-production-aurora"
AUTH = "securebase-production-auth-v2"
NOW = dt.datetime(2026, 12, 3, 6, 0, 12, tzinfo=dt.UTC)
WINDOW = (
    dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC),
)
ALL_KEYS = [q.reading_key for q in build_queries(CONFIG)]


def report_for(values=None, alarms=(), config=CONFIG, environment="production"):
    readings = dict.fromkeys(ALL_KEYS) | (values or {})
    return evaluate(
        config, readings, alarms, generated_at=NOW, window=WINDOW, environment=environment
    )


def lambda_values(function=AUTH, invocations=1000.0, errors=0.0, throttles=0.0):
    return {
        ("lambda", function, "invocations"): invocations,
        ("lambda", function, "errors"): errors,
        ("lambda", function, "throttles"): throttles,
        ("lambda", function, "duration_avg"): 120.0,
        ("lambda", function, "duration_max"): 900.0,
    }


def test_a_6_percent_lambda_error_rate_is_a_violation_naming_the_numbers():
    report = report_for(lambda_values(errors=60.0))
    [violation] = report.violations
    assert violation.component == "lambda"
    assert violation.resource == AUTH
    assert violation.metric == "error_rate"
    assert violation.value == 6.0
    assert violation.threshold == 5.0
    assert violation.message == (
        "Lambda securebase-production-auth-v2: Error rate 6.00% > 5.00% "
        "(60 errors of 1,000 invocations)"
    )


def test_4_percent_and_exactly_5_percent_are_not_violations():
    assert report_for(lambda_values(errors=40.0)).violations == ()
    assert report_for(lambda_values(errors=50.0)).violations == ()


def test_zero_invocations_give_no_rate_and_no_violation():
    report = report_for(lambda_values(invocations=0.0, errors=0.0))
    status = report.of("lambda")[0]
    assert status.measurement("error_rate").value is None
    assert status.measurement("error_rate").shown == "n/a"
    assert report.violations == ()


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 100))
def test_the_error_rate_threshold_is_exact_for_whole_numbers(errors, invocations, threshold):
    config = dataclasses.replace(
        CONFIG,
        thresholds=dataclasses.replace(CONFIG.thresholds, lambda_error_rate_percent=threshold),
    )
    report = report_for(lambda_values(invocations=invocations, errors=errors), config=config)
    violated = any(v.metric == "error_rate" for v in report.violations)
    assert violated == (invocations > 0 and errors * 100 > threshold * invocations)


def test_rate_never_divides_by_zero_or_guesses_missing_values():
    assert rate(5, 0) is None
    assert rate(None, 10) is None
    assert rate(5, None) is None
    assert rate(7, 100) == 7.0


def test_any_lambda_throttle_is_a_violation_at_the_default_threshold():
    [violation] = report_for(lambda_values(throttles=3.0)).violations
    assert violation.metric == "throttles"
    assert violation.message == "Lambda securebase-production-auth-v2: Throttles 3 > 0"


def test_aurora_cpu_and_connections_use_their_maximum():
    report = report_for(
        {
            ("aurora", CLUSTER, "cpu_avg"): 40.0,
            ("aurora", CLUSTER, "cpu_max"): 92.5,
            ("aurora", CLUSTER, "connections_avg"): 300.0,
            ("aurora", CLUSTER, "connections_max"): 1001.0,
        }
    )
    assert [(v.metric, v.value, v.threshold) for v in report.violations] == [
        ("cpu_max", 92.5, 80.0),
        ("connections_max", 1001.0, 1000.0),
    ]
    assert report.violations[1].message == (
        "Aurora securebase-production-aurora: Connections (max) 1,001 > 1,000"
    )


def test_api_5xx_rate_and_average_latency():
    api = "securebase-production-api"
    report = report_for(
        {
            ("api_gateway", api, "requests"): 1000.0,
            ("api_gateway", api, "errors_4xx"): 100.0,
            ("api_gateway", api, "errors_5xx"): 20.0,
            ("api_gateway", api, "latency_avg"): 1250.0,
            ("api_gateway", api, "latency_max"): 29000.0,
        }
    )
    assert [v.message for v in report.violations] == [
        "API Gateway securebase-production-api: 5xx rate 2.00% > 1.00% (20 5xx errors of 1,000 requests)",
        "API Gateway securebase-production-api: Latency (avg) 1,250.0 ms > 1,000.0 ms",
    ]
    assert report.of("api_gateway")[0].measurement("rate_4xx").value == 10.0


def test_any_dynamodb_throttle_event_is_a_violation():
    table = "securebase-production-invoices"
    report = report_for({("dynamodb", table, "write_throttles"): 2.0})
    [violation] = report.violations
    assert (violation.resource, violation.metric, violation.threshold) == (
        table,
        "write_throttles",
        0.0,
    )


def test_no_datapoints_are_no_data_not_violations_and_silent_resources_are_flagged():
    report = report_for(lambda_values(errors=0.0))
    assert report.violations == ()
    auth = report.of("lambda")[0]
    assert auth.no_data == ()
    worker = report.of("lambda")[1]
    assert worker.silent
    assert worker.measurement("invocations").shown == "no data"
    assert worker.measurement("error_rate").shown == "n/a"
    assert [s.resource for s in report.no_data][:2] == [
        CLUSTER,
        "securebase-production-billing-worker",
    ]


def test_the_no_data_note_skips_metrics_cloudwatch_often_leaves_empty():
    table = "securebase-production-customers"
    values = lambda_values() | {
        ("dynamodb", table, "read_units"): 10.0,
        ("dynamodb", table, "write_units"): 2.0,
        ("aurora", CLUSTER, "cpu_avg"): 20.0,
    }
    report = report_for(values)
    customers = report.of("dynamodb")[0]
    assert customers.no_data == ("read_throttles", "write_throttles")
    assert customers.notable_no_data == ()
    lines = render.to_markdown(report).splitlines()
    assert "| `securebase-production-customers` | 10 | 2 | no data | no data |" in lines
    assert not any(
        line.startswith("- DynamoDB `securebase-production-customers`") for line in lines
    )
    assert "- DynamoDB `securebase-production-invoices`: every metric" in lines
    aurora_note = next(line for line in lines if line.startswith("- Aurora"))
    assert "DB load" not in aurora_note
    assert "CPU (max), Connections (avg)" in aurora_note
    document = render.to_json(report)
    assert {
        "component": "dynamodb",
        "resource": table,
        "metrics": ["read_throttles", "write_throttles"],
        "all_metrics": False,
    } in document["no_data"]


def test_alarms_are_violations_listed_after_the_clusters_metrics():
    alarm = Alarm(
        "aurora-cpu-high",
        "CPUUtilization",
        "Threshold Crossed",
        dt.datetime(2026, 12, 3, 5, 10, tzinfo=dt.UTC),
    )
    report = report_for(lambda_values(errors=60.0), alarms=[alarm])
    assert [v.metric for v in report.violations] == ["alarm_state", "error_rate"]
    assert report.violations[0].message == (
        "Aurora securebase-production-aurora: alarm aurora-cpu-high (CPUUtilization) "
        "is in ALARM since 2026-12-03 05:10 UTC"
    )


def describe_alarm(name, dimensions=None, metrics=None, state="ALARM"):
    alarm = {"AlarmName": name, "StateValue": state, "StateReason": "because"}
    if dimensions is not None:
        alarm |= {"MetricName": "CPUUtilization", "Dimensions": dimensions}
    if metrics is not None:
        alarm["Metrics"] = metrics
    return alarm


def test_cluster_alarms_match_the_cluster_dimension_directly_or_in_metric_math():
    cluster = [{"Name": "DBClusterIdentifier", "Value": CLUSTER}]
    math = [
        {"Id": "e1", "Expression": "m1 * 2"},
        {
            "Id": "m1",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/RDS",
                    "MetricName": "DatabaseConnections",
                    "Dimensions": [*cluster, {"Name": "Role", "Value": "WRITER"}],
                },
                "Period": 300,
                "Stat": "Maximum",
            },
        },
    ]
    alarms = cluster_alarms(
        [
            describe_alarm("z-direct", dimensions=cluster),
            describe_alarm("a-math", metrics=math),
            describe_alarm("other-cluster", [{"Name": "DBClusterIdentifier", "Value": "other"}]),
            describe_alarm("instance", [{"Name": "DBInstanceIdentifier", "Value": CLUSTER}]),
            describe_alarm("ok-now", dimensions=cluster, state="OK"),
        ],
        CLUSTER,
    )
    assert [(a.name, a.metric) for a in alarms] == [
        ("a-math", "DatabaseConnections"),
        ("z-direct", "CPUUtilization"),
    ]


def test_markdown_puts_violations_first_then_one_table_per_component():
    markdown = render.to_markdown(report_for(lambda_values(errors=60.0)))
    lines = markdown.splitlines()
    assert lines[0] == "# Phase 2 monitoring report: production"
    assert "**Window:** last 24 h, 2026-12-02 06:00 to 2026-12-03 06:00 UTC  " in lines
    assert "**Observation window:** 2026-12-01 to 2026-12-07, day 3 of 7  " in lines
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == [
        "## ⚠️ 1 threshold violation",
        "## Aurora: `securebase-production-aurora`",
        "## Lambda",
        "## API Gateway: REST API `securebase-production-api`",
        "## DynamoDB",
    ]
    assert (
        "- Lambda securebase-production-auth-v2: Error rate 6.00% > 5.00% "
        "(60 errors of 1,000 invocations)"
    ) in lines
    assert (
        "| `securebase-production-auth-v2` | 1,000 | 60 | **6.00%** ⚠️ | 0 | 120.0 ms | 900.0 ms |"
    ) in lines
    assert "Thresholds: Error rate > 5.00%, Throttles > 0." in lines
    assert "| CPU (max) | no data | > 80.00% |" in lines
    assert "Alarms in ALARM: none." in lines
    assert "- Lambda `securebase-production-billing-worker`: every metric" in lines


def test_markdown_without_violations_says_so_and_tables_still_follow():
    markdown = render.to_markdown(report_for(lambda_values(), environment=None))
    assert markdown.startswith("# Phase 2 monitoring report\n")
    assert "## No threshold violations" in markdown
    assert markdown.index("## No threshold violations") < markdown.index("## Aurora")


def test_markdown_lists_alarms_and_keeps_cells_on_one_line():
    alarm = Alarm("cpu|high", "CPUUtilization", "line one\nline | two", None)
    markdown = render.to_markdown(report_for(alarms=[alarm]))
    assert "| cpu\\|high | CPUUtilization |  | line one line \\| two |" in markdown.splitlines()


def test_an_http_api_is_titled_as_one():
    config = parse_config({**PRODUCTION, "api": {"kind": "http", "id": "abcde12345"}})
    keys = [q.reading_key for q in build_queries(config)]
    report = evaluate(
        config, dict.fromkeys(keys), [], generated_at=NOW, window=WINDOW, environment=None
    )
    assert "## API Gateway: HTTP API `abcde12345`" in render.to_markdown(report)


def test_observation_window_before_and_after():
    early = dataclasses.replace(report_for(), window_end=dt.datetime(2026, 11, 20, tzinfo=dt.UTC))
    late = dataclasses.replace(report_for(), window_end=dt.datetime(2026, 12, 9, tzinfo=dt.UTC))
    assert "2026-12-01 to 2026-12-07 (not started)" in render.to_markdown(early)
    assert "2026-12-01 to 2026-12-07 (ended)" in render.to_markdown(late)


def test_json_twin_has_the_same_facts_in_a_stable_schema():
    alarm = Alarm("aurora-cpu-high", "CPUUtilization", "Threshold Crossed", NOW)
    document = render.to_json(report_for(lambda_values(errors=60.0), alarms=[alarm]))
    assert set(document) == {
        "schema_version",
        "generated_at",
        "environment",
        "window",
        "observation_window",
        "thresholds",
        "violations",
        "components",
        "alarms",
        "no_data",
    }
    assert document["generated_at"] == "2026-12-03T06:00:12Z"
    assert document["window"] == {
        "start": "2026-12-02T06:00:00Z",
        "end": "2026-12-03T06:00:00Z",
        "hours": 24,
    }
    assert document["observation_window"] == {
        "start": "2026-12-01",
        "last_day": "2026-12-07",
        "days": 7,
    }
    assert document["violations"][1] == {
        "component": "lambda",
        "resource": AUTH,
        "metric": "error_rate",
        "value": 6.0,
        "threshold": 5.0,
        "message": "Lambda securebase-production-auth-v2: Error rate 6.00% > 5.00% "
        "(60 errors of 1,000 invocations)",
    }
    assert list(document["components"]) == ["aurora", "lambda", "api_gateway", "dynamodb"]
    auth = document["components"]["lambda"][0]
    assert auth["resource"] == AUTH
    assert auth["dimension"] == "FunctionName"
    assert auth["metrics"]["error_rate"] == {"value": 6.0, "unit": "percent"}
    assert auth["metrics"]["duration_max"] == {"value": 900.0, "unit": "ms"}
    assert document["components"]["lambda"][1]["metrics"]["invocations"]["value"] is None
    assert document["alarms"] == [
        {
            "name": "aurora-cpu-high",
            "metric": "CPUUtilization",
            "reason": "Threshold Crossed",
            "since": "2026-12-03T06:00:12Z",
        }
    ]
    assert {
        "component": "lambda",
        "resource": "securebase-production-billing-worker",
        "metrics": ["invocations", "errors", "throttles", "duration_avg", "duration_max"],
        "all_metrics": True,
    } in document["no_data"]
    json.dumps(document, allow_nan=False)


values = st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False, allow_infinity=False))


@given(st.fixed_dictionaries(dict.fromkeys(ALL_KEYS, values)))
def test_any_readings_render_both_formats(readings):
    report = evaluate(
        CONFIG, readings, [], generated_at=NOW, window=WINDOW, environment="production"
    )
    markdown = render.to_markdown(report)
    assert all(name in markdown for name in CONFIG.function_names + CONFIG.table_names)
    first_section = next(line for line in markdown.splitlines() if line.startswith("## "))
    assert "threshold violation" in first_section
    document = render.to_json(report)
    assert len(document["violations"]) == len(report.violations)
    json.dumps(document, allow_nan=False)


def test_alert_subject_is_short_ascii_and_counts_violations():
    report = report_for(lambda_values(errors=60.0))
    assert render.alert_subject(report) == "Phase 2 monitor (production): 1 threshold violation"
    long_name = dataclasses.replace(report, environment="é" * 200)
    subject = render.alert_subject(long_name)
    assert len(subject) < 100
    assert subject.isascii()


def test_alert_message_is_the_report_with_its_locations_or_a_summary_when_too_big():
    report = report_for(lambda_values(errors=60.0))
    markdown = render.to_markdown(report)
    message = render.alert_message(report, markdown, ["s3://b/k.md", "s3://b/k.json"])
    assert message.startswith(markdown.rstrip())
    assert message.endswith("Stored report: s3://b/k.md\nStored report: s3://b/k.json")
    huge = markdown + "x" * 300_000
    summary = render.alert_message(report, huge, ["s3://b/k.md"])
    assert len(summary.encode()) <= render.ALERT_MESSAGE_LIMIT_BYTES
    assert "Error rate 6.00% > 5.00%" in summary
    assert summary.endswith("Stored report: s3://b/k.md")


def test_values_are_shown_with_units():
    assert format_value(6.0, "percent") == "6.00%"
    assert format_value(1234.56, "ms") == "1,234.6 ms"
    assert format_value(1000.0, "count") == "1,000"
    assert format_value(12.5, "count") == "12.50"
    assert format_value(None, "ms") == "no data"
