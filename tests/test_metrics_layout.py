import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from handlers.shared import metrics_layout as layout
from handlers.shared.dynamo import deserialize, serialize, to_number
from handlers.shared.periods import parse_period

tenants = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
days = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31))
amounts = st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False)
metrics = st.sampled_from(["api_calls", "storage_gb", "compute_hours", "data_transfer_gb"])


def round_trip(item):
    return layout.parse_item(deserialize(serialize(item)))


@given(tenants, days, st.integers(0, 23), metrics, amounts)
def test_hourly_samples_round_trip(tenant, day, hour, metric, value):
    start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
    sample = layout.HourlySample(hour=start, metric=metric, value=value)
    item = layout.hourly_item(tenant, sample, expires_at=1_900_000_000)
    assert item["pk"] == tenant
    assert item["ttl"] == 1_900_000_000
    assert round_trip(item) == sample


@given(tenants, days, metrics, amounts, st.integers(1, 24))
def test_daily_rollups_round_trip(tenant, day, metric, value, samples):
    usage = layout.DailyUsage(day=day, metric=metric, value=value, samples=samples)
    assert round_trip(layout.daily_item(tenant, usage)) == usage


@given(tenants, days, st.dictionaries(st.text(min_size=1, max_size=30), amounts, max_size=8))
def test_costs_round_trip_and_total_is_the_sum_of_services(tenant, day, services):
    cost = layout.DailyCost(
        day=day,
        currency="USD",
        services=services,
        regions={"us-east-1": sum(services.values(), Decimal(0))},
    )
    parsed = round_trip(layout.cost_item(tenant, cost))
    assert parsed == cost
    assert parsed.total == sum(services.values(), Decimal(0))


def test_compliance_snapshot_round_trips():
    snapshot = layout.ComplianceSnapshot(
        day=dt.date(2026, 11, 23),
        score=Decimal("87.5"),
        passed_controls=35,
        failed_controls=5,
        findings={"critical": 1, "high": 2, "medium": 3, "low": 4},
        top_issues=(
            layout.ComplianceIssue("S3.8", "S3 buckets should block public access", "critical", 2),
        ),
        generated_at="2026-11-23T14:05:00Z",
    )
    assert round_trip(layout.compliance_item("acme", snapshot)) == snapshot


@given(days, days)
def test_day_ranges_contain_exactly_the_days_between(first, last):
    low, high = layout.daily_range(first, last)
    for day in (first, last):
        sk = layout.daily_sk(day, "storage_gb")
        assert (low <= sk <= high) == (first <= day <= last)
    outside = layout.daily_sk(last + dt.timedelta(days=1), "api_calls")
    assert not low <= outside <= high


def test_keys_of_different_kinds_never_collide():
    day = dt.date(2026, 11, 23)
    hour = dt.datetime(2026, 11, 23, 0, tzinfo=dt.UTC)
    keys = {
        layout.hourly_sk(hour, "api_calls"),
        layout.daily_sk(day, "api_calls"),
        layout.cost_sk(day),
        layout.compliance_sk(day),
    }
    assert len(keys) == 4


@given(st.text(max_size=70))
def test_tenant_ids_never_look_like_the_aggregator_partition(value):
    if layout.is_valid_tenant_id(value):
        assert not value.startswith("#") and value != layout.AGGREGATOR_PARTITION


def test_floats_become_exact_decimals():
    assert to_number(0.1 + 0.2) == Decimal("0.3")
    assert to_number(5) == Decimal(5)


@given(st.integers(1, 365), st.sampled_from(["d", "w", "m"]))
def test_periods_within_a_year_parse_and_normalise(n, unit):
    days = n * {"d": 1, "w": 7, "m": 30}[unit]
    raw = f"{n}{unit}"
    if days <= 365:
        period = parse_period(raw)
        assert period.days == days
        first, last = period.window(dt.date(2026, 11, 23))
        assert (last - first).days + 1 == days
        prev_first, prev_last = period.previous_window(dt.date(2026, 11, 23))
        assert (prev_last - prev_first).days + 1 == days
        assert prev_last + dt.timedelta(days=1) == first
