"""The per-tenant cap on pending deferred reports: a fixed set of slots per tenant.

A deferred report holds one of its tenant's `limit` slots from the moment it
is queued until the report engine has finished it (ready or failed), or
until the pending deadline has passed, after which the report counts as
failed anyway (handlers.shared.reports.service.PENDING_DEADLINE). A slot is
an item in the reports table, in the partition `<tenant>#pending` (no tenant
id contains `#`, so no tenant's report listing ever reads one), with sort key
`slot-<n>`: taking one is a conditional put that succeeds only while the slot
is free or its holder's deadline has passed, so the cap holds under any
concurrency without counting. Releasing it is a conditional delete by its
holder, so a late release never frees a slot another report has taken.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from handlers.shared.dynamo import serialize
from handlers.shared.reports.times import iso_utc

PARTITION_SUFFIX = "#pending"
DEFAULT_MAX_PENDING = 5
# What a 429 asks the client to wait: about what a large deferred report
# takes to render, after which a slot has usually been released.
RETRY_AFTER_SECONDS = 30


def slot_key(tenant: str, slot: int) -> dict[str, Any]:
    return serialize({"customer_id": tenant + PARTITION_SUFFIX, "report_id": f"slot-{slot}"})


class PendingSlots:
    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def _conditional(self, write: Callable[..., Any], **request: Any) -> bool:
        try:
            write(TableName=self.table_name, **request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def claim(
        self, tenant: str, report_id: str, limit: int, held_until: dt.datetime, now: dt.datetime
    ) -> int | None:
        """The slot `report_id` now holds (until `held_until`); None when all `limit` are taken."""
        for slot in range(limit):
            taken = self._conditional(
                self.client.put_item,
                Item={
                    **slot_key(tenant, slot),
                    **serialize({"holder": report_id, "held_until": iso_utc(held_until)}),
                },
                ConditionExpression=(
                    "attribute_not_exists(report_id) OR held_until <= :now OR holder = :me"
                ),
                ExpressionAttributeValues=serialize({":now": iso_utc(now), ":me": report_id}),
            )
            if taken:
                return slot
        return None

    def release(self, tenant: str, slot: int, report_id: str) -> bool:
        """Frees the slot if `report_id` still holds it; False when it does not."""
        return self._conditional(
            self.client.delete_item,
            Key=slot_key(tenant, slot),
            ConditionExpression="holder = :me",
            ExpressionAttributeValues=serialize({":me": report_id}),
        )
