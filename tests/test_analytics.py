"""Properties of the pure analytics core and the period parameter."""

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.shared import analytics
from handlers.shared.cost_categories import CATEGORIES, SERVICE_CATEGORY
from handlers.shared.http import ApiError
from handlers.shared.metrics_layout import (
    ComplianceSnapshot,
    DailyCost,
    DailyUsage,
    HourlySample,
)
from handlers.shared.periods import MAX_DAYS, UNIT_DAYS, parse_period

CENT = Decimal("0.01")
moments = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),
    max_value=dt.datetime(2035, 12, 31),
    timezones=st.just(dt.UTC),
)
money = st.decimals(
    min_value=-1000, max_value=10**7, places=6, allow_nan=False, allow_infinity=False
)
services = st.sampled_from([*SERVICE_CATEGORY, "Tax", "AWS Support (Business)", "Amazon Bedrock"])
regions = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "global"])


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# The period parameter


@given(st.integers(1, 999), st.sampled_from(sorted(UNIT_DAYS)), st.booleans())
def test_periods_within_a_year_parse_to_their_days(count, unit, upper) -> None:
    raw = f"{count}{unit.upper() if upper else unit}"
    days = count * UNIT_DAYS[unit]
    if days > MAX_DAYS:
        with pytest.raises(ApiError) as rejected:
            parse_period(raw)
        assert (rejected.value.status, rejected.value.code) == (400, "invalid_period")
        return
    period = parse_period(raw)
    assert (period.label, period.days, period.normalised) == (f"{count}{unit}", days, f"{days}d")
    assert parse_period(period.normalised).days == days


@pytest.mark.parametrize("raw", ["", " ", " 7d", "7d ", "7d\n", "\t30d"])
def test_an_empty_or_padded_period_is_a_400_not_the_default(raw) -> None:
    with pytest.raises(ApiError) as rejected:
        parse_period(raw)
    assert (rejected.value.status, rejected.value.code) == (400, "invalid_period")
    assert parse_period(None).label == "30d"


@given(st.text(max_size=12))
def test_any_text_is_a_period_or_a_400_naming_the_parameter(raw) -> None:
    try:
        period = parse_period(raw)
    except ApiError as error:
        assert error.status == 400
        assert error.message.startswith("period must be Nd, Nw or Nm")
        return
    assert 1 <= period.days <= MAX_DAYS


@given(
    st.integers(1, MAX_DAYS),
    st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31)),
)
def test_windows_are_n_days_and_the_previous_one_touches_it(days, today) -> None:
    period = parse_period(f"{days}d")
    first, last = period.window(today)
    previous_first, previous_last = period.previous_window(today)
    assert last == today
    assert (last - first).days + 1 == days == (previous_last - previous_first).days + 1
    assert previous_last + dt.timedelta(days=1) == first


# Usage


@given(st.integers(1, MAX_DAYS), moments)
def test_usage_windows_have_a_point_per_day_or_per_elapsed_hour(days, now) -> None:
    windows = analytics.usage_windows(parse_period(f"{days}d"), now)
    slots = windows.slots()
    assert windows.hourly == (days <= 2)
    if windows.hourly:
        assert len(slots) == 24 * (days - 1) + now.hour + 1
        assert slots[-1] == now.replace(minute=0, second=0, microsecond=0)
    else:
        assert len(slots) == days
        assert slots[-1].date() == now.date()
    # The previous window is the same span one period earlier; a daily one counts
    # its last day for the share of today the aggregator has processed.
    assert windows.start - windows.previous_start == dt.timedelta(days=days)
    assert windows.previous_end - windows.previous_start == windows.end - windows.start
    assert windows.previous_end <= windows.start
    share = Decimal(1) if windows.hourly else Decimal(now.hour) / 24
    assert windows.previous_share(windows.previous_end - windows.step) == share
    assert windows.previous_share(windows.previous_start - windows.step) == 1


@settings(max_examples=50)
@given(st.integers(3, MAX_DAYS), moments)
def test_a_steady_tenant_is_flat_at_any_hour_of_a_daily_window(days, now) -> None:
    """Today's partial day is compared with the same part of a day one period earlier."""
    hours_today = now.hour  # the aggregator has rolled up today's complete hours
    today = now.date()
    records = []
    for offset in range(2 * days):
        hours = hours_today if offset == 0 else 24
        day = today - dt.timedelta(days=offset)
        records += [
            DailyUsage(day, "api_calls", Decimal(100 * hours), hours),
            DailyUsage(day, "compute_hours", Decimal("0.5") * hours, hours),
            DailyUsage(day, "data_transfer_gb", Decimal("0.25") * hours, hours),
            DailyUsage(day, "storage_gb", Decimal(40), hours),
        ]
    body = analytics.usage_body("acme", parse_period(f"{days}d"), records, now)
    assert body["metrics"]["api_calls"] == 100 * (24 * (days - 1) + hours_today)
    for metric, figure in body["trends"].items():
        assert figure["direction"] == "flat", metric
        assert figure["change_percent"] == 0, metric
    assert body["trends"]["api_calls"]["previous"] == body["metrics"]["api_calls"]


