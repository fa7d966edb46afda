"""Prints a local API token: `python -m local.token acme` (`make token CUSTOMER=acme`).

HS256 with ANALYTICS_JWT_SECRET (or the documented local default), issuer
`securebase-local`, audience `securebase-analytics`, tenant claim
`customer_id`. Only the local stack accepts it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jwt

from handlers.shared.metrics_layout import is_valid_tenant_id
from local.config import AUDIENCE, DEFAULT_JWT_SECRET, ISSUER, TENANT_CLAIM


def mint(
    customer_id: str, secret: str, ttl_seconds: int = 12 * 3600, now: float | None = None
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"user@{customer_id}",
        TENANT_CLAIM: customer_id,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.token", description=__doc__.splitlines()[0]
    )
    parser.add_argument("customer_id", help="tenant id, e.g. acme")
    parser.add_argument(
        "--ttl", type=int, default=12 * 3600, help="lifetime in seconds (default 12 h)"
    )
    args = parser.parse_args(argv)
    if not is_valid_tenant_id(args.customer_id):
        parser.error(
            "customer_id must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit; "
            f"got {args.customer_id!r}"
        )
    if args.ttl <= 0:
        parser.error(f"--ttl must be a positive number of seconds; got {args.ttl}")
    secret = os.environ.get("ANALYTICS_JWT_SECRET") or DEFAULT_JWT_SECRET
    print(mint(args.customer_id, secret, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
