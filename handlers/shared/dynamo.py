"""DynamoDB through the low-level client (pure Python values in and out).

The handlers use `boto3.client`, never `boto3.resource`: the resource layer
adds cold-start time for nothing we need. Items cross this module as plain
dicts whose numbers are Decimal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

BATCH_WRITE_LIMIT = 25
# What a write that failed for good raises: DynamoDB kept items back, or the
# request failed after the SDK's own retries.
WRITE_ERRORS = (ClientError, BotoCoreError)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class UnprocessedItemsError(RuntimeError):
    """BatchWriteItem still returned unprocessed items after every retry."""


ExecutorFactory = Callable[[int], Executor]


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
    return {key: _attribute(value) for key, value in item.items()}


def _attribute(value: Any) -> dict[str, Any]:
    """boto3's TypeSerializer, several times faster on the types items are made of.

    The aggregator serialises about 8 attributes per item and up to a million
    items per run; strings, numbers, maps and lists take the short path (with
    the same number checks), anything else goes to TypeSerializer.
    """
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is Decimal or kind is int:
        number = str(DYNAMODB_CONTEXT.create_decimal(value))
        if number in ("Infinity", "NaN"):
            raise TypeError("Infinity and NaN not supported")
        return {"N": number}
    if kind is dict:
        return {"M": {key: _attribute(entry) for key, entry in value.items()}}
    if kind is list:
        return {"L": [_attribute(entry) for entry in value]}
    return _serializer.serialize(value)


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


def _thread_pool(workers: int) -> Executor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-write")


class BatchWriter:
    """Puts items 25 per BatchWriteItem, with up to `concurrency` requests in flight.

    Items are keyed by `key_attributes` while they wait, so one request never
    holds two items with the same key (DynamoDB rejects such a request). Each
    request is `batch_write`, with its retries of unprocessed items. A request
    that still fails hands its items and the error to `on_failure` and the
    others go on. `put` blocks while `concurrency` requests are in flight, so
    memory stays bounded however many items a caller produces. `close` (or
    leaving the `with` block) writes what is left and waits for every request.

    Low-level boto3 clients are thread-safe, so the requests share `client`.
    `on_failure` runs under the writer's lock: it needs none of its own.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        key_attributes: Sequence[str],
        *,
        concurrency: int,
        on_failure: Callable[[list[dict[str, Any]], Exception], None],
        executor_factory: ExecutorFactory = _thread_pool,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1; got {concurrency}")
        self._client = client
        self._table_name = table_name
        self._key_attributes = tuple(key_attributes)
        self._on_failure = on_failure
        self._executor = executor_factory(concurrency)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._pending: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._in_flight: list[Future[None]] = []
        self.items_written = 0
        self.requests_failed = 0

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def put(self, item: dict[str, Any]) -> None:
        self._pending[tuple(item[name] for name in self._key_attributes)] = item
        if len(self._pending) == BATCH_WRITE_LIMIT:
            self._submit()

    def close(self) -> None:
        """Writes what is left, waits for every request and re-raises an unexpected error."""
        if self._pending:
            self._submit()
        try:
            for future in self._in_flight:
                future.result()
        finally:
            self._in_flight = []
            self._executor.shutdown(wait=True)

    def _submit(self) -> None:
        items = list(self._pending.values())
        self._pending = {}
        self._slots.acquire()
        try:
            future = self._executor.submit(self._write, items)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._in_flight = [f for f in self._in_flight if not f.done() or f.exception()]
        self._in_flight.append(future)

    def _write(self, items: list[dict[str, Any]]) -> None:
        try:
            batch_write(self._client, self._table_name, items)
        except (UnprocessedItemsError, *WRITE_ERRORS) as error:
            with self._lock:
                self.requests_failed += 1
                self._on_failure(items, error)
            return
        with self._lock:
            self.items_written += len(items)
