"""The analytics API's response bodies, computed from metrics records (pure: no AWS).

`GET /analytics/usage`, `/costs` and `/compliance` answer exactly what
`usage_body`, `costs_body` and `compliance_body` return, and the reports are
built from the same bodies, so a report and the API never disagree.

Windows (see `handlers.shared.periods`): a period of N days ends with the
current, partial UTC day. `metrics` and `series` cover the whole window,
today's partial day included. A trend compares `metrics` with `previous`, the
same figure over the previous window: the same span one period (N days)
earlier, cut at the same time of day, so the two are directly comparable.
A trend counts only complete coverage: when the previous window has data
for fewer days of a metric than the current one (hourly windows too count
days), its `basis` is `incomplete` and `change_percent` is null. The series' last
point, the current day (or hour), is marked `partial`.

- Windows of up to two days are served from hourly samples: the previous
  window holds exactly the same hours N days earlier.
- Longer windows are served from daily rollups, which cannot be cut inside a
  day: the previous window's last day counts for the share of today already
  aggregated (16 of 24 hours at 16:20 UTC), prorated evenly for counters.
  Gauges are levels, not amounts, and need no proration. Comparing a window
  that ends with a partial day against N whole days would instead make every
  counter look like a drop for most of the day.

Units and rounding in the bodies: `api_calls` is a whole number of calls;
`storage_gb` (GiB, a gauge: averaged over the window, never summed),
`compute_hours` and `data_transfer_gb` (GiB) have 3 decimals; money is USD
with 2 decimals; percentages and compliance scores have 1 decimal. Trends
compare rounded figures. A tenant without data gets zeros.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from handlers.shared.cost_categories import CATEGORIES, category_of
from handlers.shared.metrics_layout import (
    SEVERITIES,
    ComplianceSnapshot,
    DailyCost,
    DailyUsage,
    HourlySample,
)
from handlers.shared.periods import Period
from handlers.shared.usage_metrics import USAGE_METRICS

HOURLY_MAX_DAYS = 2  # windows up to this long are served from hourly samples
FORECAST_DAYS = 7  # complete days behind the cost run-rate
COMPLIANCE_LOOKBACK_DAYS = 14  # snapshots read to find the latest and the one a week before
COMPLIANCE_TREND_DAYS = 7
BREAKDOWNS = ("category", "service", "region")
UNATTRIBUTED = "unattributed"  # region breakdown: cost not reported per region
CURRENCY = "USD"

CENT = Decimal("0.01")
_ZERO = Decimal(0)
_HOUR = dt.timedelta(hours=1)
_DAY = dt.timedelta(days=1)
_PLACES = {"api_calls": Decimal(1)}  # other metrics: 3 decimals
_DEFAULT_PLACES = Decimal("0.001")
_KIND = {metric.key: metric.kind for metric in USAGE_METRICS}
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def iso_utc(moment: dt.datetime) -> str:
    """`2026-11-23T14:05:00Z`: what every timestamp in a body looks like."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _round(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


# Usage


@dataclass(frozen=True)
class UsageWindows:
    """The current window [start, end) and the previous one, one period earlier.

    The current window ends with the current hour (hourly) or today (daily);
    `last_slot_share` is how much of the previous window's last slot counts:
    1 for hourly windows, today's share of aggregated hours for daily ones.
    """

    period: Period
    hourly: bool  # served from hourly samples (period of at most two days)
    start: dt.datetime
    end: dt.datetime
    last_slot_share: Decimal

    @property
    def step(self) -> dt.timedelta:
        return _HOUR if self.hourly else _DAY

    @property
    def shift(self) -> dt.timedelta:
        return dt.timedelta(days=self.period.days)

    @property
    def previous_start(self) -> dt.datetime:
        return self.start - self.shift

    @property
    def previous_end(self) -> dt.datetime:
        return self.end - self.shift

    def slots(self) -> list[dt.datetime]:
        """The series' points: every hour (hourly) or day (daily) of the current window."""
        count = (self.end - self.start) // self.step
        return [self.start + self.step * index for index in range(count)]

    def previous_share(self, slot: dt.datetime) -> Decimal:
        """How much of a previous-window slot's counters the comparison counts."""
        return self.last_slot_share if slot == self.previous_end - self.step else Decimal(1)


def usage_windows(period: Period, now: dt.datetime) -> UsageWindows:
    """Windows ending with the current hour (hourly) or the current day (daily)."""
    now = now.astimezone(dt.UTC)
    first_day, _ = period.window(now.date())
    start = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    if period.days <= HOURLY_MAX_DAYS:
        end = now.replace(minute=0, second=0, microsecond=0) + _HOUR
        return UsageWindows(period, hourly=True, start=start, end=end, last_slot_share=Decimal(1))
    today = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC)
    # The aggregator has processed today's complete hours: 16 of them at 16:20.
    share = Decimal(now.hour) / 24
    return UsageWindows(period, hourly=False, start=start, end=today + _DAY, last_slot_share=share)


def _slot_of(record: DailyUsage | HourlySample) -> dt.datetime:
    if isinstance(record, HourlySample):
        return record.hour.astimezone(dt.UTC)
    return dt.datetime.combine(record.day, dt.time(), tzinfo=dt.UTC)


