"""MONITOR_CONFIG validation and the GetMetricData query plan (pure, no AWS)."""

import copy
import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.shared.monitoring.config import (
    MAX_FUNCTIONS,
    MAX_TABLES,
    ApiTarget,
    ConfigError,
    load_config,
    parse_config,
)
from handlers.shared.monitoring.queries import (
    MAX_QUERIES_PER_CALL,
    QUERY_ID,
    build_queries,
    collect_values,
    lookback_window,
    metric_data_queries,
    readings,
)

PRODUCTION = {
    "aurora_cluster_id": "securebase-production-aurora",
    "function_names": [
        "securebase-production-auth-v2",
        "securebase-production-billing-worker",
        "securebase-production-metrics-aggregation",
    ],
    "api": {"kind": "rest", "name": "securebase-production-api"},
    "table_names": [
        "securebase-production-customers",
        "securebase-production-api-keys",
        "securebase-production-invoices",
        "securebase-production-usage-metrics",
    ],
    "lookback_hours": 24,
    "window": {"start": "2026-12-01", "days": 7},
    "thresholds": {
        "lambda_error_rate_percent": 5,
        "lambda_max_throttles": 0,
        "api_5xx_rate_percent": 1,
        "api_latency_ms": 1000,
        "aurora_cpu_percent": 80,
        "aurora_max_connections": 1000,
    },
}


def with_change(path: str, value):
    """PRODUCTION with one field set (value=...) or removed (value=None)."""
    document = copy.deepcopy(PRODUCTION)
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return document


def test_the_pinned_production_config_parses():
    config = parse_config(PRODUCTION)
    assert config.aurora_cluster_id == "securebase-production-aurora"
    assert config.function_names[0] == "securebase-production-auth-v2"
    assert config.api == ApiTarget("rest", "securebase-production-api")
    assert config.api.dimension == "ApiName"
    assert len(config.table_names) == 4
    assert config.lookback_hours == 24
    assert config.window.start == dt.date(2026, 12, 1)
    assert config.window.last_day == dt.date(2026, 12, 7)
    assert config.thresholds.lambda_error_rate_percent == 5.0
    assert config.thresholds.aurora_max_connections == 1000.0


def test_an_http_api_is_addressed_by_id_and_window_and_lookback_are_optional():
    document = with_change("api", {"kind": "http", "id": "abcde12345"})
    del document["window"], document["lookback_hours"]
    config = parse_config(document)
    assert config.api == ApiTarget("http", "abcde12345")
    assert config.api.dimension == "ApiId"
    assert config.window is None
    assert config.lookback_hours == 24


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "MONITOR_CONFIG must be a JSON object; got a list"),
        (with_change("aurora_cluster_id", None), "MONITOR_CONFIG.aurora_cluster_id is required"),
        (with_change("aurora_cluster_id", "-bad"), "MONITOR_CONFIG.aurora_cluster_id must be"),
        (with_change("function_names", []), "MONITOR_CONFIG.function_names must be a list of 1 to 50"),
        (with_change("function_names", ["a", "a"]), "duplicates ['a']"),
        (with_change("function_names", ["ok", "has space"]), "MONITOR_CONFIG.function_names[1] must be"),
        (with_change("table_names", "one-table"), "MONITOR_CONFIG.table_names must be a list"),
        (with_change("table_names", [f"t{i}" for i in range(51)]), "MONITOR_CONFIG.table_names"),
        (with_change("api.kind", "websocket"), "MONITOR_CONFIG.api.kind must be one of rest, http"),
        (with_change("api.name", None), "MONITOR_CONFIG.api.name is required"),
        (with_change("api", {"kind": "http", "id": "ABC"}), "MONITOR_CONFIG.api.id must be"),
        (with_change("api", {"kind": "http", "name": "x"}), "MONITOR_CONFIG.api has unknown field(s) name"),
        (with_change("lookback_hours", 0), "MONITOR_CONFIG.lookback_hours must be a whole number from 1 to 336"),
        (with_change("lookback_hours", 2.5), "MONITOR_CONFIG.lookback_hours must be"),
        (with_change("lookback_hours", True), "MONITOR_CONFIG.lookback_hours must be"),
        (with_change("window.start", "2026-02-30"), "MONITOR_CONFIG.window.start must be a date as YYYY-MM-DD"),
        (with_change("window.days", 0), "MONITOR_CONFIG.window.days must be"),
        (with_change("thresholds.api_latency_ms", None), "MONITOR_CONFIG.thresholds.api_latency_ms is required"),
        (with_change("thresholds.api_latency_ms", "fast"), "MONITOR_CONFIG.thresholds.api_latency_ms must be a number >= 0; got 'fast'"),
        (with_change("thresholds.aurora_cpu_percent", 120), "MONITOR_CONFIG.thresholds.aurora_cpu_percent must be a number from 0 to 100"),
        (with_change("thresholds.lambda_error_rate", 5), "MONITOR_CONFIG.thresholds has unknown field(s) lambda_error_rate"),
        (with_change("extra", 1), "MONITOR_CONFIG has unknown field(s) extra"),
    ],
)  # fmt: skip
def test_errors_name_the_field_and_what_is_allowed(document, message):
    with pytest.raises(ConfigError) as raised:
        parse_config(document)
    assert message in str(raised.value)


