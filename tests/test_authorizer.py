"""The JWT authorizer: every attack denied with its reason, valid tokens allowed.

Keys are generated here; the JWKS is served by a real HTTP server on
127.0.0.1, and the HS256 secret lives in (moto's) Secrets Manager.
"""

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from moto import mock_aws

from handlers import authorizer
from handlers.authorizer import (
    Authorizer,
    CustomerStatuses,
    JwksKeys,
    KeyConfigurationError,
    SecretKeys,
    TokenSettings,
    parse_secret_string,
)
from handlers.shared.telemetry import JsonFormatter

ISSUER = "https://auth.securebase.example"
AUDIENCE = "securebase-analytics"
SECRET = "phase2-hs256-secret-of-at-least-32-bytes!"
SETTINGS = TokenSettings(issuer=ISSUER, audience=AUDIENCE)
DENIED = {"isAuthorized": False}

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_P384_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def public_jwk(algorithm: Any, key: Any, kid: str) -> dict[str, Any]:
    return {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


JWKS = {
    "keys": [
        public_jwk(RSAAlgorithm, RSA_KEY, "rsa-1"),
        public_jwk(ECAlgorithm, EC_KEY, "ec-1"),
        public_jwk(ECAlgorithm, EC_P384_KEY, "ec-384"),
    ]
}


# Token builders


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims; a change to None removes the claim."""
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "sub": "user-42",
        "customer_id": "acme",
        **changes,
    }
    return {name: value for name, value in values.items() if value is not None}


def hs256(payload: dict[str, Any] | None = None, key: str = SECRET) -> str:
    return jwt.encode(payload or claims(), key, algorithm="HS256")


def rs256(
    payload: dict[str, Any] | None = None, key: Any = RSA_KEY, kid: str | None = "rsa-1"
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload or claims(), key, algorithm="RS256", headers=headers)


def es256(payload: dict[str, Any] | None = None, kid: str = "ec-1") -> str:
    return jwt.encode(payload or claims(), EC_KEY, algorithm="ES256", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


HS256_HEADER = b64(json.dumps({"alg": "HS256"}).encode())


def unsigned(kid: str | None = "rsa-1") -> str:
    """`alg: none`: a token anyone can write."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return segments(header, claims()) + "."


def signed_segments(signing_input: str, key: bytes = SECRET.encode()) -> str:
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """HS256 by hand, for tokens PyJWT refuses to write."""
    return signed_segments(segments(header, payload), key)


def hs256_with_rsa_public_key() -> str:
    """HS/RS confusion: HMAC keyed with the (public) RSA key, for a verifier that mixes them up."""
    return hmac_signed({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), RSA_PUBLIC_PEM)


def with_header(token: str, **header: Any) -> str:
    """The token's payload and signature under a different header."""
    _, payload, signature = token.split(".")
    return f"{b64(json.dumps(header).encode())}.{payload}.{signature}"


def tampered(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(claims(customer_id='globex')).encode())}.{signature}"


# Key sources


class JwksServer:
    def __init__(self, document: dict[str, Any]):
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer(JWKS)
    yield server
    server.close()


@pytest.fixture(scope="module")
def secretsmanager() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name="securebase/jwt", SecretString=SECRET)
        yield client


@pytest.fixture(scope="module")
def jwks_authorizer(jwks_server: JwksServer) -> Authorizer:
    return Authorizer(SETTINGS, JwksKeys(jwks_server.url))


@pytest.fixture(scope="module")
def secret_authorizer(secretsmanager: Any) -> Authorizer:
    return Authorizer(SETTINGS, SecretKeys("securebase/jwt", lambda: secretsmanager))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def decision_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.reason for r in caplog.records if r.name == authorizer.__name__]


# Every attack, table-driven: (name, mode, headers, reason in the log)

