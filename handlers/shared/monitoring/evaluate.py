"""Readings and alarms -> the monitor's findings: measurements, rates, violations (pure).

A threshold is violated when a value is strictly greater than it. A value with
no datapoints is never a violation (it is listed as "no data" instead), and a
rate whose denominator is missing or zero is "n/a": 0 invocations with 0
errors is a quiet function, not a failing one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.shared.monitoring.alarms import Alarm
from handlers.shared.monitoring.config import MonitorConfig, ObservationWindow, Thresholds
from handlers.shared.monitoring.queries import AURORA, Component, Readings, monitored_resources
from handlers.shared.monitoring.units import NO_DATA, NOT_APPLICABLE, format_value


@dataclass(frozen=True)
class Rate:
    """A percentage computed from two summed metrics of the same resource."""

    key: str
    label: str
    numerator: str  # metric key: "errors"
    denominator: str  # metric key: "invocations"


# Each rate is shown right after its numerator.
RATES: dict[str, tuple[Rate, ...]] = {
    "lambda": (Rate("error_rate", "Error rate", "errors", "invocations"),),
    "api_gateway": (
        Rate("rate_4xx", "4xx rate", "errors_4xx", "requests"),
        Rate("rate_5xx", "5xx rate", "errors_5xx", "requests"),
    ),
}


@dataclass(frozen=True)
class Measurement:
    key: str  # "error_rate"
    label: str  # "Error rate"
    value: float | None
    unit: str
    derived: bool  # a rate: None means "n/a", not "no data"
    limit: float | None  # violated when value > limit

    @property
    def violated(self) -> bool:
        return self.value is not None and self.limit is not None and self.value > self.limit

    @property
    def shown(self) -> str:
        return format_value(self.value, self.unit, NOT_APPLICABLE if self.derived else NO_DATA)


@dataclass(frozen=True)
class ResourceStatus:
    component: Component
    resource: str
    measurements: tuple[Measurement, ...]

    def measurement(self, key: str) -> Measurement:
        return next(m for m in self.measurements if m.key == key)

    @property
    def no_data(self) -> tuple[str, ...]:
        """Metric keys without datapoints (rates are not metrics)."""
        return tuple(m.key for m in self.measurements if m.value is None and not m.derived)

    @property
    def notable_no_data(self) -> tuple[str, ...]:
        """Missing metrics worth a note: not those CloudWatch often leaves empty."""
        often_absent = {m.key for m in self.component.metrics if m.often_absent}
        return tuple(key for key in self.no_data if key not in often_absent)

    @property
    def silent(self) -> bool:
        """No datapoints for any metric: often a misspelt or deleted resource."""
        return len(self.no_data) == len(self.component.metrics)


@dataclass(frozen=True)
class Violation:
    component: str  # component key: "lambda"
    resource: str
    metric: str  # measurement key, or "alarm_state"
    value: float | str
    threshold: float | str
    message: str


@dataclass(frozen=True)
class Report:
    generated_at: dt.datetime
    window_start: dt.datetime
    window_end: dt.datetime
    hours: int
    environment: str | None
    observation: ObservationWindow | None
    thresholds: Thresholds
    resources: tuple[ResourceStatus, ...]
    alarms: tuple[Alarm, ...]  # the Aurora cluster's alarms in ALARM
    violations: tuple[Violation, ...]

    def of(self, component_key: str) -> tuple[ResourceStatus, ...]:
        return tuple(r for r in self.resources if r.component.key == component_key)

    @property
    def no_data(self) -> tuple[ResourceStatus, ...]:
        return tuple(r for r in self.resources if r.no_data)


def evaluate(
    config: MonitorConfig,
    readings: Readings,
    alarms: Sequence[Alarm],
    *,
    generated_at: dt.datetime,
    window: tuple[dt.datetime, dt.datetime],
    environment: str | None,
) -> Report:
    limits = _limits(config.thresholds)
    resources = tuple(
        _status(component, resource, readings, limits)
        for component, resource in monitored_resources(config)
    )
    violations: list[Violation] = []
    for status in resources:
        violations += [_violation(status, m) for m in status.measurements if m.violated]
        if status.component.key == AURORA.key:  # the cluster's alarms follow its metrics
            violations += [_alarm_violation(status.resource, alarm) for alarm in alarms]
    return Report(
        generated_at=generated_at,
        window_start=window[0],
        window_end=window[1],
        hours=config.lookback_hours,
        environment=environment,
        observation=config.window,
        thresholds=config.thresholds,
        resources=resources,
        alarms=tuple(alarms),
        violations=tuple(violations),
    )


def rate(numerator: float | None, denominator: float | None) -> float | None:
    """Percent, or None when there is nothing (or nothing known) to divide by."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    # Multiply first: 7 / 100 * 100 is 7.000000000000001, a false "above 7%".
    percent = numerator * 100 / denominator
    # A sub-normal denominator overflows; no real count is that small.
    return percent if math.isfinite(percent) else None


