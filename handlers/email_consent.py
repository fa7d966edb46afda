"""Email consent: the signed-link routes and SES's bounce and complaint events.

Two triggers, nothing else (its role may only read and write the
report-emails table and verify link MACs):

- HTTP, without the authorizer (routes served with authorization NONE; each
  verifies its link's signature itself, handlers.shared.mail.links):
  `GET /email/confirm` and `GET /email/unsubscribe` show a page with one
  button, which POSTs to the same URL; `POST /email/confirm` confirms a
  pending recipient (once, while the link is live); `POST
  /email/unsubscribe` suppresses the recipient for that tenant. The POST is
  also RFC 8058's one-click request (body `List-Unsubscribe=One-Click`),
  which mail clients send to the `List-Unsubscribe` URL
  (https://www.rfc-editor.org/rfc/rfc8058, section 3.1); the body is not
  needed: the signed token alone says who to unsubscribe. A GET changes
  nothing, so mail scanners that fetch links cannot confirm or unsubscribe
  anyone.
- SNS: the configuration set's event destination publishes bounces and
  complaints; a permanent bounce or any complaint suppresses the recipient
  for the tenant the message's tag names. Transient bounces (a full mailbox,
  a busy server) are left to SES's own retries. The event's shape (`eventType`
  Bounce / Complaint, `bounce.bounceType`, `bounce.bouncedRecipients[].emailAddress`,
  `complaint.complainedRecipients[].emailAddress`, `mail.tags` as lists of
  strings):
  https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html,
  examples: https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import boto3

from handlers.shared import env, telemetry
from handlers.shared.http import ApiError, Request, Route, handle
from handlers.shared.mail.links import (
    CONFIRM,
    UNSUBSCRIBE,
    ExpiredLink,
    InvalidLink,
    LinkClaims,
    LinkSigner,
    MalformedLink,
)
from handlers.shared.mail.mailer import tenant_of_tags
from handlers.shared.mail.recipients import RecipientStore
from handlers.shared.reports.times import utc_now

logger = logging.getLogger(__name__)

BOUNCE = "bounce"
COMPLAINT = "complaint"
UNSUBSCRIBED = "unsubscribe"
# The page is ours alone: no scripts, no third-party anything, forms only to
# this API, and no Referer carrying the token elsewhere.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
}

telemetry.configure_logging()


def page(status: int, title: str, paragraphs: Iterable[str], form: str = "") -> dict[str, Any]:
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    return {
        "statusCode": status,
        "headers": dict(PAGE_HEADERS),
        "body": (
            '<!doctype html><html lang="en"><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{body}{form}</html>"
        ),
    }


class EmailConsent:
    def __init__(
        self,
        store: RecipientStore,
        signer: LinkSigner,
        clock: Callable[[], dt.datetime] = utc_now,
    ):
        self.store = store
        self.signer = signer
        self.clock = clock

    @classmethod
    def from_environment(
        cls, dynamodb: Any, kms: Any, clock: Callable[[], dt.datetime] = utc_now
    ) -> EmailConsent:
        return cls(
            RecipientStore(dynamodb, env.require(env.REPORT_EMAILS_TABLE)),
            LinkSigner(kms, env.require(env.EMAIL_LINK_KEY_ID)),
            clock,
        )

    @property
    def routes(self) -> dict[str, Route]:
        return {
            "GET /email/confirm": self.confirm_page,
            "POST /email/confirm": self.confirm,
            "GET /email/unsubscribe": self.unsubscribe_page,
            "POST /email/unsubscribe": self.unsubscribe,
        }

    def _claims(self, request: Request, purpose: str) -> LinkClaims:
        try:
            return self.signer.verify(request.query.get("token", ""), purpose, self.clock())
        except MalformedLink:
            raise ApiError(400, "malformed_link", "the link is not a link's token") from None
        except InvalidLink:
            # Well-formed but not genuine: the request is valid, the link grants nothing.
            raise ApiError(403, "invalid_link", "the link is not valid") from None
        except ExpiredLink:
            raise ApiError(410, "link_expired", "the link has expired") from None

    @staticmethod
    def _button(request: Request, label: str, one_click: bool) -> str:
        action = html.escape(f"{request.path}?token={request.query.get('token', '')}")
        hidden = (
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">' if one_click else ""
        )
        return (
            f'<form method="post" action="{action}">{hidden}'
            f'<button type="submit">{html.escape(label)}</button></form>'
        )

    def confirm_page(self, request: Request) -> dict[str, Any]:
        claims = self._claims(request, CONFIRM)
        return page(
            200,
            "Confirm SecureBase reports",
            [
                f"Confirm that {claims.address} wants scheduled analytics reports from {claims.tenant}."
            ],
            self._button(request, "Confirm", one_click=False),
        )

    def confirm(self, request: Request) -> dict[str, Any]:
        claims = self._claims(request, CONFIRM)
        if not self.store.confirm(claims.tenant, claims.address, claims.nonce, self.clock()):
            raise ApiError(410, "link_used", "the link was already used or is no longer valid")
        logger.info("recipient confirmed", extra={"customer_id": claims.tenant})
        return page(
            200,
            "Confirmed",
            [f"{claims.address} will receive the reports {claims.tenant} schedules for it."],
        )

    def unsubscribe_page(self, request: Request) -> dict[str, Any]:
        claims = self._claims(request, UNSUBSCRIBE)
        return page(
            200,
            "Stop SecureBase emails",
            [f"Stop all SecureBase report emails from {claims.tenant} to {claims.address}."],
            self._button(request, "Unsubscribe", one_click=True),
        )

    def unsubscribe(self, request: Request) -> dict[str, Any]:
        claims = self._claims(request, UNSUBSCRIBE)
        self.store.suppress(claims.tenant, claims.address, UNSUBSCRIBED, self.clock())
        logger.info("recipient unsubscribed", extra={"customer_id": claims.tenant})
        return page(
            200,
            "Unsubscribed",
            [f"{claims.address} will receive no more emails from {claims.tenant}."],
        )

    # SES feedback

    def feedback(self, records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Suppresses the recipients of bounce and complaint events; counts them."""
        suppressed = 0
        for record in records:
            try:
                event = json.loads(str((record.get("Sns") or {}).get("Message") or ""))
            except ValueError:
                logger.error("dropping an SNS message that is not JSON")
                continue
            for tenant, address, reason in suppressions(event):
                self.store.suppress(tenant, address, reason, self.clock())
                logger.info("recipient suppressed", extra={"customer_id": tenant, "reason": reason})
                suppressed += 1
        return {"suppressed": suppressed}