def _weight(record: DailyUsage | HourlySample) -> int:
    # A daily gauge value is the mean of its hourly samples: weigh it by them,
    # so the window's mean is the mean over every sampled hour.
    return max(record.samples, 1) if isinstance(record, DailyUsage) else 1


def _aggregate(
    records: Iterable[DailyUsage | HourlySample],
    counter_share: Callable[[dt.datetime], Decimal] | None = None,
) -> dict[str, Decimal]:
    """Counters summed (each record times `counter_share` of its slot, if given),
    gauges averaged; metrics without records are zero."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    weights: dict[str, int] = defaultdict(int)
    for record in records:
        kind = _KIND.get(record.metric)
        if kind == "counter":
            share = counter_share(_slot_of(record)) if counter_share else 1
            totals[record.metric] += record.value * share
        elif kind == "gauge":
            totals[record.metric] += record.value * _weight(record)
            weights[record.metric] += _weight(record)
    values = {}
    for metric in USAGE_METRICS:
        value = totals[metric.key]
        if metric.kind == "gauge":
            value = value / weights[metric.key] if weights[metric.key] else _ZERO
        values[metric.key] = _round(value, _PLACES.get(metric.key, _DEFAULT_PLACES))
    return values


COMPLETE = "complete"  # the previous window has data for at least as many slots
INCOMPLETE = "incomplete"  # it has fewer: a change would measure missing data


def trend(current: Decimal, previous: Decimal, basis: str = COMPLETE) -> dict[str, Any]:
    """Change from `previous` to `current`.

    `change_percent` is null when previous is 0, and when the comparison's
    `basis` is incomplete: against a previous window that has data for fewer
    days than the current one, a change measures the missing data,
    not the tenant (a 90-day window against a previous one holding a single
    partial day showed +75,875%).
    """
    change = (
        None
        if previous == 0 or basis == INCOMPLETE
        else _round((current - previous) * 100 / previous, Decimal("0.1"))
    )
    direction = "up" if current > previous else "down" if current < previous else "flat"
    return {"previous": previous, "change_percent": change, "direction": direction, "basis": basis}


def days_with_data(records: Iterable[DailyUsage | HourlySample]) -> dict[str, int]:
    """Per metric, the number of UTC days with at least one record (rollup or sample)."""
    days: dict[str, set[dt.date]] = defaultdict(set)
    for record in records:
        days[record.metric].add(_slot_of(record).date())
    return {metric.key: len(days[metric.key]) for metric in USAGE_METRICS}


def comparison_basis(current_days: int, previous_days: int) -> str:
    """Complete when the previous window has data for at least as many days."""
    return COMPLETE if previous_days >= current_days else INCOMPLETE


def usage_body(
    tenant: str,
    period: Period,
    records: Sequence[DailyUsage | HourlySample],
    now: dt.datetime,
) -> dict[str, Any]:
    """The `GET /analytics/usage` body.

    `records` are the tenant's daily rollups (or hourly samples, for windows of
    up to two days) covering the previous and the current window, as
    `MetricsReader.usage_for_period` returns them; records outside both
    windows are ignored.
    """
    windows = usage_windows(period, now)
    current = [r for r in records if windows.start <= _slot_of(r) < windows.end]
    previous = [r for r in records if windows.previous_start <= _slot_of(r) < windows.previous_end]
    metrics = _aggregate(current)
    previous_metrics = _aggregate(previous, windows.previous_share)
    # Today's partial day counts as a day with data, and so does the previous
    # window's last day, which is cut at the same time of day.
    current_days = days_with_data(current)
    previous_days = days_with_data(previous)
    by_slot: dict[dt.datetime, list[DailyUsage | HourlySample]] = defaultdict(list)
    for record in current:
        by_slot[_slot_of(record)].append(record)
    slots = windows.slots()
    series = [
        {
            **({"hour": iso_utc(slot)} if windows.hourly else {"date": slot.date().isoformat()}),
            **_aggregate(by_slot.get(slot, ())),
            # The current hour or day is still being aggregated.
            "partial": slot == slots[-1],
        }
        for slot in slots
    ]
    return {
        "customer_id": tenant,
        "period": period.label,
        "metrics": metrics,
        "trends": {
            key: trend(
                metrics[key],
                previous_metrics[key],
                comparison_basis(current_days[key], previous_days[key]),
            )
            for key in metrics
        },
        "series": series,
        "generated_at": iso_utc(now),
    }


# Costs


def cost_days_needed(period: Period, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """First and last day of costs `costs_body` reads: the window and the run-rate days."""
    today = now.astimezone(dt.UTC).date()
    first, last = period.window(today)
    return min(first, today - dt.timedelta(days=FORECAST_DAYS)), last


def split_to_cents(amounts: Mapping[str, Decimal]) -> tuple[Decimal, dict[str, Decimal]]:
    """The sum of `amounts` in cents, and each amount in cents adding up to it exactly.

    Largest-remainder rounding: every amount is floored to a cent, then the
    cents still missing to reach the rounded total go to the largest
    remainders (ties: in the mapping's order). Each rounded amount is within
    a cent of the exact one.
    """
    total = _round(sum(amounts.values(), _ZERO), CENT)
    floored = {key: value.quantize(CENT, rounding=ROUND_FLOOR) for key, value in amounts.items()}
    # Flooring loses less than a cent per amount with a remainder, so this is
    # between 0 and the number of such amounts: only they receive a cent.
    missing = int((total - sum(floored.values(), _ZERO)) / CENT)
    by_remainder = sorted(amounts, key=lambda key: amounts[key] - floored[key], reverse=True)
    for key in by_remainder[:missing]:
        floored[key] += CENT
    return total, floored


def _breakdown_amounts(costs: Sequence[DailyCost], breakdown: str) -> dict[str, Decimal]:
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    if breakdown == "category":
        for category in CATEGORIES:
            amounts[category] = _ZERO
    for cost in costs:
        if breakdown == "region":
            for region, amount in cost.regions.items():
                amounts[region] += amount
            # The total is the services' sum; what no region reported stays visible.
            gap = cost.total - sum(cost.regions.values(), _ZERO)
            if gap:
                amounts[UNATTRIBUTED] += gap
        else:
            for service, amount in cost.services.items():
                key = category_of(service) if breakdown == "category" else service
                amounts[key] += amount
    if breakdown == "category":
        return dict(amounts)
    return dict(sorted(amounts.items(), key=lambda item: (-item[1], item[0])))


def forecast_next_month(costs: Sequence[DailyCost], today: dt.date) -> Decimal:
    """Run-rate forecast of next calendar month's cost.

    The mean daily cost over the last 7 complete days (today excluded) that
    have cost records, times the number of days in next month, in cents.
    Days without a record are left out rather than counted as zero: Cost
    Explorer reports a day up to a day late. No records give 0.
    """
    recent = [
        cost.total for cost in costs if today - dt.timedelta(days=FORECAST_DAYS) <= cost.day < today
    ]
    if not recent:
        return _ZERO.quantize(CENT)
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    days = calendar.monthrange(next_month.year, next_month.month)[1]
    return _round(sum(recent, _ZERO) / len(recent) * days, CENT)


def costs_body(
    tenant: str,
    period: Period,
    breakdown: str,
    cost_days: Sequence[DailyCost],
    now: dt.datetime,
) -> dict[str, Any]:
    """The `GET /analytics/costs` body; `breakdown` is one of BREAKDOWNS.

    `cost_days` must cover `cost_days_needed(period, now)` (extra days are
    ignored). The breakdown's amounts add up to `total` to the cent.
    """
    today = now.astimezone(dt.UTC).date()
    first, last = period.window(today)
    in_window = [cost for cost in cost_days if first <= cost.day <= last]
    total, amounts = split_to_cents(_breakdown_amounts(in_window, breakdown))
    return {
        "customer_id": tenant,
        "period": period.label,
        "total": total,
        "currency": CURRENCY,
        "breakdown": amounts,
        "forecast_next_month": forecast_next_month(cost_days, today),
        "generated_at": iso_utc(now),
    }


# Compliance


def compliance_days_needed(now: dt.datetime) -> tuple[dt.date, dt.date]:
    today = now.astimezone(dt.UTC).date()
    return today - dt.timedelta(days=COMPLIANCE_LOOKBACK_DAYS), today


def compliance_body(
    tenant: str, snapshots: Sequence[ComplianceSnapshot], now: dt.datetime
) -> dict[str, Any]:
    """The `GET /analytics/compliance` body from the tenant's recent snapshots.

    The latest snapshot gives the score, findings and top issues; the trend
    compares it with the latest snapshot at least 7 days older
    (`previous_score` and `change` are null when there is none). Without any
    snapshot, the score and every count are 0.
    """
    ordered = sorted(snapshots, key=lambda snapshot: snapshot.day)
    latest = ordered[-1] if ordered else None
    earlier = [
        snapshot
        for snapshot in ordered
        if latest and snapshot.day <= latest.day - dt.timedelta(days=COMPLIANCE_TREND_DAYS)
    ]
    score = _round(latest.score, Decimal("0.1")) if latest else Decimal("0.0")
    previous = _round(earlier[-1].score, Decimal("0.1")) if earlier else None
    issues = sorted(
        latest.top_issues if latest else (),
        key=lambda issue: (
            _SEVERITY_RANK.get(issue.severity, len(SEVERITIES)),
            -issue.failed_resources,
            issue.control_id,
        ),
    )
    return {
        "customer_id": tenant,
        "current_score": score,
        "trend": {
            "previous_score": previous,
            "change": None if previous is None else score - previous,
            "direction": "flat"
            if previous is None or score == previous
            else "up"
            if score > previous
            else "down",
        },
        "findings": {
            severity: (latest.findings.get(severity, 0) if latest else 0) for severity in SEVERITIES
        },
        "top_issues": [
            {
                "control_id": issue.control_id,
                "title": issue.title,
                "severity": issue.severity,
                "failed_resources": issue.failed_resources,
            }
            for issue in issues
        ],
        "generated_at": iso_utc(now),
    }