def _limits(thresholds: Thresholds) -> dict[tuple[str, str], float]:
    return {
        ("aurora", "cpu_max"): thresholds.aurora_cpu_percent,
        ("aurora", "connections_max"): thresholds.aurora_max_connections,
        ("lambda", "error_rate"): thresholds.lambda_error_rate_percent,
        ("lambda", "throttles"): thresholds.lambda_max_throttles,
        ("api_gateway", "rate_5xx"): thresholds.api_5xx_rate_percent,
        ("api_gateway", "latency_avg"): thresholds.api_latency_ms,
        # Any throttled request is a capacity problem a customer felt.
        ("dynamodb", "read_throttles"): 0.0,
        ("dynamodb", "write_throttles"): 0.0,
    }


def _status(
    component: Component,
    resource: str,
    readings: Readings,
    limits: dict[tuple[str, str], float],
) -> ResourceStatus:
    values = {m.key: readings.get((component.key, resource, m.key)) for m in component.metrics}
    rates = RATES.get(component.key, ())
    measurements: list[Measurement] = []
    for metric in component.metrics:
        measurements.append(
            Measurement(
                key=metric.key,
                label=metric.label,
                value=values[metric.key],
                unit=metric.unit,
                derived=False,
                limit=limits.get((component.key, metric.key)),
            )
        )
        measurements.extend(
            Measurement(
                key=r.key,
                label=r.label,
                value=rate(values[r.numerator], values[r.denominator]),
                unit="percent",
                derived=True,
                limit=limits.get((component.key, r.key)),
            )
            for r in rates
            if r.numerator == metric.key
        )
    return ResourceStatus(component, resource, tuple(measurements))


def _violation(status: ResourceStatus, measurement: Measurement) -> Violation:
    assert measurement.value is not None and measurement.limit is not None
    message = (
        f"{status.component.title} {status.resource}: {measurement.label} "
        f"{measurement.shown} > {format_value(measurement.limit, measurement.unit)}"
    )
    for r in RATES.get(status.component.key, ()):
        if r.key == measurement.key:
            numerator = status.measurement(r.numerator)
            denominator = status.measurement(r.denominator)
            message += (
                f" ({numerator.shown} {numerator.label.lower()} of "
                f"{denominator.shown} {denominator.label.lower()})"
            )
    return Violation(
        component=status.component.key,
        resource=status.resource,
        metric=measurement.key,
        value=round(measurement.value, 4),
        threshold=measurement.limit,
        message=message,
    )


def _alarm_violation(cluster_id: str, alarm: Alarm) -> Violation:
    since = f" since {alarm.since.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if alarm.since else ""
    return Violation(
        component="aurora",
        resource=cluster_id,
        metric="alarm_state",
        value="ALARM",
        threshold="OK",
        message=f"Aurora {cluster_id}: alarm {alarm.name} ({alarm.metric}) is in ALARM{since}",
    )
