"""The aggregator's pure parts: hours, queries, rollups, costs and compliance scoring."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from decimal import Decimal

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import aggregator
from handlers.shared import env
from handlers.shared.aggregation import compliance, costs, hours, rollups, shards, tenants
from handlers.shared.aggregation.cloudwatch_queries import (
    DEFAULT_METRIC_NAMES,
    SeriesKey,
    UsageSource,
    query_batches,
    read_results,
)
from handlers.shared.aggregator.runtime import Sharding, ShardSettings
from handlers.shared.usage_metrics import API_CALLS, GIB, STORAGE_GB, USAGE_METRICS

SOURCE = UsageSource("SecureBase/Platform", "CustomerId", DEFAULT_METRIC_NAMES)
DAY = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 14, 5, tzinfo=dt.UTC)


def at(hour: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


# Hourly samples as the rollups see them: Decimals with at most 6 places.
samples = st.dictionaries(
    st.integers(0, 23).map(at),
    st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=24,
)


# -- rollups ---------------------------------------------------------------------


@given(samples)
def test_a_counters_day_is_exactly_the_sum_of_its_hours(hourly):
    rollup = rollups.daily_rollup(DAY, API_CALLS, hourly)
    assert rollup is not None
    assert rollup.value == sum(hourly.values())
    assert rollup.samples == len(hourly)
    assert (rollup.minimum, rollup.maximum, rollup.last) == (None, None, None)


@given(samples)
def test_a_gauges_day_is_the_mean_of_its_hours_and_never_their_sum(hourly):
    rollup = rollups.daily_rollup(DAY, STORAGE_GB, hourly)
    assert rollup is not None
    values = list(hourly.values())
    mean = sum(values) / len(values)
    assert min(values) <= rollup.value <= max(values)
    assert abs(rollup.value - mean) <= Decimal("0.0000005")
    assert (rollup.minimum, rollup.maximum) == (min(values), max(values))
    assert rollup.last == hourly[max(hourly)]
    assert rollup.samples == len(values)


def test_a_day_without_samples_has_no_rollup():
    assert rollups.daily_rollup(DAY, API_CALLS, {}) is None


@given(st.floats(min_value=0, max_value=1e15, allow_nan=False))
def test_values_are_written_without_exponents(raw):
    for metric in USAGE_METRICS:
        value = rollups.scaled(raw, metric)
        assert "E" not in str(value)
        assert abs(float(value) - raw * metric.scale) <= 5e-7 + abs(raw * metric.scale) * 1e-12


def test_raw_values_are_converted_to_the_served_units():
    by_key = {metric.key: metric for metric in USAGE_METRICS}
    assert rollups.scaled(150.0, by_key["api_calls"]) == Decimal(150)
    assert rollups.scaled(3 * GIB, by_key["storage_gb"]) == Decimal(3)
    assert rollups.scaled(5400.0, by_key["compute_hours"]) == Decimal("1.5")
    assert rollups.scaled(GIB / 4, by_key["data_transfer_gb"]) == Decimal("0.25")
    assert rollups.scaled(1000.0, by_key["compute_hours"]) == Decimal("0.277778")


# -- GetMetricData queries ------------------------------------------------------------


@given(st.integers(0, 1200), st.integers(1, 500))
def test_every_series_is_queried_exactly_once_within_the_limit(tenant_count, batch_size):
    tenant_ids = [f"t{index}" for index in range(tenant_count)]
    batches = query_batches(tenant_ids, SOURCE, batch_size=batch_size)
    assert len(batches) == math.ceil(tenant_count * 4 / batch_size)
    queried = [key for batch in batches for key in batch.series.values()]
    assert sorted(queried, key=str) == sorted(
        (SeriesKey(t, m.key) for t in tenant_ids for m in USAGE_METRICS), key=str
    )
    for batch in batches:
        assert len(batch.queries) <= batch_size
        assert [q["Id"] for q in batch.queries] == list(batch.series)
        assert len(set(batch.series)) == len(batch.queries)


def test_a_thousand_tenants_need_eight_requests():
    batches = query_batches([f"tenant-{i}" for i in range(1000)], SOURCE)
    assert [len(batch.queries) for batch in batches] == [500] * 8


def test_a_query_asks_for_the_hourly_statistic_of_one_tenant():
    storage = query_batches(["acme"], SOURCE)[0].queries[1]
    assert storage == {
        "Id": "q1",
        "MetricStat": {
            "Metric": {
                "Namespace": "SecureBase/Platform",
                "MetricName": "StorageBytes",
                "Dimensions": [{"Name": "CustomerId", "Value": "acme"}],
            },
            "Period": 3600,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


def test_results_map_back_to_series_across_pages_and_missing_hours_stay_missing():
    batch = query_batches(["acme", "globex"], SOURCE)[0]
    results = [
        {"Id": "q0", "StatusCode": "PartialData", "Timestamps": [at(1)], "Values": [5.0]},
        {"Id": "q4", "StatusCode": "Forbidden", "Timestamps": [], "Values": []},
        {"Id": "q0", "StatusCode": "Complete", "Timestamps": [at(3)], "Values": [7.0]},
        {"Id": "q1", "StatusCode": "Complete", "Timestamps": [], "Values": []},
    ]
    read = read_results(batch, results)
    assert read.values == {
        SeriesKey("acme", "api_calls"): {at(1): 5.0, at(3): 7.0},
        SeriesKey("acme", "storage_gb"): {},
    }
    assert read.failed == {SeriesKey("globex", "api_calls"): "Forbidden"}


# -- hours --------------------------------------------------------------------------


def test_the_first_run_processes_the_last_complete_hour():
    assert hours.catch_up_hours(NOW, None) == ([at(13)], 0)


def test_a_duplicate_run_redoes_the_last_complete_hour():
    assert hours.catch_up_hours(NOW, at(13)) == ([at(13)], 0)


@given(st.integers(0, 24 * 10), st.integers(1, 72))
def test_catch_up_is_contiguous_ends_at_the_last_complete_hour_and_is_capped(gap, limit):
    last_done = at(13) - dt.timedelta(hours=gap)
    processed, skipped = hours.catch_up_hours(NOW, last_done, limit)
    assert processed[-1] == at(13)
    assert len(processed) == min(max(gap, 1), limit)
    assert skipped == max(0, gap - limit)
    assert all(b - a == hours.HOUR for a, b in itertools.pairwise(processed))


def test_backfill_takes_hours_starting_inside_the_range_that_are_complete():
    start = at(10) - dt.timedelta(minutes=30)
    assert hours.backfill_hours(start, at(13), NOW) == [at(10), at(11), at(12)]
    assert hours.backfill_hours(at(12), at(18), NOW) == [at(12), at(13)]


def test_refreshes_are_due_on_whole_hours_so_schedule_drift_does_not_skip_one():
    refreshed = dt.datetime(2026, 11, 23, 8, 0, 40, tzinfo=dt.UTC)
    assert hours.refresh_due(None, NOW, 6)
    assert hours.refresh_due(refreshed, dt.datetime(2026, 11, 23, 14, 0, 5, tzinfo=dt.UTC), 6)
    assert not hours.refresh_due(refreshed, dt.datetime(2026, 11, 23, 13, 59, tzinfo=dt.UTC), 6)


def test_hourly_samples_expire_after_the_retention():
    assert hours.expires_at(at(13), 14) == int(at(13).timestamp()) + 14 * 86400
    assert hours.is_retained(NOW - dt.timedelta(days=13), NOW, 14)
    assert not hours.is_retained(NOW - dt.timedelta(days=14), NOW, 14)


# -- tenants --------------------------------------------------------------------------


def test_the_roster_skips_invalid_ids_and_shared_accounts():
    roster = tenants.roster(
        [
            {"customer_id": "globex", "aws_account_id": "222222222222"},
            {"customer_id": "acme", "aws_account_id": "111111111111"},
            {"customer_id": "../etc", "aws_account_id": "333333333333"},
            {"customer_id": "hooli", "aws_account_id": "444444444444"},
            {"customer_id": "pied-piper", "aws_account_id": "444444444444"},
            {"customer_id": "initrode", "aws_account_id": "not-an-account"},
        ]
    )
    assert roster.ids == ("acme", "globex", "hooli", "initrode", "pied-piper")
    assert roster.rejected_ids == ("../etc",)
    assert roster.tenant_by_account() == {"111111111111": "acme", "222222222222": "globex"}


# -- costs ------------------------------------------------------------------------------


def group(account: str, key: str, amount: str) -> dict:
    return {"Keys": [account, key], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}


def period(day: str, *groups: dict) -> dict:
    return {"TimePeriod": {"Start": day, "End": day}, "Groups": list(groups)}


def test_costs_merge_both_series_per_tenant_and_day():
    pages = {
        costs.SERVICE: [
            {"ResultsByTime": [period("2026-11-22", group("111111111111", "AWS Lambda", "1.10"))]},
            # The same day continued on the next page.
            {
                "ResultsByTime": [
                    period("2026-11-22", group("111111111111", "Amazon DynamoDB", "0.40")),
                    period("2026-11-19", group("111111111111", "AWS Lambda", "5")),  # outside
                ]
            },
        ],
        costs.REGION: [
            {
                "ResultsByTime": [
                    period(
                        "2026-11-22",
                        group("111111111111", "us-east-1", "1.50"),
                        group("999999999999", "us-east-1", "3"),
                    )
                ]
            }
        ],
    }
    result = costs.tenant_costs(
        pages, {"111111111111": "acme"}, dt.date(2026, 11, 20), dt.date(2026, 11, 23)
    )
    (cost,) = result.costs["acme"]
    assert cost.day == dt.date(2026, 11, 22)
    assert dict(cost.services) == {
        "AWS Lambda": Decimal("1.10"),
        "Amazon DynamoDB": Decimal("0.40"),
    }
    assert dict(cost.regions) == {"us-east-1": Decimal("1.50")}
    assert cost.total == Decimal("1.50")
    assert result.failed == {}


def test_an_unreadable_amount_fails_only_its_tenant():
    pages = {
        costs.SERVICE: [
            {
                "ResultsByTime": [
                    period(
                        "2026-11-22",
                        group("111111111111", "AWS Lambda", "n/a"),
                        group("222222222222", "AWS Lambda", "2"),
                    )
                ]
            }
        ]
    }
    result = costs.tenant_costs(
        pages,
        {"111111111111": "acme", "222222222222": "globex"},
        dt.date(2026, 11, 22),
        dt.date(2026, 11, 22),
    )
    assert set(result.costs) == {"globex"}
    assert result.failed == {"acme": "unreadable service amount on 2026-11-22"}


def test_scheduled_cost_refreshes_read_today_and_the_three_days_before():
    assert costs.recent_days(DAY) == (dt.date(2026, 11, 20), DAY)


# -- compliance --------------------------------------------------------------------------


def finding(
    control: str, status: str, severity: str = "INFORMATIONAL", resource: str = "r", **extra
):
    return {
        "AwsAccountId": "111111111111",
        "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/securityhub",
        "CompanyName": "AWS",
        "Title": control,
        "Severity": {"Label": severity},
        "Resources": [{"Id": resource}],
        "Compliance": {"Status": status, "SecurityControlId": control},
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
        **extra,
    }


def snapshot(*findings: dict):
    return compliance.snapshots(
        findings, {"111111111111": "acme"}, DAY, "2026-11-23T14:05:00Z"
    ).get("acme")


def test_a_control_fails_if_any_of_its_findings_failed():
    result = snapshot(
        finding("S3.8", "PASSED", resource="a"),
        finding("S3.8", "FAILED", "HIGH", resource="b"),
        finding("S3.5", "PASSED"),
        finding("KMS.4", "WARNING", "LOW"),  # neither passed nor failed
    )
    assert (result.passed_controls, result.failed_controls, result.score) == (1, 1, Decimal(50))
    assert dict(result.findings) == {"critical": 0, "high": 1, "medium": 0, "low": 0}


def test_top_issues_are_the_five_worst_failed_controls():
    result = snapshot(
        *(finding(f"Low.{i}", "FAILED", "LOW", resource=f"r{i}") for i in range(3)),
        finding("High.1", "FAILED", "HIGH", resource="x"),
        finding("High.2", "FAILED", "HIGH", resource="x"),
        finding("High.2", "FAILED", "HIGH", resource="y"),
        finding("Crit.1", "FAILED", "CRITICAL"),
        finding("Info.1", "FAILED", "INFORMATIONAL"),
    )
    assert [(i.control_id, i.severity, i.failed_resources) for i in result.top_issues] == [
        ("Crit.1", "critical", 1),
        ("High.2", "high", 2),
        ("High.1", "high", 1),
        ("Low.0", "low", 1),
        ("Low.1", "low", 1),
    ]
    assert result.failed_controls == 7  # the informational control fails too, unranked
    assert result.score == 0


def test_legacy_findings_use_the_control_id_and_normalized_severity():
    legacy = {
        "AwsAccountId": "111111111111",
        "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/securityhub",
        "CompanyName": "AWS",
        "Title": "Legacy control",
        "Severity": {"Normalized": 75},
        "ProductFields": {"ControlId": "CIS.1.1"},
        "Compliance": {"Status": "FAILED"},
        "Resources": [{"Id": "root"}],
    }
    result = snapshot(legacy)
    assert result.top_issues[0].control_id == "CIS.1.1"
    assert result.top_issues[0].severity == "high"


def test_a_tenant_without_control_findings_gets_no_snapshot():
    assert snapshot(finding("S3.8", "NOT_AVAILABLE")) is None


def test_the_findings_request_names_tenant_accounts_only_while_the_api_allows():
    few = compliance.findings_request([f"{i:012d}" for i in range(20)])
    many = compliance.findings_request([f"{i:012d}" for i in range(21)])
    assert len(few["Filters"]["AwsAccountId"]) == 20
    assert "AwsAccountId" not in many["Filters"]
    assert many["Filters"]["WorkflowStatus"] == [
        {"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}
    ]
    assert many["MaxResults"] == 100


# -- settings and events ---------------------------------------------------------------


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(env.METRICS_TABLE, "metrics")
    monkeypatch.setenv(env.CUSTOMERS_TABLE, "customers")
    monkeypatch.setenv(env.USAGE_METRIC_NAMES, '{"api_calls": "Requests"}')
    monkeypatch.setenv(env.COST_REFRESH_HOURS, "12")
    settings = aggregator.Settings.from_env()
    assert settings.usage_source.metric_names == {**DEFAULT_METRIC_NAMES, "api_calls": "Requests"}
    assert settings.usage_source.namespace == "SecureBase/Platform"
    assert (settings.cost_refresh_hours, settings.hourly_retention_days) == (12, 14)


@pytest.mark.parametrize("names", ['{"cpu": "Cpu"}', "[]", "not json", '{"api_calls": ""}'])
def test_bad_metric_names_fail_loudly(monkeypatch, names):
    monkeypatch.setenv(env.METRICS_TABLE, "metrics")
    monkeypatch.setenv(env.CUSTOMERS_TABLE, "customers")
    monkeypatch.setenv(env.USAGE_METRIC_NAMES, names)
    with pytest.raises(env.MissingEnvironment, match="USAGE_METRIC_NAMES"):
        aggregator.Settings.from_env()


def test_sharding_comes_from_the_environment_only_with_a_shard_queue(monkeypatch):
    monkeypatch.setenv(env.METRICS_TABLE, "metrics")
    monkeypatch.setenv(env.CUSTOMERS_TABLE, "customers")
    assert aggregator.Settings.from_env().sharding is None
    monkeypatch.setenv(env.AGGREGATOR_SHARD_QUEUE_URL, "https://sqs/q")
    monkeypatch.setenv(env.AGGREGATOR_SHARD_THRESHOLD, "2000")
    monkeypatch.setenv(env.AGGREGATOR_TENANTS_PER_SHARD, "750")
    monkeypatch.setenv(env.AGGREGATOR_WRITE_CONCURRENCY, "8")
    monkeypatch.setenv(env.AGGREGATOR_SHARD_MAX_ATTEMPTS, "5")
    settings = aggregator.Settings.from_env()
    assert settings.sharding == Sharding("https://sqs/q", threshold=2000, tenants_per_shard=750)
    assert settings.usage.write_concurrency == 8
    assert ShardSettings.from_env().max_attempts == 5
    assert (settings.sharding.applies_to(1999), settings.sharding.applies_to(2000)) == (False, True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (env.AGGREGATOR_TENANTS_PER_SHARD, "1000.5"),
        (env.AGGREGATOR_TENANTS_PER_SHARD, "130"),
        (env.AGGREGATOR_WRITE_CONCURRENCY, "33"),
        (env.AGGREGATOR_SHARD_THRESHOLD, "0"),
    ],
)
def test_bad_sharding_variables_fail_loudly_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(env.METRICS_TABLE, "metrics")
    monkeypatch.setenv(env.CUSTOMERS_TABLE, "customers")
    monkeypatch.setenv(env.AGGREGATOR_SHARD_QUEUE_URL, "https://sqs/q")
    monkeypatch.setenv(name, value)
    with pytest.raises(env.MissingEnvironment, match=name):
        aggregator.Settings.from_env()


# -- shards ---------------------------------------------------------------------------


@hypothesis.settings(max_examples=60)
@given(
    tenant_count=st.integers(1, 400),
    per_shard=st.sampled_from([125, 250]),
    first=st.integers(0, 23),
    count=st.integers(1, 24 * 5),
)
def test_a_plan_covers_every_tenant_and_hour_exactly_once(tenant_count, per_shard, first, count):
    ids = [f"t{index:04d}" for index in range(tenant_count)]
    run_hours = [at(first) + index * hours.HOUR for index in range(count)]

    planned = shards.plan("run", shards.HOURLY, NOW, run_hours, ids, per_shard)

    covered = [(tenant, hour) for task in planned for tenant in task.tenants for hour in task.hours]
    assert sorted(covered) == sorted(itertools.product(ids, run_hours))
    assert all(len(task.tenants) <= per_shard for task in planned)
    assert all(len(hours.by_day(task.hours)) <= shards.MAX_DAYS_PER_SHARD for task in planned)
    # Whole GetMetricData batches: the shards need exactly the requests one run would.
    batches = sum(
        math.ceil(4 * len(task.tenants) / 500) * len(hours.by_day(task.hours)) for task in planned
    )
    assert batches == math.ceil(4 * tenant_count / 500) * len(hours.by_day(run_hours))
    assert len({task.shard_id for task in planned}) == len(planned)
    assert all(shards.ShardTask.from_message(task.to_message()) == task for task in planned)


def test_a_plan_refuses_gaps_and_partial_query_batches():
    with pytest.raises(ValueError, match="contiguous"):
        shards.plan("r", shards.HOURLY, NOW, [at(1), at(3)], ["a"], 125)
    with pytest.raises(ValueError, match="multiple of 125"):
        shards.plan("r", shards.HOURLY, NOW, [at(1)], ["a"], 130)


def test_the_largest_shard_message_fits_in_one_sqs_message():
    longest = [f"{index:04d}".ljust(64, "x") for index in range(shards.MAX_TENANTS_PER_SHARD)]
    (task,) = shards.plan("r" * 128, shards.BACKFILL, NOW, [at(0)], longest, len(longest))
    assert len(task.to_message().encode()) < 256 * 1024


def test_backfill_events_are_parsed_and_checked():
    assert aggregator.parse_backfill({"source": "aws.scheduler"}) is None
    assert aggregator.parse_backfill(
        {"backfill": {"start": "2026-08-25T00:00:00Z", "end": "2026-11-23T00:00:00+00:00"}}
    ) == (dt.datetime(2026, 8, 25, tzinfo=dt.UTC), dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    for bad in (
        {"start": "yesterday"},
        {"start": "2026-11-23T00:00Z", "end": "2026-11-22T00:00Z"},
        "x",
    ):
        with pytest.raises(ValueError, match="backfill"):
            aggregator.parse_backfill({"backfill": bad})
