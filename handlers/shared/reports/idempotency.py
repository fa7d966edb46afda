"""Idempotency keys for POST /analytics/reports, kept in the cache table.

A key maps to the report the first request created, for 24 hours. The record
is written with a conditional put before the report exists, so two requests
racing with the same key agree on one report id; a retry then answers with
that report as it is now. Reusing a key for a different request is a client
error (409), because answering with the old report would be wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from handlers.shared.dynamo import deserialize, serialize
from handlers.shared.http import ApiError, bad_request

TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


def validate_key(raw: str | None) -> str | None:
    """The header's value; None when absent. Printable ASCII, 1-255 characters."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in raw):
        raise bad_request("Idempotency-Key", "1 to 255 printable ASCII characters", raw)
    return raw


def fingerprint(request: Mapping[str, Any]) -> str:
    """A digest of the normalised request: the same report asked for twice matches."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(tenant: str, key: str) -> str:
    return f"idempotency#{tenant}#{hashlib.sha256(key.encode()).hexdigest()}"


class IdempotencyRecords:
    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def claim(
        self, tenant: str, key: str, request_fingerprint: str, report_id: str, now: dt.datetime
    ) -> str:
        """The report id the key stands for: `report_id` if this call stored it first.

        Raises ApiError(409) when the key was used for a different request.
        """
        item_key = cache_key(tenant, key)
        epoch = int(now.timestamp())
        while True:
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=serialize(
                        {
                            "cache_key": item_key,
                            "report_id": report_id,
                            "fingerprint": request_fingerprint,
                            "ttl": epoch + TTL_SECONDS,
                        }
                    ),
                    # DynamoDB removes expired items up to days late: those count as absent.
                    ConditionExpression="attribute_not_exists(cache_key) OR #ttl < :now",
                    ExpressionAttributeNames={"#ttl": "ttl"},
                    ExpressionAttributeValues=serialize({":now": epoch}),
                )
                return report_id
            except self.client.exceptions.ConditionalCheckFailedException:
                pass
            response = self.client.get_item(
                TableName=self.table_name,
                Key=serialize({"cache_key": item_key}),
                ConsistentRead=True,
            )
            if "Item" not in response:
                continue  # expired and removed in between: claim it afresh
            stored = deserialize(response["Item"])
            if stored.get("fingerprint") != request_fingerprint:
                raise ApiError(
                    409,
                    "idempotency_key_reused",
                    "Idempotency-Key was already used for a different report request",
                )
            return str(stored["report_id"])