A_BIT_AGO = int(time.time())
ATTACKS: list[tuple[str, str, Callable[[], dict[str, Any]], str]] = [
    ("alg none (JWKS mode)", "jwks", lambda: bearer(unsigned()), "alg_not_allowed"),
    ("alg none (secret mode)", "secret", lambda: bearer(unsigned(kid=None)), "alg_not_allowed"),
    (
        "alg NONE spelled otherwise",
        "jwks",
        lambda: bearer(with_header(rs256(), alg="None", kid="rsa-1")),
        "alg_not_allowed",
    ),
    (
        "HS256 signed with the RSA public key",
        "jwks",
        lambda: bearer(hs256_with_rsa_public_key()),
        "alg_not_allowed",
    ),
    ("HS256 token in JWKS mode", "jwks", lambda: bearer(hs256()), "alg_not_allowed"),
    ("RS256 token in secret mode", "secret", lambda: bearer(rs256()), "alg_not_allowed"),
    ("ES256 token in secret mode", "secret", lambda: bearer(es256()), "alg_not_allowed"),
    (
        "RS512 token",
        "jwks",
        lambda: bearer(jwt.encode(claims(), RSA_KEY, algorithm="RS512", headers={"kid": "rsa-1"})),
        "alg_not_allowed",
    ),
    (
        "RS256 header on the EC key",
        "jwks",
        lambda: bearer(with_header(es256(), alg="RS256", kid="ec-1")),
        "alg_not_allowed",
    ),
    (
        "ES256 header on the RSA key",
        "jwks",
        lambda: bearer(with_header(rs256(), alg="ES256", kid="rsa-1")),
        "alg_not_allowed",
    ),
    ("ES256 on a P-384 key", "jwks", lambda: bearer(es256(kid="ec-384")), "unsupported_key"),
    (
        "wrong issuer",
        "jwks",
        lambda: bearer(rs256(claims(iss="https://evil.example"))),
        "wrong_issuer",
    ),
    (
        "issuer with a trailing slash",
        "jwks",
        lambda: bearer(rs256(claims(iss=ISSUER + "/"))),
        "wrong_issuer",
    ),
    (
        "issuer with a suffix",
        "jwks",
        lambda: bearer(rs256(claims(iss=ISSUER + ".evil.example"))),
        "wrong_issuer",
    ),
    ("issuer prefix only", "jwks", lambda: bearer(rs256(claims(iss=ISSUER[:-8]))), "wrong_issuer"),
    (
        "issuer in other case",
        "secret",
        lambda: bearer(hs256(claims(iss=ISSUER.upper()))),
        "wrong_issuer",
    ),
    (
        "issuer as a list",
        "secret",
        lambda: bearer(hmac_signed({"alg": "HS256"}, claims(iss=[ISSUER]), SECRET.encode())),
        "wrong_issuer",
    ),
    (
        "wrong audience",
        "jwks",
        lambda: bearer(rs256(claims(aud="securebase-admin"))),
        "wrong_audience",
    ),
    (
        "audience list without ours",
        "secret",
        lambda: bearer(hs256(claims(aud=["a", "b"]))),
        "wrong_audience",
    ),
    (
        "expired beyond the leeway",
        "jwks",
        lambda: bearer(rs256(claims(exp=int(time.time()) - 45))),
        "expired",
    ),
    ("expired long ago", "secret", lambda: bearer(hs256(claims(exp=A_BIT_AGO - 86400))), "expired"),
    (
        "not valid before the future",
        "secret",
        lambda: bearer(hs256(claims(nbf=int(time.time()) + 3600))),
        "not_yet_valid",
    ),
    ("missing exp", "jwks", lambda: bearer(rs256(claims(exp=None))), "missing_claim"),
    ("missing iat (HS256)", "secret", lambda: bearer(hs256(claims(iat=None))), "missing_claim"),
    ("missing iat (RS256)", "jwks", lambda: bearer(rs256(claims(iat=None))), "missing_claim"),
    (
        "iat that is not a number",
        "secret",
        lambda: bearer(hs256(claims(iat="yesterday"))),
        "malformed",
    ),
    (
        "issued in the future",
        "jwks",
        lambda: bearer(es256(claims(iat=int(time.time()) + 3600))),
        "not_yet_valid",
    ),
    (
        "living a second longer than 12 hours (HS256)",
        "secret",
        lambda: bearer(hs256(claims(iat=A_BIT_AGO, exp=A_BIT_AGO + 12 * 3600 + 1))),
        "lifetime_too_long",
    ),
    (
        "living a second longer than 12 hours (ES256)",
        "jwks",
        lambda: bearer(es256(claims(iat=A_BIT_AGO, exp=A_BIT_AGO + 12 * 3600 + 1))),
        "lifetime_too_long",
    ),
    (
        "exp of 1e300",
        "secret",
        lambda: bearer(hmac_signed({"alg": "HS256"}, claims(exp=1e300), SECRET.encode())),
        "lifetime_too_long",
    ),
    (
        "tenant with a trailing newline (HS256)",
        "secret",
        lambda: bearer(hs256(claims(customer_id="acme\n"))),
        "invalid_tenant",
    ),
    (
        "tenant with a trailing newline (RS256)",
        "jwks",
        lambda: bearer(rs256(claims(customer_id="acme\n"))),
        "invalid_tenant",
    ),
    ("missing iss", "jwks", lambda: bearer(rs256(claims(iss=None))), "missing_claim"),
    ("missing aud", "secret", lambda: bearer(hs256(claims(aud=None))), "missing_claim"),
    ("missing tenant", "jwks", lambda: bearer(rs256(claims(customer_id=None))), "missing_tenant"),
    (
        "path traversal tenant",
        "jwks",
        lambda: bearer(rs256(claims(customer_id="../x"))),
        "invalid_tenant",
    ),
    (
        "tenant with a space",
        "secret",
        lambda: bearer(hs256(claims(customer_id="a b"))),
        "invalid_tenant",
    ),
    ("empty tenant", "secret", lambda: bearer(hs256(claims(customer_id=""))), "invalid_tenant"),
    (
        "65-character tenant",
        "secret",
        lambda: bearer(hs256(claims(customer_id="a" * 65))),
        "invalid_tenant",
    ),
    (
        "tenant starting with #",
        "secret",
        lambda: bearer(hs256(claims(customer_id="#aggregator"))),
        "invalid_tenant",
    ),
    ("numeric tenant", "secret", lambda: bearer(hs256(claims(customer_id=42))), "invalid_tenant"),
    (
        "tenant as a list",
        "secret",
        lambda: bearer(hs256(claims(customer_id=["acme"]))),
        "invalid_tenant",
    ),
    (
        "signed by another RSA key",
        "jwks",
        lambda: bearer(rs256(key=ATTACKER_RSA_KEY)),
        "bad_signature",
    ),
    (
        "signed with another secret",
        "secret",
        lambda: bearer(hs256(key="not-the-secret-but-long-enough-32b")),
        "bad_signature",
    ),
    ("payload swapped (RS256)", "jwks", lambda: bearer(tampered(rs256())), "bad_signature"),
    ("payload swapped (HS256)", "secret", lambda: bearer(tampered(hs256())), "bad_signature"),
    ("kid not in the JWKS", "jwks", lambda: bearer(rs256(kid="rsa-2")), "unknown_kid"),
    ("no kid", "jwks", lambda: bearer(rs256(kid=None)), "unknown_kid"),
    (
        "kid that is not a string",
        "jwks",
        lambda: bearer(with_header(rs256(), alg="RS256", kid=["rsa-1"])),
        "malformed",
    ),
    ("garbage", "jwks", lambda: bearer("garbage"), "malformed"),
    ("three garbage segments", "secret", lambda: bearer("a.b.c"), "malformed"),
    ("dots only", "secret", lambda: bearer(".."), "malformed"),
    (
        "header that is not JSON",
        "jwks",
        lambda: bearer(f"{b64(b'nope')}.{b64(b'{}')}.sig"),
        "malformed",
    ),
    (
        "validly signed payload that is not JSON",
        "secret",
        lambda: bearer(signed_segments(f"{HS256_HEADER}.{b64(b'[1')}")),
        "malformed",
    ),
    ("oversized token", "secret", lambda: bearer("a" * 9000), "malformed"),
    ("Basic scheme", "secret", lambda: {"authorization": "Basic dXNlcjpwYXNz"}, "missing_bearer"),
    ("token without a scheme", "secret", lambda: {"authorization": hs256()}, "missing_bearer"),
    ("Bearer without a token", "secret", lambda: {"authorization": "Bearer"}, "malformed"),
    ("Bearer with an empty token", "secret", lambda: {"authorization": "Bearer "}, "malformed"),
    (
        "two spaces after Bearer",
        "secret",
        lambda: {"authorization": f"Bearer  {hs256()}"},
        "malformed",
    ),
    ("no Authorization header", "secret", lambda: {}, "missing_bearer"),
]


