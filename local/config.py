"""Local stack settings: the documented defaults, overridable from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

# Local only, and documented as such: a token signed with it is worthless
# against a deployed stack, whose key lives in Secrets Manager.
DEFAULT_JWT_SECRET = "securebase-local-development-secret"  # noqa: S105
ISSUER = "securebase-local"
AUDIENCE = "securebase-analytics"
TENANT_CLAIM = "customer_id"
ENVIRONMENT = "local"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class Tenant:
    customer_id: str
    name: str
    aws_account_id: str
    status: str = "active"
    # Reports to this address's domain go out without confirmation.
    contact_email: str = ""


# acme and globex have 90 days of data; initech is suspended, so the
# aggregator must skip it.
TENANTS = (
    Tenant("acme", "Acme Corporation", "111111111111", contact_email="admin@acme.example.com"),
    Tenant("globex", "Globex Corporation", "222222222222", contact_email="it@globex.example.com"),
    Tenant(
        "initech",
        "Initech",
        "333333333333",
        status="suspended",
        contact_email="it@initech.example.com",
    ),
)
BACKFILL_DAYS = 90


@dataclass(frozen=True)
class LocalConfig:
    port: int
    jwt_secret: str

    @classmethod
    def from_env(cls) -> LocalConfig:
        raw_port = os.environ.get("PORT", "8080")
        if not raw_port.isdigit() or not 0 <= int(raw_port) <= 65535:
            raise SystemExit(
                f"PORT must be a TCP port number (0 picks a free one); got {raw_port!r}"
            )
        return cls(
            port=int(raw_port),
            jwt_secret=os.environ.get("ANALYTICS_JWT_SECRET") or DEFAULT_JWT_SECRET,
        )