def test_load_config_names_the_source_of_bad_json():
    with pytest.raises(ConfigError, match=r"^monitor\.json is not valid JSON"):
        load_config("{nope", "monitor.json")
    assert load_config(json.dumps(PRODUCTION), "x").lookback_hours == 24


def test_load_config_accepts_the_quoted_text_of_pulumi_stack_output_json():
    quoted = json.dumps(json.dumps(PRODUCTION))
    assert load_config(quoted, "monitor.json") == parse_config(PRODUCTION)


def test_the_production_config_needs_44_queries_with_valid_unique_ids():
    queries = build_queries(parse_config(PRODUCTION))
    # Aurora 8 + 3 functions x 5 + API 5 + 4 tables x 4
    assert len(queries) == 44
    ids = [q.id for q in queries]
    assert len(set(ids)) == len(ids)
    assert all(QUERY_ID.match(i) for i in ids)
    assert "lambda0_errors" in ids and "dynamodb3_write_throttles" in ids


names = st.lists(
    st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True), min_size=1, max_size=50, unique=True
)


@given(names, names, st.sampled_from(["rest", "http"]))
def test_every_valid_config_fits_one_get_metric_data_call(functions, tables, kind):
    api = (
        {"kind": "rest", "name": "api"} if kind == "rest" else {"kind": "http", "id": "a1b2c3d4e5"}
    )
    document = {**PRODUCTION, "function_names": functions, "table_names": tables, "api": api}
    queries = build_queries(parse_config(document))
    assert len(queries) <= MAX_QUERIES_PER_CALL
    assert len({q.id for q in queries}) == len(queries)
    assert all(QUERY_ID.match(q.id) for q in queries)


def test_the_largest_config_is_463_queries():
    document = {
        **PRODUCTION,
        "function_names": [f"f{i}" for i in range(MAX_FUNCTIONS)],
        "table_names": [f"t{i}" for i in range(MAX_TABLES)],
    }
    assert len(build_queries(parse_config(document))) == 463


def test_each_query_asks_for_one_datapoint_over_the_whole_window():
    config = parse_config(PRODUCTION)
    requests = metric_data_queries(build_queries(config), hours=24)
    by_id = {r["Id"]: r for r in requests}
    assert by_id["aurora0_read_latency_avg"]["MetricStat"] == {
        "Metric": {
            "Namespace": "AWS/RDS",
            "MetricName": "ReadLatency",
            "Dimensions": [
                {"Name": "DBClusterIdentifier", "Value": "securebase-production-aurora"}
            ],
        },
        "Period": 86400,
        "Stat": "Average",
    }
    assert by_id["api_gateway0_errors_5xx"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert {r["MetricStat"]["Stat"] for r in requests} == {"Sum", "Average", "Maximum"}


def test_http_apis_use_their_own_metric_names_and_dimension():
    config = parse_config(with_change("api", {"kind": "http", "id": "abcde12345"}))
    api = [
        r["MetricStat"]["Metric"]
        for r in metric_data_queries(build_queries(config), 24)
        if r["Id"].startswith("api_gateway")
    ]
    assert {m["MetricName"] for m in api} == {"Count", "4xx", "5xx", "Latency"}
    assert {d["Name"] for m in api for d in m["Dimensions"]} == {"ApiId"}


def test_the_window_ends_at_the_last_whole_minute():
    start, end = lookback_window(dt.datetime(2026, 12, 3, 6, 0, 42, 5, tzinfo=dt.UTC), 24)
    assert end == dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC)
    assert start == dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)


def test_readings_combine_pages_scale_units_and_keep_no_data_as_none():
    queries = build_queries(parse_config(PRODUCTION))
    pages = [
        {
            "MetricDataResults": [
                {"Id": "lambda0_invocations", "Values": [600.0]},
                {"Id": "aurora0_cpu_max", "Values": [70.0]},
                {"Id": "aurora0_read_latency_avg", "Values": [0.0025]},
                {"Id": "lambda1_errors", "Values": []},
            ],
            "NextToken": "next",
        },
        {
            "MetricDataResults": [
                {"Id": "lambda0_invocations", "Values": [400.0]},
                {"Id": "aurora0_cpu_max", "Values": [91.0]},
            ]
        },
    ]
    values = readings(queries, collect_values(pages))
    assert values[("lambda", "securebase-production-auth-v2", "invocations")] == 1000.0
    assert values[("aurora", "securebase-production-aurora", "cpu_max")] == 91.0
    assert values[("aurora", "securebase-production-aurora", "read_latency_avg")] == 2.5  # ms
    assert values[("lambda", "securebase-production-billing-worker", "errors")] is None
    assert values[("dynamodb", "securebase-production-invoices", "read_units")] is None
    assert len(values) == 44