@pytest.mark.parametrize(
    ("mode", "headers", "reason"), [case[1:] for case in ATTACKS], ids=[case[0] for case in ATTACKS]
)
def test_attacks_are_denied_with_their_reason(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    headers: Callable[[], dict[str, Any]],
    reason: str,
) -> None:
    subject = request.getfixturevalue(f"{mode}_authorizer")
    sent = headers()
    caplog.set_level(logging.INFO, logger=authorizer.__name__)

    assert subject.authorize(sent) == DENIED
    assert decision_reasons(caplog) == [reason]
    # The token (or any part of the header) never reaches the logs.
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    credentials = sent.get("authorization", "").partition(" ")[2]
    for part in filter(lambda p: len(p) > 8, credentials.split(".")):
        assert part not in logged


VALID = [
    ("HS256 in secret mode", "secret", lambda: bearer(hs256())),
    ("RS256 in JWKS mode", "jwks", lambda: bearer(rs256())),
    ("ES256 in JWKS mode", "jwks", lambda: bearer(es256())),
    ("scheme in lower case", "secret", lambda: {"Authorization": f"bearer {hs256()}"}),
    ("scheme in upper case", "jwks", lambda: {"AUTHORIZATION": f"BEARER {rs256()}"}),
    (
        "expired within the 30 s leeway",
        "jwks",
        lambda: bearer(rs256(claims(exp=int(time.time()) - 10))),
    ),
    ("audience list with ours", "secret", lambda: bearer(hs256(claims(aud=["other", AUDIENCE])))),
    ("64-character tenant", "secret", lambda: bearer(hs256(claims(customer_id="a" * 64)))),
    (
        "living exactly 12 hours",
        "jwks",
        lambda: bearer(rs256(claims(iat=A_BIT_AGO, exp=A_BIT_AGO + 12 * 3600))),
    ),
]


