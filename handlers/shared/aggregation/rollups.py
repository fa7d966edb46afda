"""Hourly samples and daily rollups from raw CloudWatch values (pure).

Values are Decimal with at most 6 decimal places, written without exponent
("150", not "1.5E+2"). A day's rollup is computed from the same rounded
hourly samples that are stored, so a counter's daily value is exactly the sum
of its stored hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from handlers.shared.dynamo import to_number
from handlers.shared.metrics_layout import DailyUsage, HourlySample
from handlers.shared.usage_metrics import UsageMetric

PLACES = 6
_QUANTUM = Decimal(1).scaleb(-PLACES)


def plain(value: Decimal) -> Decimal:
    """The shortest exponent-free Decimal equal to `value`."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized.as_tuple().exponent > 0 else normalized


def scaled(raw: float, metric: UsageMetric) -> Decimal:
    """A raw CloudWatch value in the unit the API serves (bytes -> GB, seconds -> hours)."""
    return plain(to_number(raw * metric.scale, PLACES))


def hourly_samples(
    metric: UsageMetric, raw: Mapping[dt.datetime, float]
) -> dict[dt.datetime, Decimal]:
    return {hour: scaled(value, metric) for hour, value in sorted(raw.items())}


def samples_for(
    metric: UsageMetric, values: Mapping[dt.datetime, Decimal], hours: set[dt.datetime]
) -> list[HourlySample]:
    """The stored samples of `hours` (hours without a datapoint have none)."""
    return [
        HourlySample(hour=hour, metric=metric.key, value=value)
        for hour, value in values.items()
        if hour in hours
    ]


def daily_rollup(
    day: dt.date, metric: UsageMetric, samples: Mapping[dt.datetime, Decimal]
) -> DailyUsage | None:
    """The day's value from its hourly samples; None when the day has none.

    Counters add up. Storage is a level, so the day is the average of its
    hourly samples, with the lowest, highest and latest of them; summing it
    over hours would multiply the storage by 24.
    """
    values = [samples[hour] for hour in sorted(samples)]
    if not values:
        return None
    if metric.kind == "counter":
        return DailyUsage(day=day, metric=metric.key, value=plain(sum(values)), samples=len(values))
    mean = (sum(values) / len(values)).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    return DailyUsage(
        day=day,
        metric=metric.key,
        value=plain(mean),
        samples=len(values),
        minimum=min(values),
        maximum=max(values),
        last=values[-1],
    )
