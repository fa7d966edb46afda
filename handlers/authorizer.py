"""JWT authorizer for the analytics HTTP API (Lambda authorizer, payload 2.0, simple responses).

Accepts exactly `Authorization: Bearer <jwt>` (the scheme in any case) and
answers `{"isAuthorized": true, "context": {"customer_id", "sub"}}` or
`{"isAuthorized": false}`. Keys, one mode per deployment:

- `JWT_SECRET_ID`: HS256 with a secret from Secrets Manager (the Phase 2
  tokens). The SecretString is either the raw key or a JSON object whose
  `jwt_secret` holds it. Both the AWSCURRENT and the AWSPREVIOUS version's
  key are accepted, so a rotation does not reject tokens signed just before
  it (see `SecretKeys` for when each is read). Revoking a leaked key
  therefore takes two rotations: after one it is still AWSPREVIOUS.
- `JWT_JWKS_URL`: RS256 or ES256 with public keys from a JWKS, fetched by one
  `PyJWKClient` per container that caches them. The key a token's `kid`
  names decides its one algorithm: RSA -> RS256, EC P-256 -> ES256.

A token must carry `exp`, `iat`, `iss` (exactly JWT_ISSUER) and `aud`
(JWT_AUDIENCE), may be up to 30 s past `exp`, may not live longer than
JWT_MAX_LIFETIME_SECONDS (`exp - iat`, default 12 hours), and must name a
tenant in JWT_TENANT_CLAIM (default `customer_id`) that is a valid tenant id,
matched whole. A tenant whose record in the customers table (CUSTOMERS_TABLE)
has a status other than `active` is denied; a tenant with no record is
allowed, as before (its answers are empty). Every decision is logged with a
reason code; tokens, claims other than the tenant, and secrets never are.

API Gateway caches each answer by the `Authorization` header for the
authorizer's result TTL (300 s, components/api.py): "If it is greater than 0,
API Gateway caches authorizer responses" (authorizerResultTtlInSeconds, API
Gateway V2 API Reference). So a tenant suspended while one of its tokens has
a cached allow keeps access with that token for at most 5 minutes; new
tokens, and every token once its cached answer expires, are denied. The
customer record is read once per uncached token, so the cache also bounds
that read to one per token per 5 minutes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import jwt
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from handlers.shared import env, telemetry
from handlers.shared.metrics_layout import is_valid_tenant_id

logger = logging.getLogger(__name__)

DEFAULT_TENANT_CLAIM = "customer_id"
LEEWAY_SECONDS = 30
SECRET_REFRESH_AFTER_SECONDS = 300
CURRENT_STAGE = "AWSCURRENT"
PREVIOUS_STAGE = "AWSPREVIOUS"  # the key before the last rotation: accepted too
MAX_TOKEN_LENGTH = 8192  # far above any real token; caps the work garbage can cause
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud")
DEFAULT_MAX_LIFETIME_SECONDS = 12 * 3600
ACTIVE = "active"  # the customers table's status of a tenant in good standing
HMAC_ALGORITHM = "HS256"  # with the Secrets Manager key
JWKS_ALGORITHMS = ("RS256", "ES256")
JWKS_FETCH_TIMEOUT_SECONDS = 3
JWKS_CACHE_SECONDS = 300

telemetry.configure_logging()


class TokenRejected(Exception):
    """The request is not authorized; `reason` is a code safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class KeyConfigurationError(RuntimeError):
    """The deployment's key material is unusable (a server fault, not the client's)."""


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    tenant_claim: str = DEFAULT_TENANT_CLAIM
    leeway_seconds: int = LEEWAY_SECONDS
    max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS  # exp - iat


@dataclass(frozen=True)
class Identity:
    tenant: str
    subject: str  # the token's `sub`; empty when it has none


# Verification core: no I/O, so every attack is testable without AWS.

_REJECTIONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidIssuedAtError, "malformed"),
    (jwt.InvalidAlgorithmError, "alg_not_allowed"),
    (jwt.InvalidSignatureError, "bad_signature"),
)


def bearer_token(authorization: object) -> str:
    """The token of an `Authorization: Bearer <token>` header value."""
    if not isinstance(authorization, str):
        raise TokenRejected("missing_bearer")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise TokenRejected("missing_bearer")
    if not token or len(token) > MAX_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise TokenRejected("malformed")
    return token


