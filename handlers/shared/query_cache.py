"""Caches API response bodies in the report-cache table, per tenant, route and parameters.

An entry is `{cache_key, body (JSON string), ttl (epoch seconds)}`. DynamoDB
deletes expired items lazily (up to days late), so a read honours `ttl > now`
itself. The cache only saves work: when it cannot be read or written the
request is answered from the metrics table and the failure is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.shared.dynamo import serialize
from handlers.shared.http import to_json

logger = logging.getLogger(__name__)


def cache_key(tenant: str, route: str, parameters: Mapping[str, str]) -> str:
    """`acme#/analytics/usage#period=28d`: the tenant first, parameters already normalised.

    Callers pass normalised values (`4w` and `28d` are both `28d`) so that
    equivalent requests share one entry.
    """
    normalised = "&".join(f"{name}={parameters[name]}" for name in sorted(parameters))
    return f"{tenant}#{route}#{normalised}"


class QueryCache:
    def __init__(self, client: Any, table_name: str, ttl_seconds: int):
        self._client = client
        self._table_name = table_name
        self._ttl_seconds = ttl_seconds

    @property
    def enabled(self) -> bool:
        return self._ttl_seconds > 0

    def get(self, key: str, now: int) -> dict[str, Any] | None:
        """The body stored under `key` if it has not expired at `now`."""
        if not self.enabled:
            return None
        try:
            item = self._client.get_item(
                TableName=self._table_name,
                Key=serialize({"cache_key": key}),
            ).get("Item")
        except (BotoCoreError, ClientError):
            logger.warning("query cache read failed", exc_info=True, extra={"cache_key": key})
            return None
        if not item or int(item.get("ttl", {}).get("N", "0")) <= now:
            return None
        try:
            body = json.loads(item["body"]["S"])
        except (KeyError, ValueError):
            logger.warning("query cache entry is unreadable", extra={"cache_key": key})
            return None
        return body if isinstance(body, dict) else None

    def put(self, key: str, body: Mapping[str, Any], now: int) -> None:
        """Stores `body` until `now + ttl_seconds`; a failure is logged, never raised."""
        if not self.enabled:
            return
        item = {"cache_key": key, "body": to_json(body), "ttl": now + self._ttl_seconds}
        try:
            self._client.put_item(TableName=self._table_name, Item=serialize(item))
        except (BotoCoreError, ClientError):
            logger.warning("query cache write failed", exc_info=True, extra={"cache_key": key})