@pytest.mark.parametrize(
    ("mode", "headers"), [case[1:] for case in VALID], ids=[case[0] for case in VALID]
)
def test_valid_tokens_are_allowed_with_tenant_and_subject(
    request: pytest.FixtureRequest, mode: str, headers: Callable[[], dict[str, Any]]
) -> None:
    subject = request.getfixturevalue(f"{mode}_authorizer")
    response = subject.authorize(headers())
    assert response["isAuthorized"] is True
    assert response["context"]["sub"] == "user-42"
    assert response["context"]["customer_id"] in ("acme", "a" * 64)


def test_subject_is_empty_when_the_token_has_none(secret_authorizer: Authorizer) -> None:
    assert secret_authorizer.authorize(bearer(hs256(claims(sub=None)))) == {
        "isAuthorized": True,
        "context": {"customer_id": "acme", "sub": ""},
    }


def test_the_maximum_lifetime_is_configurable(secretsmanager: Any) -> None:
    one_hour = Authorizer(
        TokenSettings(ISSUER, AUDIENCE, max_lifetime_seconds=3600),
        SecretKeys("securebase/jwt", lambda: secretsmanager),
    )
    now = int(time.time())
    assert one_hour.authorize(bearer(hs256(claims(iat=now, exp=now + 3600))))["isAuthorized"]
    assert one_hour.authorize(bearer(hs256(claims(iat=now, exp=now + 3601)))) == DENIED


