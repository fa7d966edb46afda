"""Active tenants from the Phase 2 customers table (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.shared.metrics_layout import is_valid_tenant_id

ACTIVE = "active"
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    account_id: str | None  # None: usage only; costs and findings cannot be attributed


@dataclass(frozen=True)
class TenantRoster:
    tenants: tuple[Tenant, ...]  # sorted by id
    rejected_ids: tuple[str, ...]  # customer ids that cannot be a metrics partition key
    unattributable_accounts: tuple[str, ...]  # account ids shared by several tenants

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(tenant.tenant_id for tenant in self.tenants)

    def tenant_by_account(self) -> dict[str, str]:
        """Account id -> tenant id, for accounts that belong to exactly one tenant."""
        shared = set(self.unattributable_accounts)
        return {
            tenant.account_id: tenant.tenant_id
            for tenant in self.tenants
            if tenant.account_id and tenant.account_id not in shared
        }


def scan_request(table_name: str) -> dict[str, Any]:
    """Scan of active customers, projected to the three attributes the aggregator uses."""
    return {
        "TableName": table_name,
        # `status` is a DynamoDB reserved word.
        "ProjectionExpression": "customer_id, aws_account_id, #status",
        "FilterExpression": "#status = :active",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":active": {"S": ACTIVE}},
    }


def roster(rows: Iterable[Mapping[str, Any]]) -> TenantRoster:
    """Tenants from deserialised customer rows; ids that are not valid keys are rejected.

    An account id claimed by two tenants cannot say whose costs or findings
    are whose, so neither gets them rather than one getting both.
    """
    tenants: dict[str, Tenant] = {}
    rejected: list[str] = []
    for row in rows:
        customer_id = row.get("customer_id")
        if not is_valid_tenant_id(customer_id):
            rejected.append(str(customer_id))
            continue
        account = row.get("aws_account_id")
        account_id = account if isinstance(account, str) and _ACCOUNT_ID.match(account) else None
        tenants[customer_id] = Tenant(customer_id, account_id)
    owners: dict[str, int] = {}
    for tenant in tenants.values():
        if tenant.account_id:
            owners[tenant.account_id] = owners.get(tenant.account_id, 0) + 1
    return TenantRoster(
        tenants=tuple(tenants[key] for key in sorted(tenants)),
        rejected_ids=tuple(sorted(rejected)),
        unattributable_accounts=tuple(sorted(a for a, n in owners.items() if n > 1)),
    )
