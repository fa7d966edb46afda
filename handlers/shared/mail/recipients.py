"""The report-emails table: recipients' consent, deliveries and daily counts, per tenant.

One partition per tenant (`customer_id`), sort key `entry`:

- `recipient#<address>` (lower case): `state` pending / confirmed /
  suppressed; a pending one holds the `nonce` and `confirm_expires` of its one
  outstanding confirmation link;
- `sent#<YYYY-MM-DD>`: emails sent that UTC day, reserved one at a time with a
  conditional update (never count-then-write), so concurrent runs cannot pass
  the limit together;
- `delivery#<schedule>#<run>#<address>`: one scheduled run's email to one
  recipient (`sending`, `sent`, `failed`), claimed with a conditional write
  before sending, so a retried run sends only to those not yet served and
  two runs never send the same copy.

Counters and deliveries expire through TTL (`ttl`, epoch seconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from handlers.shared.dynamo import deserialize, query_all, serialize
from handlers.shared.mail.consent import CONFIRMED, PENDING, SUPPRESSED
from handlers.shared.reports.times import iso_utc

RECIPIENT = "recipient#"
SENT = "sent#"
DELIVERY = "delivery#"
SENDING = "sending"
DELIVERED = "sent"
FAILED = "failed"
# Long enough for every retry of a run and for support to look at it.
DELIVERY_RETENTION = dt.timedelta(days=35)
COUNTER_RETENTION = dt.timedelta(days=3)


def recipient_key(address: str) -> str:
    return RECIPIENT + address.lower()


def delivery_key(schedule_id: str, run: str, address: str) -> str:
    return f"{DELIVERY}{schedule_id}#{run}#{address.lower()}"


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


class RecipientStore:
    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def _key(self, tenant: str, entry: str) -> dict[str, Any]:
        return serialize({"customer_id": tenant, "entry": entry})

    def _write(self, method: str, **request: Any) -> bool:
        try:
            getattr(self.client, method)(TableName=self.table_name, **request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # Consent

    def recipients(self, tenant: str) -> dict[str, dict[str, Any]]:
        """The tenant's recipient records by lower-case address (one Query)."""
        items = query_all(
            self.client,
            TableName=self.table_name,
            KeyConditionExpression="customer_id = :tenant AND begins_with(entry, :prefix)",
            ExpressionAttributeValues=serialize({":tenant": tenant, ":prefix": RECIPIENT}),
            ConsistentRead=True,
        )
        return {item["entry"][len(RECIPIENT) :]: item for item in items}

    def recipient(self, tenant: str, address: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(tenant, recipient_key(address)),
            ConsistentRead=True,
        ).get("Item")
        return deserialize(item) if item else None

    def request_confirmation(
        self, tenant: str, address: str, nonce: str, expires: dt.datetime, now: dt.datetime
    ) -> bool:
        """Records a pending recipient awaiting the link with `nonce`. False when the
        address is already known (confirmed, suppressed, or pending with a live link)."""
        return self._write(
            "put_item",
            Item=serialize(
                {
                    "customer_id": tenant,
                    "entry": recipient_key(address),
                    "address": address,
                    "state": PENDING,
                    "nonce": nonce,
                    "confirm_expires": _epoch(expires),
                    "requested_at": iso_utc(now),
                }
            ),
            ConditionExpression=(
                "attribute_not_exists(entry) OR (#state = :pending AND confirm_expires <= :now)"
            ),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=serialize({":pending": PENDING, ":now": _epoch(now)}),
        )

    def withdraw_confirmation(self, tenant: str, address: str, nonce: str) -> None:
        """Forgets a pending request whose email could not be sent, so it is asked again."""
        self._write(
            "delete_item",
            Key=self._key(tenant, recipient_key(address)),
            ConditionExpression="#state = :pending AND nonce = :nonce",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=serialize({":pending": PENDING, ":nonce": nonce}),
        )

    def confirm(self, tenant: str, address: str, nonce: str, now: dt.datetime) -> bool:
        """True once: only the live link of a pending recipient confirms it."""
        return self._write(
            "update_item",
            Key=self._key(tenant, recipient_key(address)),
            UpdateExpression="SET #state = :confirmed, confirmed_at = :at REMOVE nonce",
            ConditionExpression="#state = :pending AND nonce = :nonce AND confirm_expires > :now",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=serialize(
                {
                    ":confirmed": CONFIRMED,
                    ":pending": PENDING,
                    ":nonce": nonce,
                    ":now": _epoch(now),
                    ":at": iso_utc(now),
                }
            ),
        )

    def suppress(self, tenant: str, address: str, reason: str, now: dt.datetime) -> None:
        """Stops all mail from `tenant` to `address` (unsubscribe, bounce, complaint)."""
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(tenant, recipient_key(address)),
            UpdateExpression=(
                "SET #state = :suppressed, address = if_not_exists(address, :address),"
                " suppressed_reason = :reason, suppressed_at = :at REMOVE nonce"
            ),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=serialize(
                {
                    ":suppressed": SUPPRESSED,
                    ":address": address,
                    ":reason": reason,
                    ":at": iso_utc(now),
                }
            ),
        )

    # Daily quota

    def reserve_email(self, tenant: str, now: dt.datetime, limit: int) -> bool:
        """Counts one more email for the tenant's UTC day; False when `limit` is reached."""
        day = now.astimezone(dt.UTC).date().isoformat()
        return self._write(
            "update_item",
            Key=self._key(tenant, SENT + day),
            UpdateExpression="ADD sent :one SET #ttl = :ttl",
            ConditionExpression="attribute_not_exists(sent) OR sent < :limit",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=serialize(
                {":one": 1, ":limit": limit, ":ttl": _epoch(now + COUNTER_RETENTION)}
            ),
        )

    def release_email(self, tenant: str, now: dt.datetime) -> None:
        """Gives back a reservation whose email SES refused."""
        day = now.astimezone(dt.UTC).date().isoformat()
        self._write(
            "update_item",
            Key=self._key(tenant, SENT + day),
            UpdateExpression="ADD sent :minus_one",
            ConditionExpression="sent > :zero",
            ExpressionAttributeValues=serialize({":minus_one": -1, ":zero": 0}),
        )

    def sent_on(self, tenant: str, day: dt.date) -> int:
        item = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(tenant, SENT + day.isoformat()),
            ConsistentRead=True,
        ).get("Item")
        return int(deserialize(item)["sent"]) if item else 0

    # Deliveries

    def start_delivery(
        self,
        tenant: str,
        schedule_id: str,
        run: str,
        address: str,
        report_id: str,
        now: dt.datetime,
    ) -> bool:
        """Claims one run's email to one recipient; False if it was sent (or is being
        sent) already. A failed attempt may be claimed again."""
        return self._write(
            "put_item",
            Item=serialize(
                {
                    "customer_id": tenant,
                    "entry": delivery_key(schedule_id, run, address),
                    "delivery_status": SENDING,
                    "report_id": report_id,
                    "started_at": iso_utc(now),
                    "ttl": _epoch(now + DELIVERY_RETENTION),
                }
            ),
            ConditionExpression="attribute_not_exists(entry) OR delivery_status = :failed",
            ExpressionAttributeValues=serialize({":failed": FAILED}),
        )

    def finish_delivery(
        self, tenant: str, schedule_id: str, run: str, address: str, status: str
    ) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(tenant, delivery_key(schedule_id, run, address)),
            UpdateExpression="SET delivery_status = :status",
            ExpressionAttributeValues=serialize({":status": status}),
        )

    def abandon_delivery(self, tenant: str, schedule_id: str, run: str, address: str) -> None:
        """Drops a claim whose email was never attempted (the quota ran out first)."""
        self.client.delete_item(
            TableName=self.table_name,
            Key=self._key(tenant, delivery_key(schedule_id, run, address)),
        )

    def deliveries(self, tenant: str, schedule_id: str, run: str) -> Mapping[str, str]:
        """Address -> delivery status of one run."""
        prefix = f"{DELIVERY}{schedule_id}#{run}#"
        items = query_all(
            self.client,
            TableName=self.table_name,
            KeyConditionExpression="customer_id = :tenant AND begins_with(entry, :prefix)",
            ExpressionAttributeValues=serialize({":tenant": tenant, ":prefix": prefix}),
            ConsistentRead=True,
        )
        return {item["entry"][len(prefix) :]: item["delivery_status"] for item in items}
