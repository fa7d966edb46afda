"""Reads a tenant's records from the metrics table: one Query per need.

Every method is a single `Query` on the tenant's partition (`pk` = tenant)
over one sort-key range from `handlers.shared.metrics_layout`, following
pagination; nothing here scans. The `*_for_period` methods read exactly what
the matching `handlers.shared.analytics` body needs, so an API call costs one
Query: usage reads the previous and the current window together.

Uses the low-level DynamoDB client (numbers come back as Decimal).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from handlers.shared import analytics
from handlers.shared import metrics_layout as layout
from handlers.shared.dynamo import query_all, serialize
from handlers.shared.periods import Period

RecordT = TypeVar("RecordT", bound=layout.Record)


class MetricsReader:
    def __init__(self, client: Any, table_name: str):
        self._client = client
        self._table_name = table_name

    def _query(
        self,
        record_type: type[RecordT],
        tenant: str,
        bounds: tuple[str, str],
        *,
        live_at: int | None = None,
    ) -> list[RecordT]:
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": serialize(
                {":pk": tenant, ":first": bounds[0], ":last": bounds[1]}
            ),
        }
        if live_at is not None:
            # DynamoDB deletes expired items up to days late: skip them here.
            request["FilterExpression"] = "attribute_not_exists(#ttl) OR #ttl > :now"
            request["ExpressionAttributeNames"] = {"#ttl": "ttl"}
            request["ExpressionAttributeValues"].update(serialize({":now": live_at}))
        records = (layout.parse_item(item) for item in query_all(self._client, **request))
        return [record for record in records if isinstance(record, record_type)]

    def usage_days(
        self, tenant: str, first_day: dt.date, last_day: dt.date
    ) -> list[layout.DailyUsage]:
        """Daily rollups of every usage metric for the days in [first_day, last_day]."""
        return self._query(layout.DailyUsage, tenant, layout.daily_range(first_day, last_day))

    def usage_hours(
        self, tenant: str, first_hour: dt.datetime, last_hour: dt.datetime, now: dt.datetime
    ) -> list[layout.HourlySample]:
        """Unexpired hourly samples (`ttl` > now) for the hours in [first_hour, last_hour]."""
        return self._query(
            layout.HourlySample,
            tenant,
            layout.hourly_range(first_hour, last_hour),
            live_at=int(now.timestamp()),
        )

    def cost_days(
        self, tenant: str, first_day: dt.date, last_day: dt.date
    ) -> list[layout.DailyCost]:
        return self._query(layout.DailyCost, tenant, layout.cost_range(first_day, last_day))

    def compliance_days(
        self, tenant: str, first_day: dt.date, last_day: dt.date
    ) -> list[layout.ComplianceSnapshot]:
        return self._query(
            layout.ComplianceSnapshot, tenant, layout.compliance_range(first_day, last_day)
        )

    def usage_for_period(
        self, tenant: str, period: Period, now: dt.datetime
    ) -> list[layout.DailyUsage] | list[layout.HourlySample]:
        """What `analytics.usage_body` needs: both windows, hourly or daily, in one Query."""
        windows = analytics.usage_windows(period, now)
        if windows.hourly:
            return self.usage_hours(
                tenant, windows.previous_start, windows.end - dt.timedelta(hours=1), now
            )
        return self.usage_days(
            tenant, windows.previous_start.date(), (windows.end - dt.timedelta(days=1)).date()
        )

    def costs_for_period(
        self, tenant: str, period: Period, now: dt.datetime
    ) -> list[layout.DailyCost]:
        """What `analytics.costs_body` needs: the window and the forecast's days."""
        return self.cost_days(tenant, *analytics.cost_days_needed(period, now))

    def recent_compliance(self, tenant: str, now: dt.datetime) -> list[layout.ComplianceSnapshot]:
        """What `analytics.compliance_body` needs: the last two weeks of snapshots."""
        return self.compliance_days(tenant, *analytics.compliance_days_needed(now))