@settings(max_examples=50)
@given(
    st.integers(3, 60),
    st.decimals(min_value=0, max_value=10**5, places=3, allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=60),
    st.lists(st.integers(1, 24), min_size=1, max_size=60),
    moments,
)
def test_storage_is_averaged_and_counters_summed(days, level, calls, samples, now) -> None:
    """A constant storage level stays that level however many days it spans."""
    period = parse_period(f"{days}d")
    today = now.date()
    records = []
    for offset, (count, hours) in enumerate(zip(calls[:days], samples, strict=False)):
        day = today - dt.timedelta(days=offset)
        records.append(DailyUsage(day, "storage_gb", level, hours))
        records.append(DailyUsage(day, "api_calls", Decimal(count), hours))
    body = analytics.usage_body("acme", period, records, now)
    assert body["metrics"]["storage_gb"] == level.quantize(Decimal("0.001"))
    assert body["metrics"]["api_calls"] == sum(calls[: min(days, len(samples))])
    assert [point["date"] for point in body["series"]] == [
        (today - dt.timedelta(days=days - 1 - i)).isoformat() for i in range(days)
    ]


def test_hourly_window_compares_with_the_same_hours_a_day_earlier() -> None:
    now = dt.datetime(2026, 3, 1, 5, 30, tzinfo=dt.UTC)
    hour = dt.datetime(2026, 3, 1, 4, tzinfo=dt.UTC)
    records = [
        HourlySample(hour, "api_calls", Decimal(30)),
        HourlySample(hour - dt.timedelta(days=1), "api_calls", Decimal(20)),
        HourlySample(hour - dt.timedelta(hours=20), "api_calls", Decimal(500)),  # 08:00 yesterday
    ]
    body = analytics.usage_body("acme", parse_period("1d"), records, now)
    assert body["metrics"]["api_calls"] == 30
    assert body["trends"]["api_calls"] == {
        "previous": Decimal(20),
        "change_percent": Decimal("50.0"),
        "direction": "up",
        "basis": "complete",  # a day with data in each window
    }
    assert [point["hour"] for point in body["series"]][-1] == "2026-03-01T05:00:00Z"
    assert [point["partial"] for point in body["series"]] == [False] * 5 + [True]


@given(
    days=st.integers(min_value=3, max_value=60),
    now=moments,
    current_offsets=st.sets(st.integers(min_value=0, max_value=59)),
    previous_offsets=st.sets(st.integers(min_value=0, max_value=59)),
)
def test_a_change_is_given_only_against_a_previous_window_with_as_many_days_of_data(
    days, now, current_offsets, previous_offsets
) -> None:
    """Days with data are any subset of each window; the change is null exactly when
    the previous window has fewer of them (or nothing to compare with)."""
    today = now.date()
    current_days = {today - dt.timedelta(days=o) for o in current_offsets if o < days}
    previous_days = {today - dt.timedelta(days=days + o) for o in previous_offsets if o < days}
    records = [
        DailyUsage(day, "api_calls", Decimal(100 + index), 24)
        for index, day in enumerate(sorted(current_days | previous_days))
    ]
    body = analytics.usage_body("acme", parse_period(f"{days}d"), records, now)

    figure = body["trends"]["api_calls"]
    complete = len(previous_days) >= len(current_days)
    assert figure["basis"] == ("complete" if complete else "incomplete")
    if not complete or figure["previous"] == 0:
        assert figure["change_percent"] is None
    else:
        assert figure["change_percent"] is not None
    # The series' last point, today, is the only partial one.
    assert [point["partial"] for point in body["series"]] == [False] * (days - 1) + [True]


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        ("150", "100", {"change_percent": Decimal("50.0"), "direction": "up"}),
        ("50", "100", {"change_percent": Decimal("-50.0"), "direction": "down"}),
        ("1", "3", {"change_percent": Decimal("-66.7"), "direction": "down"}),
        ("7", "7", {"change_percent": Decimal("0.0"), "direction": "flat"}),
        ("5", "0", {"change_percent": None, "direction": "up"}),
        ("0", "0", {"change_percent": None, "direction": "flat"}),
    ],
)
def test_trend(current, previous, expected) -> None:
    assert analytics.trend(Decimal(current), Decimal(previous)) == {
        "previous": Decimal(previous),
        **expected,
        "basis": "complete",
    }
    incomplete = analytics.trend(Decimal(current), Decimal(previous), "incomplete")
    assert incomplete == {
        "previous": Decimal(previous),
        "change_percent": None,
        "direction": expected["direction"],
        "basis": "incomplete",
    }


