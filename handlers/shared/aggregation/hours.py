"""Which UTC hours a run processes, and when slower refreshes are due (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

# An hourly run that finds it was down longer than this processes only the
# most recent hours (one run must stay well inside the Lambda timeout); older
# gaps are filled with a backfill event.
CATCH_UP_LIMIT_HOURS = 48


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: dt.datetime) -> dt.datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def last_complete_hour(now: dt.datetime) -> dt.datetime:
    return floor_hour(now) - HOUR


def catch_up_hours(
    now: dt.datetime,
    last_done: dt.datetime | None,
    limit: int = CATCH_UP_LIMIT_HOURS,
) -> tuple[list[dt.datetime], int]:
    """Hours an hourly run processes, oldest first, and how many it had to skip.

    Every hour after the last completed one up to the last complete hour, at
    most `limit` of them. A run that finds nothing new (a retried or duplicate
    invocation) redoes the last complete hour: harmless, because writes are
    idempotent, and it picks up datapoints that arrived late.
    """
    last = last_complete_hour(now)
    done = floor_hour(last_done) if last_done is not None else None
    first = last if done is None or done >= last else done + HOUR
    count = int((last - first) / HOUR) + 1
    skipped = max(0, count - limit)
    first += skipped * HOUR
    return [first + index * HOUR for index in range(count - skipped)], skipped


def backfill_hours(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
    """Every hour starting in [start, end) that is already complete at `now`."""
    stop = min(end, floor_hour(now))
    hours = []
    hour = ceil_hour(start)
    while hour < stop:
        hours.append(hour)
        hour += HOUR
    return hours


def by_day(hours: Iterable[dt.datetime]) -> dict[dt.date, list[dt.datetime]]:
    """Hours grouped by UTC day, days and hours in ascending order."""
    grouped: dict[dt.date, list[dt.datetime]] = {}
    for hour in sorted(hours):
        grouped.setdefault(hour.date(), []).append(hour)
    return grouped


def expires_at(hour: dt.datetime, retention_days: int) -> int:
    """Epoch seconds at which an hourly sample stops being served (`ttl`)."""
    return int((hour + retention_days * DAY).timestamp())


def is_retained(hour: dt.datetime, now: dt.datetime, retention_days: int) -> bool:
    """Samples past their retention would expire at once: not worth a write."""
    return hour + retention_days * DAY > now


def refresh_due(last_refresh: dt.datetime | None, now: dt.datetime, every_hours: int) -> bool:
    """Compared on whole hours, so a schedule firing a minute early is not skipped.

    Scheduled invocations drift by seconds; comparing exact times would turn
    "every 6 hours" into "every 7 hours" whenever a run starts a little early.
    """
    if last_refresh is None:
        return True
    return floor_hour(now) - floor_hour(last_refresh) >= every_hours * HOUR