def suppressions(event: Any) -> list[tuple[str, str, str]]:
    """(tenant, address, reason) for each recipient an SES event says to stop mailing."""
    if not isinstance(event, Mapping):
        return []
    tenant = tenant_of_tags((event.get("mail") or {}).get("tags") or {})
    kind = event.get("eventType")
    if tenant is None:
        logger.warning("an SES event without a tenant tag", extra={"event_type": kind})
        return []
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return []
        found, reason = bounce.get("bouncedRecipients"), BOUNCE
    elif kind == "Complaint":
        found, reason = (event.get("complaint") or {}).get("complainedRecipients"), COMPLAINT
    else:
        return []
    return [
        (tenant, str(recipient["emailAddress"]), reason)
        for recipient in found or []
        if isinstance(recipient, Mapping) and recipient.get("emailAddress")
    ]


def _is_sns_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and all(
        isinstance(record, Mapping) and record.get("EventSource") == "aws:sns" for record in records
    )


def _client_config() -> Any:
    """A link click waits for at most a few seconds; standard retries."""
    from botocore.config import Config

    return Config(
        connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}
    )


_consent: EmailConsent | None = None


def _email_consent() -> EmailConsent:
    """One set of clients per container, created on first use (not at import)."""
    global _consent
    if _consent is None:
        _consent = EmailConsent.from_environment(
            boto3.client("dynamodb", config=_client_config()),
            boto3.client("kms", config=_client_config()),
            clock=utc_now,
        )
    return _consent


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    consent = _email_consent()
    if _is_sns_event(event):
        return consent.feedback(event["Records"])
    return handle(event, consent.routes)
