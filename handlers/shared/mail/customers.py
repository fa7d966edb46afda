"""The Phase 2 customers table, read for a tenant's name and email domains."""

from __future__ import annotations

from typing import Any

from handlers.shared.dynamo import deserialize, serialize


class CustomerDirectory:
    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def get(self, tenant: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=serialize({"customer_id": tenant})
        ).get("Item")
        return deserialize(item) if item else None