# Costs


@given(st.dictionaries(st.text(min_size=1, max_size=8), money, max_size=12))
def test_split_to_cents_adds_up_to_the_rounded_total(amounts) -> None:
    total, parts = analytics.split_to_cents(amounts)
    assert total == to_cents(sum(amounts.values(), Decimal(0)))
    assert sum(parts.values(), Decimal(0)) == total
    assert list(parts) == list(amounts)
    for key, part in parts.items():
        assert part == part.quantize(CENT)
        assert abs(part - amounts[key]) < CENT


cost_days = st.lists(
    st.builds(
        lambda offset, by_service, by_region: (offset, by_service, by_region),
        st.integers(0, 40),
        st.dictionaries(services, money, max_size=6),
        st.dictionaries(regions, money, max_size=4),
    ),
    max_size=40,
    unique_by=lambda entry: entry[0],
)


@settings(max_examples=150)
@given(cost_days, st.integers(1, 31), st.sampled_from(analytics.BREAKDOWNS), moments)
def test_cost_breakdown_sums_to_the_total_to_the_cent(entries, days, breakdown, now) -> None:
    today = now.date()
    costs = [
        DailyCost(today - dt.timedelta(days=offset), "USD", by_service, by_region)
        for offset, by_service, by_region in entries
    ]
    body = analytics.costs_body("acme", parse_period(f"{days}d"), breakdown, costs, now)
    in_window = [cost.total for cost in costs if (today - cost.day).days < days]
    assert body["total"] == to_cents(sum(in_window, Decimal(0)))
    assert sum(body["breakdown"].values(), Decimal(0)) == body["total"]
    if breakdown == "category":
        assert list(body["breakdown"]) == list(CATEGORIES)


@pytest.mark.parametrize(
    ("today", "days_next_month", "forecast"),
    [
        (dt.date(2026, 11, 23), 31, Decimal("310.00")),
        (dt.date(2027, 1, 15), 28, Decimal("280.00")),
        (dt.date(2028, 1, 31), 29, Decimal("290.00")),
        (dt.date(2026, 12, 1), 31, Decimal("310.00")),
    ],
)
def test_forecast_is_the_last_seven_days_run_rate(today, days_next_month, forecast) -> None:
    costs = [
        DailyCost(today - dt.timedelta(days=offset), "USD", {"AWS Lambda": Decimal(10)}, {})
        for offset in range(1, 8)
    ]
    # Today (partial) and older days do not count; neither do missing days.
    costs.append(DailyCost(today, "USD", {"AWS Lambda": Decimal(1000)}, {}))
    costs.append(DailyCost(today - dt.timedelta(days=8), "USD", {"AWS Lambda": Decimal(1000)}, {}))
    assert analytics.forecast_next_month(costs, today) == forecast
    assert analytics.forecast_next_month(costs[3:7], today) == forecast  # 4 days with data
    assert analytics.forecast_next_month([], today) == Decimal("0.00")
    assert days_next_month * 10 == forecast


def test_costs_read_covers_the_window_and_the_forecast_days() -> None:
    now = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    assert analytics.cost_days_needed(parse_period("1d"), now) == (
        dt.date(2026, 11, 16),
        dt.date(2026, 11, 23),
    )
    assert analytics.cost_days_needed(parse_period("30d"), now) == (
        dt.date(2026, 10, 25),
        dt.date(2026, 11, 23),
    )


# Compliance


def snapshot(day: dt.date, score: str) -> ComplianceSnapshot:
    return ComplianceSnapshot(day, Decimal(score), 1, 1, {"high": 3}, (), "")


def test_compliance_trend_compares_with_a_snapshot_a_week_older() -> None:
    now = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    days = [dt.date(2026, 11, d) for d in (10, 15, 17, 22)]  # 15th: exactly a week older
    body = analytics.compliance_body(
        "acme",
        [
            snapshot(days[3], "70.04"),
            snapshot(days[2], "90"),
            snapshot(days[1], "75"),
            snapshot(days[0], "1"),
        ],
        now,
    )
    assert body["current_score"] == Decimal("70.0")
    assert body["trend"] == {
        "previous_score": Decimal("75.0"),
        "change": Decimal("-5.0"),
        "direction": "down",
    }
    assert body["findings"] == {"critical": 0, "high": 3, "medium": 0, "low": 0}

    lonely = analytics.compliance_body("acme", [snapshot(days[3], "70")], now)
    assert lonely["trend"] == {"previous_score": None, "change": None, "direction": "flat"}
