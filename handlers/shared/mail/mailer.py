"""Sending one email to one recipient for one tenant: quota, unsubscribe link, SES.

Every email is sent with SES `SendRawEmail`, because only raw content may
carry custom headers (SES header fields:
https://docs.aws.amazon.com/ses/latest/dg/header-fields.html lists
List-Unsubscribe and List-Unsubscribe-Post among the headers SES accepts).
Each email carries RFC 8058 one-click unsubscribe
(https://www.rfc-editor.org/rfc/rfc8058: an HTTPS URI in `List-Unsubscribe`
and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`; the receiver POSTs
that body to the URI, which must then unsubscribe without further
interaction): `List-Unsubscribe:
<https://.../email/unsubscribe?token=...>` and `List-Unsubscribe-Post:
List-Unsubscribe=One-Click`, in that order, as AWS's guide describes
(https://aws.amazon.com/blogs/messaging-and-targeting/using-one-click-unsubscribe-with-amazon-ses/).

Every send names the stack's configuration set
(https://docs.aws.amazon.com/ses/latest/dg/using-configuration-sets.html),
whose event destination publishes bounces and complaints to SNS, and tags
the message with the tenant (SES publishes a configuration set's message
tags in every event, `mail.tags`:
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html)
so the feedback function knows whose recipient to suppress. Tag values may
hold only ASCII letters, digits, `_` and `-`
(https://docs.aws.amazon.com/ses/latest/APIReference/API_MessageTag.html);
tenant ids may hold `.`, so the tag carries the tenant id hex-encoded.

Each email first reserves one of the tenant's emails for the UTC day
(handlers.shared.mail.recipients); a refused send gives it back.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from handlers.shared.mail.links import (
    CONFIRM,
    CONFIRMATION_LIFETIME,
    UNSUBSCRIBE,
    UNSUBSCRIBE_LIFETIME,
    LinkSigner,
)
from handlers.shared.mail.recipients import RecipientStore

TENANT_TAG = "customer_hex"
KIND_TAG = "kind"
# Names the kind of email (`confirm`, `report`) for recipients' filters and the local stack.
KIND_HEADER = "X-SecureBase-Email"
CONFIRMATION = "confirm"
REPORT = "report"


class QuotaExceeded(Exception):
    """The tenant has sent its emails for the UTC day."""


class EmailFailed(Exception):
    """SES refused or failed to send to one recipient."""


def tenant_tag(tenant: str) -> str:
    return tenant.encode("utf-8").hex()


def tenant_of_tags(tags: Mapping[str, Any]) -> str | None:
    """The tenant an SES event's `mail.tags` name (values are lists of strings)."""
    values = tags.get(TENANT_TAG) or []
    value = values[0] if isinstance(values, list) and values else values
    try:
        return bytes.fromhex(str(value)).decode("utf-8") or None
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Content:
    subject: str
    text: str
    markup: str


def raw_message(
    sender: str, recipient: str, content: Content, unsubscribe_url: str, kind: str
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = content.subject
    message[KIND_HEADER] = kind
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(content.text + f"\nStop these emails: {unsubscribe_url}\n")
    message.add_alternative(
        content.markup + f'<p><a href="{html.escape(unsubscribe_url)}">Stop these emails</a></p>',
        subtype="html",
    )
    return message.as_bytes()


class Mailer:
    def __init__(
        self,
        ses: Any,
        sender: str,
        configuration_set: str,
        signer: LinkSigner,
        store: RecipientStore,
        links_base_url: str,
        emails_per_day: int,
        clock: Callable[[], dt.datetime],
    ):
        self.ses = ses
        self.sender = sender
        self.configuration_set = configuration_set
        self.signer = signer
        self.store = store
        self.links_base_url = links_base_url
        self.emails_per_day = emails_per_day
        self.clock = clock

    def send(self, tenant: str, recipient: str, content: Content, kind: str) -> None:
        """Raises QuotaExceeded (nothing sent) or EmailFailed."""
        now = self.clock()
        if not self.store.reserve_email(tenant, now, self.emails_per_day):
            raise QuotaExceeded(
                f"tenant {tenant} has sent its {self.emails_per_day} emails for"
                f" {now.date().isoformat()} (UTC)"
            )
        unsubscribe_url, _ = self.signer.link(
            self.links_base_url, UNSUBSCRIBE, tenant, recipient, now + UNSUBSCRIBE_LIFETIME
        )
        try:
            self.ses.send_raw_email(
                Source=self.sender,
                Destinations=[recipient],
                RawMessage={
                    "Data": raw_message(self.sender, recipient, content, unsubscribe_url, kind)
                },
                ConfigurationSetName=self.configuration_set,
                Tags=[
                    {"Name": TENANT_TAG, "Value": tenant_tag(tenant)},
                    {"Name": KIND_TAG, "Value": kind},
                ],
            )
        except Exception as error:
            self.store.release_email(tenant, now)
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            raise EmailFailed(
                f"sending the email to {recipient} failed: {code or type(error).__name__}"
            ) from error

    def invite(self, tenant: str, recipient: str, tenant_name: str) -> bool:
        """Sends the one confirmation email an outside address gets; False when it is
        already known (confirmed, suppressed, or holding a live link). Raises
        QuotaExceeded or EmailFailed, having forgotten the request so it is asked again."""
        now = self.clock()
        expires = now + CONFIRMATION_LIFETIME
        url, claims = self.signer.link(self.links_base_url, CONFIRM, tenant, recipient, expires)
        if not self.store.request_confirmation(tenant, recipient, claims.nonce, expires, now):
            return False
        try:
            self.send(
                tenant, recipient, confirmation_content(tenant_name, url, expires), CONFIRMATION
            )
        except (QuotaExceeded, EmailFailed):
            self.store.withdraw_confirmation(tenant, recipient, claims.nonce)
            raise
        return True


def confirmation_content(tenant_name: str, url: str, expires: dt.datetime) -> Content:
    until = expires.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    subject = f"Confirm SecureBase analytics reports from {tenant_name}"
    text = (
        f"{tenant_name} asked SecureBase to email you scheduled analytics reports.\n\n"
        f"You will receive them only if you confirm (the link works once, until {until}):\n"
        f"{url}\n\n"
        "If you did not expect this, ignore this email: you will not be asked again.\n"
    )
    markup = (
        f"<p>{html.escape(tenant_name)} asked SecureBase to email you scheduled analytics"
        " reports.</p>"
        f'<p>You will receive them only if you <a href="{html.escape(url)}">confirm</a>'
        f" (the link works once, until {html.escape(until)}).</p>"
        "<p>If you did not expect this, ignore this email: you will not be asked again.</p>"
    )
    return Content(subject, text, markup)
