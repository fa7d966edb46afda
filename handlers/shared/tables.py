"""The five analytics tables, defined once.

`components.data.AnalyticsData` turns these into `aws.dynamodb.Table`s, the
local stack and the tests create the same tables in the emulator with
`create_table_request`, and the handlers take key and index names from here,
so the three can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GlobalIndex:
    name: str
    hash_key: str
    range_key: str | None = None
    projection: str = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """One table: logical name (its physical name is securebase-{env}-{name})."""

    name: str
    hash_key: str
    range_key: str | None = None
    ttl_attribute: str | None = None
    indexes: tuple[GlobalIndex, ...] = ()
    # Caches hold nothing that cannot be recomputed, so they skip
    # point-in-time recovery and must expire items through TTL instead.
    is_cache: bool = False
    # Every key attribute is a string in this service.
    attribute_types: dict[str, str] = field(default_factory=dict)

    @property
    def key_attributes(self) -> tuple[str, ...]:
        names = [self.hash_key]
        if self.range_key:
            names.append(self.range_key)
        for index in self.indexes:
            names.append(index.hash_key)
            if index.range_key:
                names.append(index.range_key)
        return tuple(dict.fromkeys(names))

    def attribute_type(self, name: str) -> str:
        return self.attribute_types.get(name, "S")


# Hourly samples, daily rollups, daily costs and compliance snapshots for every
# tenant, one partition per tenant (pk = tenant id) so that any window a query
# needs is a single Query; see handlers.shared.metrics_layout for the sort keys.
METRICS = TableSpec(name="metrics", hash_key="pk", range_key="sk", ttl_attribute="ttl")

# Report ids sort by creation time, so a tenant's reports list newest first
# straight from the table, with no index. Each report expires with its file
# (`ttl`, epoch seconds; see handlers.shared.reports.store).
REPORTS = TableSpec(
    name="reports", hash_key="customer_id", range_key="report_id", ttl_attribute="ttl"
)

# Active schedules carry `due_shard`; the sparse index finds due schedules of
# every tenant by `next_run` (ISO-8601 UTC, sorts as time) without a scan.
DUE_SCHEDULES_INDEX = GlobalIndex(
    name="due-by-next-run", hash_key="due_shard", range_key="next_run"
)
REPORT_SCHEDULES = TableSpec(
    name="report-schedules",
    hash_key="customer_id",
    range_key="schedule_id",
    indexes=(DUE_SCHEDULES_INDEX,),
)

# Query results and idempotency records, each with an epoch-seconds `ttl`.
REPORT_CACHE = TableSpec(
    name="report-cache", hash_key="cache_key", ttl_attribute="ttl", is_cache=True
)

# Report email, per tenant (handlers.shared.mail.recipients): each recipient's
# consent (kept), each scheduled run's delivery to each recipient and each UTC
# day's email count (both expire through `ttl`).
REPORT_EMAILS = TableSpec(
    name="report-emails", hash_key="customer_id", range_key="entry", ttl_attribute="ttl"
)

ALL_TABLES: tuple[TableSpec, ...] = (
    METRICS,
    REPORTS,
    REPORT_SCHEDULES,
    REPORT_CACHE,
    REPORT_EMAILS,
)


def create_table_request(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """The `CreateTable` request that builds `spec` on demand (emulator and tests)."""
    key_schema = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
    if spec.range_key:
        key_schema.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": key_schema,
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": spec.attribute_type(name)}
            for name in spec.key_attributes
        ],
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [{"AttributeName": index.hash_key, "KeyType": "HASH"}]
                + (
                    [{"AttributeName": index.range_key, "KeyType": "RANGE"}]
                    if index.range_key
                    else []
                ),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in spec.indexes
        ]
    return request


def create_tables(dynamodb_client: Any, environment: str) -> dict[str, str]:
    """Creates every table in an emulator; returns logical name -> physical name."""
    names = {}
    for spec in ALL_TABLES:
        table_name = f"securebase-{environment}-{spec.name}"
        dynamodb_client.create_table(**create_table_request(spec, table_name))
        if spec.ttl_attribute:
            dynamodb_client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        names[spec.name] = table_name
    return names