# Tenants' standing in the customers table

CUSTOMERS_TABLE = "securebase-test-customers"


@pytest.fixture(scope="module")
def customers(secretsmanager: Any) -> Iterator[Any]:
    """The customers table, in the module's emulated account (with `secretsmanager`)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName=CUSTOMERS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
    )
    for tenant, status in (("acme", "active"), ("initech", "suspended"), ("hooli", None)):
        item = {"customer_id": {"S": tenant}, "name": {"S": tenant.title()}}
        if status is not None:
            item["status"] = {"S": status}
        dynamodb.put_item(TableName=CUSTOMERS_TABLE, Item=item)
    yield dynamodb


@pytest.mark.parametrize("mode", ["secret", "jwks"])
@pytest.mark.parametrize(
    ("tenant", "allowed"),
    [("acme", True), ("initech", False), ("hooli", False), ("unknown-tenant", True)],
    ids=["active", "suspended", "record without status", "no record"],
)
def test_only_tenants_in_good_standing_or_without_a_record_are_allowed(
    secretsmanager: Any,
    customers: Any,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    tenant: str,
    allowed: bool,
) -> None:
    keys = (
        SecretKeys("securebase/jwt", lambda: secretsmanager)
        if mode == "secret"
        else JwksKeys(jwks_server.url)
    )
    subject = Authorizer(SETTINGS, keys, CustomerStatuses(CUSTOMERS_TABLE, lambda: customers))
    token = (
        hs256(claims(customer_id=tenant)) if mode == "secret" else es256(claims(customer_id=tenant))
    )
    caplog.set_level(logging.INFO, logger=authorizer.__name__)

    response = subject.authorize(bearer(token))

    if allowed:
        assert response == {
            "isAuthorized": True,
            "context": {"customer_id": tenant, "sub": "user-42"},
        }
        assert decision_reasons(caplog) == ["ok"]
    else:
        assert response == DENIED
        assert decision_reasons(caplog) == ["tenant_not_active"]


def test_a_bad_token_is_denied_without_reading_the_customers_table(secretsmanager: Any) -> None:
    class Unreachable:
        def get_item(self, **request: Any) -> None:
            raise AssertionError("the customers table was read for a bad token")

    subject = Authorizer(
        SETTINGS,
        SecretKeys("securebase/jwt", lambda: secretsmanager),
        CustomerStatuses(CUSTOMERS_TABLE, Unreachable),
    )
    assert subject.authorize(bearer(hs256(key="not-the-secret-but-long-enough-32b"))) == DENIED


def test_tenant_claim_is_configurable(secretsmanager: Any) -> None:
    custom = Authorizer(
        TokenSettings(ISSUER, AUDIENCE, tenant_claim="tenant"),
        SecretKeys("securebase/jwt", lambda: secretsmanager),
    )
    assert custom.authorize(bearer(hs256(claims(tenant="globex"))))["context"] == {
        "customer_id": "globex",
        "sub": "user-42",
    }
    # The default claim is not a fallback.
    assert custom.authorize(bearer(hs256())) == DENIED


@settings(max_examples=200)
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(lambda t: f"Bearer {t}", st.text(max_size=300)),
        st.builds(
            lambda a, b, c: f"Bearer {a}.{b}.{c}",
            *[st.from_regex(r"[A-Za-z0-9_=-]{0,60}", fullmatch=True)] * 3,
        ),
    )
)
def test_garbage_headers_are_denied_without_errors(
    secret_authorizer: Authorizer, jwks_authorizer: Authorizer, value: str
) -> None:
    for subject in (secret_authorizer, jwks_authorizer):
        assert subject.authorize({"authorization": value}) == DENIED


def test_jwks_is_fetched_once_for_many_tokens(jwks_server: JwksServer) -> None:
    before = jwks_server.requests
    fresh = Authorizer(SETTINGS, JwksKeys(jwks_server.url))
    for _ in range(20):
        assert fresh.authorize(bearer(rs256()))["isAuthorized"] is True
        assert fresh.authorize(bearer(es256()))["isAuthorized"] is True
    assert jwks_server.requests - before == 1


def test_unreachable_jwks_is_a_server_fault_not_a_denial() -> None:
    unreachable = Authorizer(SETTINGS, JwksKeys("http://127.0.0.1:9/jwks.json"))
    with pytest.raises(KeyConfigurationError):
        unreachable.authorize(bearer(rs256()))


# Secrets Manager: formats and rotation


@pytest.mark.parametrize(
    ("secret_string", "key"),
    [
        (SECRET, SECRET.encode()),
        (json.dumps({"jwt_secret": SECRET, "note": "rotated monthly"}), SECRET.encode()),
    ],
    ids=["raw key", "JSON with jwt_secret"],
)
def test_secret_string_is_the_raw_key_or_json(secret_string: str, key: bytes) -> None:
    assert parse_secret_string(secret_string) == key


@pytest.mark.parametrize(
    "secret_string",
    ["", "{not json", json.dumps({"secret": SECRET}), json.dumps({"jwt_secret": ""})],
)
def test_unusable_secret_strings_are_configuration_errors(secret_string: str) -> None:
    with pytest.raises(KeyConfigurationError):
        parse_secret_string(secret_string)


class CountingSecretsClient:
    """Secrets Manager, recording the version stage of every read."""

    def __init__(self, client: Any):
        self.client = client
        self.reads: list[str] = []

    def get_secret_value(self, **request: Any) -> dict[str, Any]:
        self.reads.append(request.get("VersionStage", "AWSCURRENT"))
        return self.client.get_secret_value(**request)


ROTATED = "the-rotated-secret-also-32-bytes-long"
ROTATED_AGAIN = "rotated-twice-to-revoke-a-leaked-key!"


class RotatingSecret:
    """A new secret with one version (SECRET, as JSON) and a client counting its reads."""

    def __init__(self, client: Any):
        self.client = client
        self.counting = CountingSecretsClient(client)
        self.name = f"rotating-{uuid.uuid4().hex}"
        client.create_secret(Name=self.name, SecretString=json.dumps({"jwt_secret": SECRET}))

    def rotate(self, secret_string: str) -> None:
        """A new version becomes AWSCURRENT; the one before it becomes AWSPREVIOUS."""
        self.client.put_secret_value(SecretId=self.name, SecretString=secret_string)

    @property
    def reads(self) -> list[str]:
        return self.counting.reads

    def keys(self, clock: Callable[[], float] = time.monotonic) -> SecretKeys:
        return SecretKeys(self.name, lambda: self.counting, clock=clock)


@pytest.fixture
def rotating() -> Iterator[RotatingSecret]:
    with mock_aws():
        yield RotatingSecret(boto3.client("secretsmanager", region_name="us-east-1"))


def test_keys_are_reread_after_a_rotation_and_the_previous_key_keeps_working(
    rotating: RotatingSecret,
) -> None:
    clock = [1000.0]
    subject = Authorizer(SETTINGS, rotating.keys(clock=lambda: clock[0]))

    for _ in range(5):
        assert subject.authorize(bearer(hs256()))["isAuthorized"] is True
    assert rotating.reads == ["AWSCURRENT"]

    rotating.rotate(ROTATED)
    new_token = bearer(hs256(key=ROTATED))
    clock[0] += 60  # a fresh secret: a bad signature is just a bad token
    assert subject.authorize(new_token) == DENIED
    assert rotating.reads == ["AWSCURRENT", "AWSPREVIOUS"]  # AWSPREVIOUS on first need

    clock[0] += authorizer.SECRET_REFRESH_AFTER_SECONDS  # stale: a re-read finds the rotation
    assert subject.authorize(new_token)["isAuthorized"] is True
    assert rotating.reads == ["AWSCURRENT", "AWSPREVIOUS"] * 2

    # Tokens signed before the rotation still pass (the grace), bad ones do
    # not, and neither drives more reads.
    for _ in range(3):
        assert subject.authorize(bearer(hs256()))["isAuthorized"] is True
        assert subject.authorize(bearer(hs256(key="x" * 40))) == DENIED
    assert len(rotating.reads) == 4

    # A second rotation revokes the first key.
    rotating.rotate(ROTATED_AGAIN)
    clock[0] += authorizer.SECRET_REFRESH_AFTER_SECONDS
    assert subject.authorize(bearer(hs256(key=ROTATED_AGAIN)))["isAuthorized"] is True
    assert subject.authorize(bearer(hs256(key=ROTATED)))["isAuthorized"] is True
    assert subject.authorize(bearer(hs256())) == DENIED
    assert len(rotating.reads) == 6


def test_a_container_started_after_a_rotation_accepts_the_previous_key(
    rotating: RotatingSecret,
) -> None:
    rotating.rotate(ROTATED)
    subject = Authorizer(SETTINGS, rotating.keys())

    signed_before = subject.authorize(bearer(hs256(claims(customer_id="globex", sub="svc"))))
    assert signed_before == {
        "isAuthorized": True,
        "context": {"customer_id": "globex", "sub": "svc"},
    }
    assert subject.authorize(bearer(hs256(key=ROTATED)))["isAuthorized"] is True
    for _ in range(10):
        assert subject.authorize(bearer(hs256(key="y" * 40))) == DENIED
    assert rotating.reads == ["AWSCURRENT", "AWSPREVIOUS"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": A_BIT_AGO - 3600}, "expired"),
        ({"aud": "another-api"}, "wrong_audience"),
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"exp": None}, "missing_claim"),
        ({"customer_id": None}, "missing_tenant"),
        ({"customer_id": "../globex"}, "invalid_tenant"),
    ],
)
def test_the_previous_key_gets_every_other_check(
    rotating: RotatingSecret,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    reason: str,
) -> None:
    rotating.rotate(ROTATED)
    subject = Authorizer(SETTINGS, rotating.keys())
    caplog.set_level(logging.INFO, logger=authorizer.__name__)

    assert subject.authorize(bearer(hs256(claims(**changes)))) == DENIED
    assert decision_reasons(caplog) == [reason]


def test_without_a_previous_version_a_bad_signature_is_denied_after_one_look(
    rotating: RotatingSecret, caplog: pytest.LogCaptureFixture
) -> None:
    subject = Authorizer(SETTINGS, rotating.keys())
    caplog.set_level(logging.INFO, logger=authorizer.__name__)

    for _ in range(5):
        assert subject.authorize(bearer(hs256(key="z" * 40))) == DENIED
    assert subject.authorize(bearer(hs256()))["isAuthorized"] is True
    assert rotating.reads == ["AWSCURRENT", "AWSPREVIOUS"]
    assert decision_reasons(caplog) == ["bad_signature"] * 5 + ["ok"]


def test_an_unusable_previous_version_does_not_stop_the_current_key(
    rotating: RotatingSecret,
) -> None:
    rotating.rotate("{not json")
    rotating.rotate(ROTATED)
    subject = Authorizer(SETTINGS, rotating.keys())

    assert subject.authorize(bearer(hs256(key="w" * 40))) == DENIED
    assert subject.authorize(bearer(hs256(key=ROTATED)))["isAuthorized"] is True
    assert rotating.reads == ["AWSCURRENT", "AWSPREVIOUS"]


def test_binary_secret_is_a_configuration_error() -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name="binary", SecretBinary=b"\x00\x01")
        subject = Authorizer(SETTINGS, SecretKeys("binary", lambda: client))
        with pytest.raises(KeyConfigurationError):
            subject.authorize(bearer(hs256()))


# The Lambda entry point, configured from the environment


def authorizer_event(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/$default/GET/analytics/usage",
        "identitySource": list(headers.values()),
        "routeKey": "GET /analytics/usage",
        "rawPath": "/analytics/usage",
        "headers": headers,
        "requestContext": {"http": {"method": "GET", "path": "/analytics/usage"}},
    }


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(authorizer, "_authorizer", None)
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("JWT_TENANT_CLAIM", "customer_id")
    monkeypatch.setenv("CUSTOMERS_TABLE", CUSTOMERS_TABLE)
    monkeypatch.delenv("JWT_MAX_LIFETIME_SECONDS", raising=False)
    monkeypatch.delenv("JWT_SECRET_ID", raising=False)
    monkeypatch.delenv("JWT_JWKS_URL", raising=False)
    return monkeypatch


def test_handler_in_secret_mode(environment: pytest.MonkeyPatch, customers: Any) -> None:
    boto3.client("secretsmanager").create_secret(
        Name="securebase/staging/jwt", SecretString=json.dumps({"jwt_secret": SECRET})
    )
    environment.setenv("JWT_SECRET_ID", "securebase/staging/jwt")
    event = authorizer_event(bearer(hs256(claims(customer_id="globex", sub="svc"))))
    assert authorizer.handler(event, None) == {
        "isAuthorized": True,
        "context": {"customer_id": "globex", "sub": "svc"},
    }
    assert authorizer.handler(authorizer_event(bearer(rs256())), None) == DENIED
    suspended = authorizer_event(bearer(hs256(claims(customer_id="initech"))))
    assert authorizer.handler(suspended, None) == DENIED


def test_handler_in_jwks_mode(
    environment: pytest.MonkeyPatch, jwks_server: JwksServer, customers: Any
) -> None:
    environment.setenv("JWT_JWKS_URL", jwks_server.url)
    assert authorizer.handler(authorizer_event(bearer(es256())), None) == {
        "isAuthorized": True,
        "context": {"customer_id": "acme", "sub": "user-42"},
    }
    assert authorizer.handler(authorizer_event(bearer(hs256())), None) == DENIED


def test_handler_reads_the_maximum_lifetime(
    environment: pytest.MonkeyPatch, jwks_server: JwksServer, customers: Any
) -> None:
    environment.setenv("JWT_JWKS_URL", jwks_server.url)
    environment.setenv("JWT_MAX_LIFETIME_SECONDS", "600")
    now = int(time.time())  # iat given: a second may pass between the two tokens
    ten_minutes = es256(claims(iat=now, exp=now + 600))
    a_second_more = es256(claims(iat=now, exp=now + 601))
    assert authorizer.handler(authorizer_event(bearer(ten_minutes)), None)["isAuthorized"]
    assert authorizer.handler(authorizer_event(bearer(a_second_more)), None) == DENIED


@pytest.mark.parametrize("raw", ["0", "-5", "12h", "1.5"])
def test_an_invalid_maximum_lifetime_fails_loudly_naming_the_variable(
    environment: pytest.MonkeyPatch, jwks_server: JwksServer, raw: str
) -> None:
    environment.setenv("JWT_JWKS_URL", jwks_server.url)
    environment.setenv("JWT_MAX_LIFETIME_SECONDS", raw)
    with pytest.raises(RuntimeError) as raised:
        authorizer.handler(authorizer_event(bearer(es256())), None)
    assert str(raised.value) == (
        "environment variable JWT_MAX_LIFETIME_SECONDS must be a positive number of seconds;"
        f" got {raw!r}"
    )


@pytest.mark.parametrize(
    "configured", [(), ("JWT_SECRET_ID", "JWT_JWKS_URL")], ids=["neither", "both"]
)
def test_handler_needs_exactly_one_key_source(
    environment: pytest.MonkeyPatch, configured: tuple[str, ...]
) -> None:
    for name in configured:
        environment.setenv(name, "http://127.0.0.1/jwks.json")
    with pytest.raises(RuntimeError, match="exactly one of JWT_SECRET_ID and JWT_JWKS_URL"):
        authorizer.handler(authorizer_event(bearer(hs256())), None)
