"""DynamoDB through the low-level client (pure Python values in and out).

The handlers use `boto3.client`, never `boto3.resource`: the resource layer
adds cold-start time for nothing we need. Items cross this module as plain
dicts whose numbers are Decimal.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

BATCH_WRITE_LIMIT = 25
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class UnprocessedItemsError(RuntimeError):
    """BatchWriteItem still returned unprocessed items after every retry."""


def to_number(value: float | int | Decimal, places: int = 6) -> Decimal:
    """A float as a Decimal DynamoDB accepts (no inexact binary tail)."""
    if isinstance(value, Decimal):
        return value
    return (
        Decimal(repr(round(float(value), places))).normalize()
        if isinstance(value, float)
        else Decimal(value)
    )


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def deserialize(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in attributes.items()}


def query_all(client: Any, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query, following `LastEvaluatedKey`; one request per page."""
    while True:
        page = client.query(**request)
        for attributes in page.get("Items", []):
            yield deserialize(attributes)
        last_key = page.get("LastEvaluatedKey")
        if not last_key:
            return
        request = {**request, "ExclusiveStartKey": last_key}


def batch_write(
    client: Any,
    table_name: str,
    items: Iterable[Mapping[str, Any]],
    max_attempts: int = 8,
    base_delay: float = 0.05,
    sleep: Any = time.sleep,
) -> int:
    """Puts items 25 at a time, retrying unprocessed ones with backoff.

    Returns the number of BatchWriteItem requests made. Raises
    UnprocessedItemsError if DynamoDB keeps items back after `max_attempts`.
    """
    requests = 0
    batch: list[dict[str, Any]] = []

    def flush(pending: list[dict[str, Any]]) -> None:
        nonlocal requests
        for attempt in range(max_attempts):
            response = client.batch_write_item(RequestItems={table_name: pending})
            requests += 1
            pending = response.get("UnprocessedItems", {}).get(table_name, [])
            if not pending:
                return
            sleep(min(base_delay * 2**attempt, 2.0))
        raise UnprocessedItemsError(f"{len(pending)} items still unprocessed in {table_name}")

    for item in items:
        batch.append({"PutRequest": {"Item": serialize(item)}})
        if len(batch) == BATCH_WRITE_LIMIT:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return requests
