"""Item layout of the metrics table (pure: no AWS).

One partition per tenant (`pk` = tenant id). Sort keys start with a record
kind and then a UTC time, so every window a query needs is one key range:

    H#2026-11-23T14#api_calls   hourly usage sample       (expires via `ttl`)
    D#2026-11-23#api_calls      daily usage rollup        (kept)
    C#2026-11-23                daily costs of the tenant (kept)
    S#2026-11-23                compliance snapshot, last run of the day wins

Keys are a pure function of (tenant, kind, time, metric), so re-running an
hour overwrites the same items and never duplicates them. A year of daily
usage plus the year before it (for trends) is 2,920 small items, well inside
one 1 MB Query page.

Aggregator bookkeeping lives under `pk = "#aggregator"`; tenant ids start with
a letter or digit (see `is_valid_tenant_id`), so they can never collide.
"""

from __future__ import annotations

import datetime as dt
import re

HOURLY = "H"
DAILY = "D"
COSTS = "C"
COMPLIANCE = "S"

AGGREGATOR_PARTITION = "#aggregator"
COST_REFRESH_STATE_SK = "cost-refresh"

# The highest character sort keys use: "D#2026-11-23#~" sorts after every
# metric of that day, so BETWEEN bounds include whole days.
_AFTER_ALL = "~"

_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_valid_tenant_id(value: object) -> bool:
    """Tenant ids: 1-64 characters, letters, digits, `_ . -`, starting alphanumeric."""
    return isinstance(value, str) and bool(_TENANT_ID.match(value))


def hour_label(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


def day_label(day: dt.date) -> str:
    return day.isoformat()


def hourly_sk(hour_start: dt.datetime, metric: str) -> str:
    return f"{HOURLY}#{hour_label(hour_start)}#{metric}"


def daily_sk(day: dt.date, metric: str) -> str:
    return f"{DAILY}#{day_label(day)}#{metric}"


def cost_sk(day: dt.date) -> str:
    return f"{COSTS}#{day_label(day)}"


def compliance_sk(day: dt.date) -> str:
    return f"{COMPLIANCE}#{day_label(day)}"


def hourly_range(first_hour: dt.datetime, last_hour: dt.datetime) -> tuple[str, str]:
    """BETWEEN bounds covering every metric of every hour in [first, last]."""
    return (f"{HOURLY}#{hour_label(first_hour)}", f"{HOURLY}#{hour_label(last_hour)}#{_AFTER_ALL}")


def daily_range(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    """BETWEEN bounds covering every metric of every day in [first, last]."""
    return (f"{DAILY}#{day_label(first_day)}", f"{DAILY}#{day_label(last_day)}#{_AFTER_ALL}")


def cost_range(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    return (cost_sk(first_day), cost_sk(last_day))


def compliance_range(first_day: dt.date, last_day: dt.date) -> tuple[str, str]:
    return (compliance_sk(first_day), compliance_sk(last_day))


def parse_sk(sk: str) -> tuple[str, str, str | None]:
    """`D#2026-11-23#api_calls` -> ("D", "2026-11-23", "api_calls")."""
    kind, _, rest = sk.partition("#")
    moment, _, metric = rest.partition("#")
    return kind, moment, metric or None
