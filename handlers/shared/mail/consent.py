"""Who may receive a tenant's report email, and in what state each recipient is (pure).

A tenant's own domains receive reports directly: the domain of its contact
email in the customers table, the extra domains listed there
(`email_domains`), and the stack's allow-list (config `reportRecipientDomains`).
Anyone else is `pending` until they follow the confirmation link. A
suppressed recipient (unsubscribed, bounced, complained) is skipped whatever
its domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CONFIRMED = "confirmed"
PENDING = "pending"
SUPPRESSED = "suppressed"
RECIPIENT_STATES = (CONFIRMED, PENDING, SUPPRESSED)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def own_domains(customer: Mapping[str, Any] | None, allowed: Iterable[str]) -> frozenset[str]:
    """The domains a tenant's reports may go to without confirmation."""
    domains = {domain.lower() for domain in allowed if domain}
    if customer:
        contact = customer.get("contact_email")
        if isinstance(contact, str) and "@" in contact:
            domains.add(domain_of(contact))
        extra = customer.get("email_domains") or ()
        if isinstance(extra, str):
            extra = extra.split(",")
        domains.update(str(domain).strip().lower() for domain in extra if str(domain).strip())
    return frozenset(domains)


def recipient_state(address: str, domains: frozenset[str], record: Mapping[str, Any] | None) -> str:
    """`record`: the tenant's stored consent for the address, if any."""
    stored = (record or {}).get("state")
    if stored == SUPPRESSED:
        return SUPPRESSED
    if stored == CONFIRMED or domain_of(address) in domains:
        return CONFIRMED
    return PENDING
