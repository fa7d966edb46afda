"""SES: report email leaves over TLS, and every configuration set reports bounces and complaints.

A configuration set without a bounce and complaint destination sends mail
nobody hears back about: addresses that bounce or complain keep getting
mail until SES suspends the account
(https://docs.aws.amazon.com/ses/latest/dg/event-publishing-add-event-destination-sns.html).
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Stack, StackRule, known

CONFIGURATION_SET = "aws:ses/configurationSet:ConfigurationSet"
EVENT_DESTINATION = "aws:ses/eventDestination:EventDestination"
FEEDBACK_EVENTS = frozenset({"bounce", "complaint"})


def _tls_and_reputation(configuration_set: Resource, config: Config) -> Iterator[Finding]:
    options = configuration_set.get("deliveryOptions")
    tls = options.get("tlsPolicy") if isinstance(options, dict) else options
    if known(tls) and tls != "Require":
        yield Finding(
            configuration_set,
            "mail may be handed to receiving servers without TLS",
            "set deliveryOptions.tlsPolicy to 'Require'",
        )
    reputation = configuration_set.get("reputationMetricsEnabled")
    if known(reputation) and reputation is not True:
        yield Finding(
            configuration_set,
            "its bounce and complaint rates are not published to CloudWatch",
            "set reputationMetricsEnabled True",
        )


def _feedback_destination(stack: Stack, config: Config) -> Iterator[Finding]:
    destinations = stack.of_type(EVENT_DESTINATION)
    for configuration_set in stack.of_type(CONFIGURATION_SET):
        name = configuration_set.get("name")
        if name is UNKNOWN:
            continue
        covered: set[str] = set()
        for destination in destinations:
            if destination.get("configurationSetName") not in (name, UNKNOWN):
                continue
            if destination.get("enabled") is False:
                continue
            sns = destination.get("snsDestination")
            if not sns:
                continue
            types = destination.get("matchingTypes")
            if types is UNKNOWN:
                covered |= FEEDBACK_EVENTS
            else:
                covered |= {str(t).lower() for t in types or []}
        missing = sorted(FEEDBACK_EVENTS - covered)
        if missing:
            yield Finding(
                configuration_set,
                f"no enabled SNS event destination receives its {' and '.join(missing)} events:"
                " recipients that bounce or complain keep getting mail",
                "add an aws.ses.EventDestination with matchingTypes ['bounce', 'complaint'] and "
                "an snsDestination whose subscriber suppresses the recipient",
            )


POLICIES = [
    ResourceRule(
        name="ses-configuration-set-tls-and-reputation",
        description="Configuration sets require TLS and publish reputation metrics.",
        remediation="Set deliveryOptions.tlsPolicy 'Require' and reputationMetricsEnabled True.",
        severity=Severity.MEDIUM,
        resource_types=[CONFIGURATION_SET],
        check=_tls_and_reputation,
    ),
    StackRule(
        name="ses-bounces-and-complaints-handled",
        description="Every configuration set sends bounce and complaint events to SNS.",
        remediation="Add an enabled aws.ses.EventDestination for bounce and complaint to an SNS topic.",
        severity=Severity.HIGH,
        check=_feedback_destination,
    ),
]
