"""The `period` parameter: `Nd`, `Nw` or `Nm`, 1 to 365 days in total (pure).

A month is 30 days, so `12m` is 360 days and `13m` is rejected. A window of N
days ends with the current (partial) UTC day and starts N-1 days before it;
`previous_window` is the N days before that. How trends compare the two
without counting today's partial day is in handlers.shared.analytics.

A period that is sent must be one (letters in any case): an empty or padded
value is a 400 like any other, exactly as the OpenAPI `Period` pattern says;
leaving the parameter out gives the default.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from handlers.shared.http import bad_request

DEFAULT_PERIOD = "30d"
MAX_DAYS = 365
UNIT_DAYS = {"d": 1, "w": 7, "m": 30}
ALLOWED = "Nd, Nw or Nm (for example 7d, 4w, 3m) covering 1 to 365 days"

_PERIOD = re.compile(r"([1-9][0-9]{0,2})([dwm])")


@dataclass(frozen=True)
class Period:
    label: str  # as the client wrote it, lower-cased: "4w"
    days: int  # normalised length: 28

    @property
    def normalised(self) -> str:
        """`4w` and `28d` are the same window: one cache entry, one result."""
        return f"{self.days}d"

    def window(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """First and last day (inclusive) of the window ending today."""
        return today - dt.timedelta(days=self.days - 1), today

    def previous_window(self, today: dt.date) -> tuple[dt.date, dt.date]:
        first, _ = self.window(today)
        return first - dt.timedelta(days=self.days), first - dt.timedelta(days=1)


def parse_period(raw: str | None, parameter: str = "period") -> Period:
    """Parses a period (None: the default); raises ApiError(400) naming the parameter otherwise."""
    value = DEFAULT_PERIOD if raw is None else raw.lower()
    # fullmatch: `$` would also match before a trailing newline.
    match = _PERIOD.fullmatch(value)
    if not match:
        raise bad_request(parameter, ALLOWED, raw)
    days = int(match.group(1)) * UNIT_DAYS[match.group(2)]
    if days > MAX_DAYS:
        raise bad_request(parameter, ALLOWED, raw)
    return Period(label=value, days=days)