def token_header(token: str) -> tuple[str, str | None]:
    """The `alg` and `kid` a token's header claims (unverified: only to pick a key)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str):
        raise TokenRejected("alg_not_allowed")
    return alg, kid


def verify_token(token: str, key: Any, algorithm: str, settings: TokenSettings) -> Identity:
    """Verifies the signature with `key` under `algorithm` alone, then the claims.

    Raises TokenRejected with the reason. `key` is the HS256 secret (bytes)
    or a public key object.
    """
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.PyJWTError as error:
        for error_type, reason in _REJECTIONS:
            if isinstance(error, error_type):
                raise TokenRejected(reason) from None
        raise TokenRejected("malformed") from None
    # PyJWT has checked that int() takes both, `exp` is not past and `iat` not in the future.
    if int(claims["exp"]) - int(claims["iat"]) > settings.max_lifetime_seconds:
        raise TokenRejected("lifetime_too_long")
    tenant = claims.get(settings.tenant_claim)
    if tenant is None:
        raise TokenRejected("missing_tenant")
    if not is_valid_tenant_id(tenant):
        raise TokenRejected("invalid_tenant")
    subject = claims.get("sub")
    return Identity(tenant=tenant, subject=subject if isinstance(subject, str) else "")


# Key material: Secrets Manager (HS256) or a JWKS URL (RS256/ES256).


def parse_secret_string(secret_string: str) -> bytes:
    """The HS256 key in a SecretString: the raw key or `{"jwt_secret": "<key>"}`."""
    if secret_string.lstrip().startswith("{"):
        try:
            document = json.loads(secret_string)
        except ValueError:
            raise KeyConfigurationError("the JWT secret is neither a key nor JSON") from None
        key = document.get("jwt_secret") if isinstance(document, dict) else None
        if not isinstance(key, str) or not key:
            raise KeyConfigurationError("the JWT secret's JSON has no 'jwt_secret' string")
        return key.encode("utf-8")
    if not secret_string:
        raise KeyConfigurationError("the JWT secret is empty")
    return secret_string.encode("utf-8")


class SecretKeys:
    """The HS256 keys: the secret's AWSCURRENT version and, for rotation, AWSPREVIOUS.

    AWSCURRENT is read once per container. A token it does not verify (a bad
    signature, nothing else) is tried with AWSPREVIOUS, so tokens signed just
    before a rotation keep working in containers that already have the new
    key; AWSPREVIOUS is read on the first such token (absent: no fallback).
    When the keys were read five minutes ago or more, that token first makes
    both be read again, which picks up a rotation. So bad tokens cause at most
    two reads per five minutes, and a previous key is only trusted while a
    read at most five minutes old confirmed it.
    """

    def __init__(
        self,
        secret_id: str,
        client_factory: Callable[[], Any],
        clock: Callable[[], float] = time.monotonic,
    ):
        self._secret_id = secret_id
        self._client_factory = client_factory
        self._clock = clock
        self._client: Any = None
        self._current: bytes | None = None
        self._previous: bytes | None = None
        self._previous_read = False
        self._fetched_at = 0.0

    def _read(self, stage: str) -> bytes | None:
        """The key in the version labelled `stage`; None when no version is."""
        if self._client is None:
            self._client = self._client_factory()
        try:
            response = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        if "SecretString" not in response:
            raise KeyConfigurationError("the JWT secret must be a SecretString")
        return parse_secret_string(response["SecretString"])

    def _read_current(self) -> bytes:
        key = self._read(CURRENT_STAGE)
        if key is None:
            raise KeyConfigurationError("the JWT secret does not exist")
        self._current, self._fetched_at = key, self._clock()
        return key

    def _read_previous(self) -> None:
        try:
            self._previous = self._read(PREVIOUS_STAGE)
        except KeyConfigurationError:
            # An unusable old version must not take the current key down with it.
            logger.exception("the JWT secret's AWSPREVIOUS version is unusable; ignoring it")
            self._previous = None
        self._previous_read = True

    def current(self) -> bytes:
        return self._current if self._current is not None else self._read_current()

    def fallbacks(self, tried: bytes) -> list[bytes]:
        """Keys to try after `tried` (the current key) failed a signature check.

        Stale keys are read again first (AWSCURRENT and AWSPREVIOUS, at most
        once per five minutes); AWSPREVIOUS is read on first need.
        """
        if self._clock() - self._fetched_at >= SECRET_REFRESH_AFTER_SECONDS:
            self._read_current()
            self._read_previous()
        elif not self._previous_read:
            self._read_previous()
        candidates = (self._current, self._previous)
        return [key for key in dict.fromkeys(candidates) if key is not None and key != tried]

    def verify(self, token: str, settings: TokenSettings) -> Identity:
        alg, _ = token_header(token)
        if alg != HMAC_ALGORITHM:
            raise TokenRejected("alg_not_allowed")
        current = self.current()
        try:
            return verify_token(token, current, HMAC_ALGORITHM, settings)
        except TokenRejected as rejection:
            if rejection.reason != "bad_signature":
                raise
            first_rejection = rejection
        for key in self.fallbacks(current):
            try:
                return verify_token(token, key, HMAC_ALGORITHM, settings)
            except TokenRejected as rejection:
                if rejection.reason != "bad_signature":
                    raise  # the key fits: the claims decide, exactly as with AWSCURRENT
        raise first_rejection


def jwk_algorithm(key: Any) -> str | None:
    """The one algorithm a public key verifies: RS256 (RSA), ES256 (EC P-256), else None.

    Decided by the key itself, not by the JWK's or the token's `alg`, so no
    header can make a key verify under another algorithm family.
    """
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    return None


class JwksKeys:
    """RS256/ES256 public keys from a JWKS URL, cached by one client per container."""

    def __init__(self, url: str):
        self._client = jwt.PyJWKClient(
            url,
            cache_keys=True,
            lifespan=JWKS_CACHE_SECONDS,
            timeout=JWKS_FETCH_TIMEOUT_SECONDS,
        )

    def verify(self, token: str, settings: TokenSettings) -> Identity:
        alg, kid = token_header(token)
        if alg not in JWKS_ALGORITHMS:
            raise TokenRejected("alg_not_allowed")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("unknown_kid")
        try:
            key = self._client.get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
            raise KeyConfigurationError("the JWKS could not be read") from error
        except jwt.PyJWKClientError:
            raise TokenRejected("unknown_kid") from None
        algorithm = jwk_algorithm(key.key)
        if algorithm is None:
            raise TokenRejected("unsupported_key")
        return verify_token(token, key.key, algorithm, settings)


KeySource = SecretKeys | JwksKeys


class CustomerStatuses:
    """Tenants' standing in the Phase 2 customers table; its client is made on first use."""

    def __init__(self, table_name: str, client_factory: Callable[[], Any]):
        self.table_name = table_name
        self._client_factory = client_factory
        self._client: Any = None

    def status(self, tenant: str) -> str | None:
        """The customer record's `status` ("" when it has none); None when there is no record."""
        if self._client is None:
            self._client = self._client_factory()
        item = self._client.get_item(
            TableName=self.table_name,
            Key={"customer_id": {"S": tenant}},
            ProjectionExpression="#status",
            ExpressionAttributeNames={"#status": "status"},  # a reserved word
        ).get("Item")
        if item is None:
            return None
        return item.get("status", {}).get("S", "")


