"""Signed links in emails: confirm a recipient, or unsubscribe one (one-click).

A link carries `token=<payload>.<mac>`: the payload is base64url JSON naming
the purpose, tenant, address, a nonce and an expiry; the MAC is HMAC-SHA-256
over the payload by a KMS HMAC key (GenerateMac/VerifyMac: the key material
never leaves KMS, so no function holds a secret). A token is good for one
purpose only, so a confirmation link never unsubscribes and the other way
round; changing any byte (another tenant, another address) breaks the MAC.
Single use is the store's business (handlers.shared.mail.recipients): a
confirmation succeeds only while the recipient is pending with that nonce.
https://docs.aws.amazon.com/kms/latest/developerguide/hmac.html
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"
PURPOSES = (CONFIRM, UNSUBSCRIBE)
CONFIRMATION_LIFETIME = dt.timedelta(days=7)
# Unsubscribe links must keep working as long as anyone may still read the
# email (reports are kept 90 days; a year leaves a margin).
UNSUBSCRIBE_LIFETIME = dt.timedelta(days=365)
MAC_ALGORITHM = "HMAC_SHA_256"
# Far longer than any token we sign; anything longer is refused before KMS sees it.
MAX_TOKEN_LENGTH = 1024
# What a token looks like (handlers/openapi.yaml's linkToken says the same).
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class LinkClaims:
    purpose: str
    tenant: str
    address: str
    nonce: str
    expires: int  # epoch seconds


class InvalidLink(Exception):
    """Not genuine: forged, altered, truncated or for another purpose."""


class MalformedLink(InvalidLink):
    """Not even shaped like a link's token (payload.mac, base64url): the request's fault."""


class ExpiredLink(Exception):
    """Genuine, but past its expiry."""


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, kms: Any, key_id: str):
        self.kms = kms
        self.key_id = key_id

    def sign(self, claims: LinkClaims) -> str:
        payload = _b64encode(
            json.dumps(
                {
                    "p": claims.purpose,
                    "t": claims.tenant,
                    "a": claims.address,
                    "n": claims.nonce,
                    "e": claims.expires,
                },
                separators=(",", ":"),
            ).encode()
        )
        mac = self.kms.generate_mac(
            KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Message=payload.encode("ascii")
        )["Mac"]
        return f"{payload}.{_b64encode(mac)}"

    def link(
        self, base_url: str, purpose: str, tenant: str, address: str, expires: dt.datetime
    ) -> tuple[str, LinkClaims]:
        """The link's URL and what it claims (its nonce is new)."""
        claims = LinkClaims(purpose, tenant, address, new_nonce(), int(expires.timestamp()))
        return f"{base_url.rstrip('/')}/email/{purpose}?token={self.sign(claims)}", claims

    def verify(self, token: str, purpose: str, now: dt.datetime) -> LinkClaims:
        """The claims of a genuine, unexpired token for `purpose`; raises InvalidLink or
        ExpiredLink."""
        if len(token) > MAX_TOKEN_LENGTH or not TOKEN_SHAPE.fullmatch(token):
            raise MalformedLink
        payload, mac_text = token.split(".")
        try:
            mac = _b64decode(mac_text)
            fields = json.loads(_b64decode(payload))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidLink from None
        try:
            valid = self.kms.verify_mac(
                KeyId=self.key_id,
                MacAlgorithm=MAC_ALGORITHM,
                Message=payload.encode("ascii"),
                Mac=mac,
            )["MacValid"]
        except self.kms.exceptions.KMSInvalidMacException:
            valid = False
        if not valid or not isinstance(fields, dict):
            raise InvalidLink
        try:
            claims = LinkClaims(
                str(fields["p"]),
                str(fields["t"]),
                str(fields["a"]),
                str(fields["n"]),
                int(fields["e"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidLink from None
        if claims.purpose != purpose:
            raise InvalidLink
        if claims.expires <= now.timestamp():
            raise ExpiredLink
        return claims
