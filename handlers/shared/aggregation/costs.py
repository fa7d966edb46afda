"""Cost Explorer requests and their answers as daily costs per tenant (pure).

Two DAILY UnblendedCost series, each grouped by linked account: one by
service, one by region. Amounts stay the Decimal strings Cost Explorer
returns, so nothing is lost to float rounding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from handlers.shared.metrics_layout import DailyCost

COST_METRIC = "UnblendedCost"
SERVICE = "SERVICE"
REGION = "REGION"
SERIES = (SERVICE, REGION)  # requested in this order
# Cost Explorer keeps revising the last few days (late usage, credits,
# refunds), so every refresh re-reads them together with today's estimate.
REVISED_DAYS = 3


def recent_days(today: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) a scheduled refresh reads."""
    return today - dt.timedelta(days=REVISED_DAYS), today


def cost_request(first_day: dt.date, last_day: dt.date, dimension: str) -> dict[str, Any]:
    return {
        # Cost Explorer's End is exclusive.
        "TimePeriod": {
            "Start": first_day.isoformat(),
            "End": (last_day + dt.timedelta(days=1)).isoformat(),
        },
        "Granularity": "DAILY",
        "Metrics": [COST_METRIC],
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
            {"Type": "DIMENSION", "Key": dimension},
        ],
    }


@dataclass(frozen=True)
class TenantCosts:
    costs: Mapping[str, tuple[DailyCost, ...]]  # tenant -> its days, ascending
    failed: Mapping[str, str]  # tenant -> why its costs could not be read


def tenant_costs(
    pages: Mapping[str, Iterable[Mapping[str, Any]]],
    tenant_by_account: Mapping[str, str],
    first_day: dt.date,
    last_day: dt.date,
) -> TenantCosts:
    """Daily costs per tenant from the pages of both series (`pages[SERVICE]`, `pages[REGION]`).

    Accounts that are not active tenants are ignored; so are days outside
    [first_day, last_day]. A group split over two pages is added up, never
    counted twice as separate keys.
    """
    amounts: dict[tuple[str, dt.date], dict[str, dict[str, Decimal]]] = {}
    currencies: dict[tuple[str, dt.date], str] = {}
    failed: dict[str, str] = {}
    for dimension in SERIES:
        for page in pages.get(dimension, ()):
            for period in page.get("ResultsByTime", []):
                day = dt.date.fromisoformat(period["TimePeriod"]["Start"])
                if not first_day <= day <= last_day:
                    continue
                for group in period.get("Groups", []):
                    keys = group.get("Keys") or []
                    tenant = tenant_by_account.get(keys[0]) if len(keys) == 2 else None
                    if tenant is None:
                        continue
                    metric = group.get("Metrics", {}).get(COST_METRIC, {})
                    try:
                        amount = Decimal(metric["Amount"])
                    except (KeyError, InvalidOperation):
                        failed[tenant] = f"unreadable {dimension.lower()} amount on {day}"
                        continue
                    by_key = amounts.setdefault((tenant, day), {SERVICE: {}, REGION: {}})
                    current = by_key[dimension].get(keys[1])
                    by_key[dimension][keys[1]] = amount if current is None else current + amount
                    currencies.setdefault((tenant, day), metric.get("Unit") or "USD")
    costs: dict[str, list[DailyCost]] = {}
    for (tenant, day), by_key in sorted(amounts.items()):
        if tenant in failed:
            continue
        costs.setdefault(tenant, []).append(
            DailyCost(
                day=day,
                currency=currencies[(tenant, day)],
                services=by_key[SERVICE],
                regions=by_key[REGION],
            )
        )
    return TenantCosts(costs={tenant: tuple(days) for tenant, days in costs.items()}, failed=failed)
