"""Report schedules: request validation, next run and item layout (pure).

A schedule runs `daily`, `weekly` (on `day_of_week`) or `monthly` (on
`day_of_month`, 1-28 so that every month has it) at `time_utc` ("HH:MM", UTC).
`next_run` is always strictly in the future of the moment it is computed
from: a schedule whose runs were missed (the engine was down) runs once and
then moves to its next regular slot, rather than catching up run by run.

Items carry `due_shard = "due"` while active, which puts them in the sparse
`due-by-next-run` index that the engine queries by `next_run`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.shared.http import bad_request
from handlers.shared.reports.model import (
    parse_format,
    parse_period_label,
    parse_report_type,
    reject_nulls,
)
from handlers.shared.reports.times import iso_utc

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
FREQUENCIES = (DAILY, WEEKLY, MONTHLY)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_DAY_OF_MONTH = 28
MAX_RECIPIENTS = 10
MAX_SCHEDULES_PER_TENANT = 50
DUE_SHARD = "due"

_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# An address as handlers/openapi.yaml's `Recipients` pattern describes it: the
# local part is a dot-atom (RFC 5322), atoms joined by single dots, so it never
# starts or ends with a dot or holds two in a row; the domain is two or more
# DNS labels.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321
MAX_EMAIL_LENGTH = 254  # RFC 5321: a 256-octet path less its angle brackets

BODY_FIELDS = frozenset(
    {
        "type",
        "format",
        "period",
        "frequency",
        "time_utc",
        "day_of_week",
        "day_of_month",
        "recipients",
    }
)


def is_valid_email(value: object) -> bool:
    # The length first: it bounds the regex's work on hostile input.
    return (
        isinstance(value, str)
        and len(value) <= MAX_EMAIL_LENGTH
        and _EMAIL.fullmatch(value) is not None
        and len(value.partition("@")[0]) <= MAX_LOCAL_PART_LENGTH
    )


@dataclass(frozen=True)
class ScheduleSpec:
    report_type: str
    format: str
    period: str  # label, as validated by handlers.shared.periods
    frequency: str
    time_utc: str  # "HH:MM"
    recipients: tuple[str, ...]
    day_of_week: str | None = None  # weekly only
    day_of_month: int | None = None  # monthly only


def _time_of_day(raw: object) -> str:
    if not isinstance(raw, str) or not _TIME.match(raw.strip()):
        raise bad_request("time_utc", 'a UTC time of day "HH:MM" (00:00 to 23:59)', raw)
    return raw.strip()


def _recipients(raw: object) -> tuple[str, ...]:
    allowed = f"a list of 1 to {MAX_RECIPIENTS} distinct email addresses"
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_RECIPIENTS:
        raise bad_request("recipients", allowed, raw)
    addresses = []
    for value in raw:
        address = value.strip() if isinstance(value, str) else value
        if not is_valid_email(address):
            raise bad_request("recipients", allowed, value)
        addresses.append(address)
    if len({address.lower() for address in addresses}) != len(addresses):
        raise bad_request("recipients", allowed, "duplicate addresses")
    return tuple(addresses)


def parse_schedule(body: Mapping[str, Any]) -> ScheduleSpec:
    """Validates a POST /analytics/schedules body; raises ApiError(400) naming the field."""
    unknown = sorted(set(body) - BODY_FIELDS - {"customer_id"})  # customer_id: ignored
    if unknown:
        raise bad_request(
            "body", "an object with fields " + ", ".join(sorted(BODY_FIELDS)), unknown[0]
        )
    reject_nulls(body, BODY_FIELDS)
    frequency = body.get("frequency")
    if frequency not in FREQUENCIES:
        raise bad_request("frequency", "one of daily, weekly, monthly", frequency)
    day_of_week = body.get("day_of_week")
    day_of_month = body.get("day_of_month")
    if frequency == WEEKLY:
        day_of_week = day_of_week.lower() if isinstance(day_of_week, str) else day_of_week
        if day_of_week not in WEEKDAYS:
            raise bad_request(
                "day_of_week", "one of " + ", ".join(WEEKDAYS) + " (weekly schedules)", day_of_week
            )
    elif day_of_week is not None:
        raise bad_request("day_of_week", "omitted unless frequency is weekly", day_of_week)
    if frequency == MONTHLY:
        # JSON Schema's `integer` is any number with a zero fractional part (JSON
        # Schema 2020-12 Validation, section 6.1.1), so 21.0 is the 21 the document allows.
        if isinstance(day_of_month, float) and day_of_month.is_integer():
            day_of_month = int(day_of_month)
        if (
            isinstance(day_of_month, bool)
            or not isinstance(day_of_month, int)
            or not 1 <= day_of_month <= MAX_DAY_OF_MONTH
        ):
            raise bad_request(
                "day_of_month",
                f"an integer from 1 to {MAX_DAY_OF_MONTH} (monthly schedules)",
                day_of_month,
            )
    elif day_of_month is not None:
        raise bad_request("day_of_month", "omitted unless frequency is monthly", day_of_month)
    return ScheduleSpec(
        report_type=parse_report_type(body.get("type")),
        format=parse_format(body.get("format")),
        period=parse_period_label(body.get("period")),
        frequency=frequency,
        time_utc=_time_of_day(body.get("time_utc")),
        recipients=_recipients(body.get("recipients")),
        day_of_week=day_of_week,
        day_of_month=day_of_month,
    )


def _add_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def next_run(spec: ScheduleSpec, after: dt.datetime) -> dt.datetime:
    """The first run of `spec` strictly after `after` (UTC, whole minutes)."""
    after = after.astimezone(dt.UTC)
    hour, minute = (int(part) for part in spec.time_utc.split(":"))

    def at(day: dt.date) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)

    today = after.date()
    if spec.frequency == DAILY:
        candidate = at(today)
        return candidate if candidate > after else at(today + dt.timedelta(days=1))
    if spec.frequency == WEEKLY:
        target = WEEKDAYS.index(str(spec.day_of_week))
        candidate = at(today + dt.timedelta(days=(target - today.weekday()) % 7))
        return candidate if candidate > after else candidate + dt.timedelta(days=7)
    day_of_month = int(spec.day_of_month or 1)
    candidate = at(dt.date(today.year, today.month, day_of_month))
    if candidate > after:
        return candidate
    year, month = _add_month(today.year, today.month)
    return at(dt.date(year, month, day_of_month))


def schedule_item(
    tenant: str,
    schedule_id: str,
    spec: ScheduleSpec,
    now: dt.datetime,
    *,
    created_by: str | None = None,
) -> dict[str, Any]:
    """A new schedule; `created_by` is the `sub` of the token that created it."""
    item: dict[str, Any] = {
        "customer_id": tenant,
        "schedule_id": schedule_id,
        "type": spec.report_type,
        "format": spec.format,
        "period": spec.period,
        "frequency": spec.frequency,
        "time_utc": spec.time_utc,
        "recipients": list(spec.recipients),
        "created_at": iso_utc(now),
        "next_run": iso_utc(next_run(spec, now)),
        "due_shard": DUE_SHARD,
        "last_status": "scheduled",
    }
    if created_by is not None:
        item["created_by"] = created_by
    if spec.day_of_week is not None:
        item["day_of_week"] = spec.day_of_week
    if spec.day_of_month is not None:
        item["day_of_month"] = spec.day_of_month
    return item


def spec_of(item: Mapping[str, Any]) -> ScheduleSpec:
    """The spec a stored schedule item was created from."""
    return ScheduleSpec(
        report_type=str(item["type"]),
        format=str(item["format"]),
        period=str(item["period"]),
        frequency=str(item["frequency"]),
        time_utc=str(item["time_utc"]),
        recipients=tuple(str(address) for address in item["recipients"]),
        day_of_week=item.get("day_of_week"),
        day_of_month=int(item["day_of_month"]) if item.get("day_of_month") is not None else None,
    )


def schedule_view(item: Mapping[str, Any], recipient_states: Mapping[str, str]) -> dict[str, Any]:
    """A schedule as the API shows it; `recipient_states` gives each recipient's state
    (handlers.shared.mail.consent) by address."""
    return {
        "id": item["schedule_id"],
        "type": item["type"],
        "format": item["format"],
        "period": item["period"],
        "frequency": item["frequency"],
        "time_utc": item["time_utc"],
        "day_of_week": item.get("day_of_week"),
        "day_of_month": int(item["day_of_month"]) if item.get("day_of_month") is not None else None,
        "recipients": list(item["recipients"]),
        "recipient_states": [
            {"address": address, "state": recipient_states[address]}
            for address in item["recipients"]
        ],
        "next_run": item["next_run"],
        "created_at": item["created_at"],
        "last_status": item.get("last_status"),
        "last_error": item.get("last_error"),
        "last_run_at": item.get("last_run_at"),
        "last_report_id": item.get("last_report_id"),
        "created_by": item.get("created_by"),
    }
