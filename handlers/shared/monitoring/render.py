"""The monitor's report as Markdown (people, CI step summaries, the SNS alert)
and as JSON (machines), both from the same Report (pure).

Markdown order: title and window, the violations (or "No threshold
violations"), what returned no data, then one table per component.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from handlers.shared.monitoring.config import ObservationWindow
from handlers.shared.monitoring.evaluate import Measurement, Report, ResourceStatus
from handlers.shared.monitoring.queries import AURORA, DYNAMODB, LAMBDA, REST_API
from handlers.shared.monitoring.units import format_value

JSON_SCHEMA_VERSION = 1
# SNS takes up to 256 KiB per message; leave room for the envelope.
ALERT_MESSAGE_LIMIT_BYTES = 250_000
# SNS subjects must be ASCII, one line, under 100 characters.
ALERT_SUBJECT_LIMIT = 99
VIOLATION_MARK = "⚠️"

# Per-resource tables (one row per metric) vs one row per resource.
_RESOURCE_HEADERS = {LAMBDA.key: "Function", DYNAMODB.key: "Table"}


def to_markdown(report: Report) -> str:
    lines = [f"# {_title(report)}", "", *_header(report), ""]
    lines += _violations(report)
    lines += _no_data(report)
    for status in report.of(AURORA.key):
        lines += _single_resource(f"Aurora: `{status.resource}`", status)
        lines += _alarms(report)
    lines += _multi_resource(LAMBDA.title, report.of(LAMBDA.key))
    for status in report.of(REST_API.key):
        kind = "REST API" if status.component.dimension == REST_API.dimension else "HTTP API"
        lines += _single_resource(f"API Gateway: {kind} `{status.resource}`", status)
    lines += _multi_resource(DYNAMODB.title, report.of(DYNAMODB.key))
    return "\n".join(lines).rstrip() + "\n"


def to_json(report: Report) -> dict[str, Any]:
    components: dict[str, list[dict[str, Any]]] = {}
    for status in report.resources:
        components.setdefault(status.component.key, []).append(
            {
                "resource": status.resource,
                "dimension": status.component.dimension,
                "metrics": {
                    m.key: {"value": _number(m.value), "unit": m.unit} for m in status.measurements
                },
            }
        )
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "generated_at": _timestamp(report.generated_at),
        "environment": report.environment,
        "window": {
            "start": _timestamp(report.window_start),
            "end": _timestamp(report.window_end),
            "hours": report.hours,
        },
        "observation_window": _observation_json(report.observation),
        "thresholds": dataclasses.asdict(report.thresholds),
        "violations": [dataclasses.asdict(v) for v in report.violations],
        "components": components,
        "alarms": [
            {
                "name": alarm.name,
                "metric": alarm.metric,
                "reason": alarm.reason,
                "since": _timestamp(alarm.since) if alarm.since else None,
            }
            for alarm in report.alarms
        ],
        "no_data": [
            {
                "component": status.component.key,
                "resource": status.resource,
                "metrics": list(status.no_data),
                "all_metrics": status.silent,
            }
            for status in report.no_data
        ],
    }


def alert_subject(report: Report) -> str:
    count = len(report.violations)
    where = f" ({report.environment})" if report.environment else ""
    subject = f"Phase 2 monitor{where}: {count} threshold violation{'s' if count != 1 else ''}"
    ascii_only = subject.encode("ascii", "replace").decode("ascii")
    return ascii_only[:ALERT_SUBJECT_LIMIT]


def alert_message(report: Report, markdown: str, locations: Sequence[str]) -> str:
    """The whole report plus where it is stored; just the violations if it is too big."""
    footer = ["", "---", *(f"Stored report: {location}" for location in locations)]
    message = "\n".join([markdown.rstrip(), *footer]) if locations else markdown
    if len(message.encode()) <= ALERT_MESSAGE_LIMIT_BYTES:
        return message
    summary = [f"# {_title(report)}", "", *_header(report), "", *_violations(report), *footer]
    encoded = "\n".join(summary).encode()[:ALERT_MESSAGE_LIMIT_BYTES]
    return encoded.decode(errors="ignore")  # a cut multi-byte character is dropped


def _title(report: Report) -> str:
    where = f": {report.environment}" if report.environment else ""
    return f"Phase 2 monitoring report{where}"


def _header(report: Report) -> list[str]:
    lines = [
        f"**Window:** last {report.hours} h, {report.window_start:%Y-%m-%d %H:%M} to "
        f"{report.window_end:%Y-%m-%d %H:%M} UTC  ",
    ]
    if report.observation is not None:
        lines.append(
            f"**Observation window:** {_observation_text(report.observation, report.window_end)}  "
        )
    lines.append(f"**Generated:** {report.generated_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
    return lines


def _observation_text(window: ObservationWindow, at: dt.datetime) -> str:
    span = f"{window.start.isoformat()} to {window.last_day.isoformat()}"
    today = at.astimezone(dt.UTC).date()
    if today < window.start:
        return f"{span} (not started)"
    if today > window.last_day:
        return f"{span} (ended)"
    return f"{span}, day {(today - window.start).days + 1} of {window.days}"


def _violations(report: Report) -> list[str]:
    if not report.violations:
        return ["## No threshold violations", ""]
    count = len(report.violations)
    lines = [f"## {VIOLATION_MARK} {count} threshold violation{'s' if count != 1 else ''}", ""]
    lines += [f"- {_escape(violation.message)}" for violation in report.violations]
    return [*lines, ""]


def _no_data(report: Report) -> list[str]:
    missing = [s for s in report.resources if s.silent or s.notable_no_data]
    if not missing:
        return []
    lines = [
        "### No data",
        "",
        "No datapoints in the window (not a violation; a resource with none at all "
        "may be misnamed, deleted or idle):",
        "",
    ]
    for status in missing:
        what = (
            "every metric"
            if status.silent
            else ", ".join(status.measurement(key).label for key in status.notable_no_data)
        )
        lines.append(f"- {status.component.title} `{status.resource}`: {what}")
    return [*lines, ""]


def _single_resource(heading: str, status: ResourceStatus) -> list[str]:
    lines = [f"## {heading}", "", "| Metric | Value | Threshold |", "|---|---|---|"]
    lines += [
        f"| {m.label} | {_cell(m)} | {_limit(m) if m.limit is not None else ''} |"
        for m in status.measurements
    ]
    return [*lines, ""]


def _multi_resource(title: str, statuses: Sequence[ResourceStatus]) -> list[str]:
    if not statuses:
        return []
    first = statuses[0]
    limits = [f"{m.label} {_limit(m)}" for m in first.measurements if m.limit is not None]
    header = [_RESOURCE_HEADERS[first.component.key], *(m.label for m in first.measurements)]
    lines = [f"## {title}", "", f"Thresholds: {', '.join(limits)}.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join([f"`{s.resource}`", *(_cell(m) for m in s.measurements)]) + " |"
        for s in statuses
    ]
    return [*lines, ""]


def _alarms(report: Report) -> list[str]:
    if not report.alarms:
        return ["Alarms in ALARM: none.", ""]
    lines = ["Alarms in ALARM:", "", "| Alarm | Metric | Since | Reason |", "|---|---|---|---|"]
    for alarm in report.alarms:
        since = f"{alarm.since.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if alarm.since else ""
        lines.append(
            f"| {_escape(alarm.name)} | {_escape(alarm.metric)} | {since} | {_escape(alarm.reason)} |"
        )
    return [*lines, ""]


def _cell(measurement: Measurement) -> str:
    if measurement.violated:
        return f"**{measurement.shown}** {VIOLATION_MARK}"
    return measurement.shown


def _limit(measurement: Measurement) -> str:
    return f"> {format_value(measurement.limit, measurement.unit)}"


def _escape(text: str) -> str:
    """Table cells and list items stay one line and one cell."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _number(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _observation_json(window: ObservationWindow | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {
        "start": window.start.isoformat(),
        "last_day": window.last_day.isoformat(),
        "days": window.days,
    }
