"""The smoke test's own token (`--mint-token`): signed by the validator, valid 15 minutes.

The authorizer refuses tokens that live longer than `jwtMaxTokenLifetimeHours`,
so a token stored before a deploy cannot be relied on. Instead the validator
reads the stack's HS256 signing key (`jwtSecretName`, AWSCURRENT) with the
credentials it runs with, which need `secretsmanager:GetSecretValue` on that
one secret, and signs a token for the dedicated tenant `smoke-test` with the
stack's issuer, audience and tenant claim. An unknown tenant reads nothing
real. The token lives only in memory: it is never printed or logged, and
failures name the secret and the permission, never the key or the token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import jwt
from botocore.exceptions import BotoCoreError, ClientError

from components.settings import JwtSettings
from handlers.authorizer import HMAC_ALGORITHM, KeyConfigurationError, parse_secret_string
from ops.checks.aws import AwsView
from ops.checks.base import Check, CheckError, Outcome, passed

SMOKE_TENANT = "smoke-test"
TOKEN_LIFETIME = dt.timedelta(minutes=15)
PERMISSION = "secretsmanager:GetSecretValue"


def mint(settings: JwtSettings, key: bytes, now: dt.datetime) -> str:
    """An HS256 token for the smoke-test tenant, issued at `now`, expiring 15 minutes later."""
    issued = int(now.timestamp())
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": f"deployment-validator@{SMOKE_TENANT}",
        settings.tenant_claim: SMOKE_TENANT,
        "iat": issued,
        "exp": issued + int(TOKEN_LIFETIME.total_seconds()),
    }
    return jwt.encode(claims, key, algorithm=HMAC_ALGORITHM)


class MintedToken:
    """The token, minted on first use and kept for the run (a failure is kept too)."""

    def __init__(
        self, settings: JwtSettings, aws: AwsView, clock: Callable[[], dt.datetime]
    ) -> None:
        if settings.secret_name is None:
            raise ValueError("a minted token needs the stack's HS256 secret (jwtSecretName)")
        self.secret_name = settings.secret_name
        self._settings = settings
        self._aws = aws
        self._clock = clock
        self._token: str | None = None
        self._failure: CheckError | None = None

    def __repr__(self) -> str:  # never the token
        return f"MintedToken(secret_name={self.secret_name!r})"

    def value(self) -> str:
        """The token; CheckError saying what to fix when the key cannot be read."""
        if self._failure is not None:
            raise self._failure
        if self._token is None:
            try:
                key = self._signing_key()
            except CheckError as error:
                self._failure = error
                raise
            self._token = mint(self._settings, key, self._clock())
        return self._token

    def _signing_key(self) -> bytes:
        secret = self.secret_name
        try:
            secret_string = self._aws.secret_string(secret)
        except ClientError as error:
            info = error.response.get("Error", {})
            code = info.get("Code", "ClientError")
            if code == "ResourceNotFoundException":
                raise CheckError(
                    f"the signing key secret {secret} (jwtSecretName) does not exist "
                    f"in {self._aws.region}"
                ) from None
            raise CheckError(
                f"cannot read the signing key secret {secret}: {code}: "
                f"{info.get('Message', '')}; the credentials need {PERMISSION} on it"
            ) from None
        except BotoCoreError as error:
            raise CheckError(
                f"cannot read the signing key secret {secret}: {error}; "
                f"the credentials need {PERMISSION} on it"
            ) from None
        if secret_string is None:
            raise CheckError(f"the signing key secret {secret} has no SecretString")
        try:
            return parse_secret_string(secret_string)
        except KeyConfigurationError as error:
            raise CheckError(f"the signing key secret {secret} is unusable: {error}") from None


def minting_check(token: MintedToken) -> Check:
    def run() -> Outcome:
        token.value()
        return passed(
            f"HS256 with {token.secret_name}, tenant {SMOKE_TENANT}, "
            f"valid {int(TOKEN_LIFETIME.total_seconds()) // 60} minutes"
        )

    return Check("smoke", f"smoke token: minted for tenant {SMOKE_TENANT}", run)