class Authorizer:
    def __init__(
        self, settings: TokenSettings, keys: KeySource, customers: CustomerStatuses | None = None
    ):
        self.settings = settings
        self.keys = keys
        self.customers = customers

    def verify(self, authorization: object) -> Identity:
        """The identity of a valid token of a tenant in good standing; else TokenRejected."""
        identity = self.keys.verify(bearer_token(authorization), self.settings)
        if self.customers is not None:
            status = self.customers.status(identity.tenant)
            if status is not None and status != ACTIVE:
                raise TokenRejected("tenant_not_active")
        return identity

    @classmethod
    def from_environment(cls) -> Authorizer:
        settings = TokenSettings(
            issuer=env.require(env.JWT_ISSUER),
            audience=env.require(env.JWT_AUDIENCE),
            tenant_claim=env.optional(env.JWT_TENANT_CLAIM, DEFAULT_TENANT_CLAIM)
            or DEFAULT_TENANT_CLAIM,
            max_lifetime_seconds=_max_lifetime_from_env(),
        )
        customers = CustomerStatuses(
            env.require(env.CUSTOMERS_TABLE), lambda: boto3.client("dynamodb")
        )
        secret_id = env.optional(env.JWT_SECRET_ID)
        jwks_url = env.optional(env.JWT_JWKS_URL)
        if bool(secret_id) == bool(jwks_url):
            raise env.MissingEnvironment(
                f"set exactly one of {env.JWT_SECRET_ID} and {env.JWT_JWKS_URL}"
            )
        if secret_id:
            keys: KeySource = SecretKeys(secret_id, lambda: boto3.client("secretsmanager"))
        else:
            keys = JwksKeys(str(jwks_url))
        return cls(settings, keys, customers)

    def authorize(self, headers: Mapping[str, Any] | None) -> dict[str, Any]:
        """The simple response for a request's headers; logs the decision."""
        authorization = {str(k).lower(): v for k, v in (headers or {}).items()}.get("authorization")
        try:
            identity = self.verify(authorization)
        except TokenRejected as rejection:
            logger.info("denied", extra={"decision": "deny", "reason": rejection.reason})
            return {"isAuthorized": False}
        logger.info(
            "allowed", extra={"decision": "allow", "reason": "ok", "customer_id": identity.tenant}
        )
        return {
            "isAuthorized": True,
            "context": {"customer_id": identity.tenant, "sub": identity.subject},
        }


def _max_lifetime_from_env() -> int:
    raw = env.optional(env.JWT_MAX_LIFETIME_SECONDS)
    if raw is None:
        return DEFAULT_MAX_LIFETIME_SECONDS
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise env.MissingEnvironment(
            f"environment variable {env.JWT_MAX_LIFETIME_SECONDS} must be a positive number"
            f" of seconds; got {raw!r}"
        )
    return int(raw)


_authorizer: Authorizer | None = None


def _configured_authorizer() -> Authorizer:
    """One authorizer (and with it one key cache) per container, built on first use."""
    global _authorizer
    if _authorizer is None:
        _authorizer = Authorizer.from_environment()
    return _authorizer


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return _configured_authorizer().authorize(event.get("headers"))
