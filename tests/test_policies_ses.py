"""SES rules: TLS and reputation metrics on configuration sets; bounces and complaints handled."""

from policies.rules import ALL_POLICIES
from tests.test_policies_harness import UNKNOWN, Spec, check_resource, check_stack

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
CONFIGURATION_SET = "aws:ses/configurationSet:ConfigurationSet"
EVENT_DESTINATION = "aws:ses/eventDestination:EventDestination"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:feedback"


def configuration_set(**overrides) -> dict:
    return {
        "name": "report-email",
        "deliveryOptions": {"tlsPolicy": "Require"},
        "reputationMetricsEnabled": True,
        **overrides,
    }


def destination(**overrides) -> dict:
    return {
        "name": "feedback",
        "configurationSetName": "report-email",
        "enabled": True,
        "matchingTypes": ["bounce", "complaint"],
        "snsDestination": {"topicArn": TOPIC_ARN},
        **overrides,
    }


def test_configuration_sets_require_tls_and_publish_reputation_metrics():
    rule = POLICIES["ses-configuration-set-tls-and-reputation"]
    assert check_resource(rule, CONFIGURATION_SET, configuration_set()) == []
    assert check_resource(rule, CONFIGURATION_SET, configuration_set(deliveryOptions=UNKNOWN)) == []
    [tls] = check_resource(rule, CONFIGURATION_SET, configuration_set(deliveryOptions=None))
    assert "without TLS" in tls and "tlsPolicy to 'Require'" in tls
    [optional] = check_resource(
        rule, CONFIGURATION_SET, configuration_set(deliveryOptions={"tlsPolicy": "Optional"})
    )
    assert "without TLS" in optional
    [reputation] = check_resource(
        rule, CONFIGURATION_SET, configuration_set(reputationMetricsEnabled=False)
    )
    assert "reputationMetricsEnabled True" in reputation


def test_every_configuration_set_sends_bounces_and_complaints_to_sns():
    rule = POLICIES["ses-bounces-and-complaints-handled"]
    handled = [
        Spec(CONFIGURATION_SET, "set", configuration_set()),
        Spec(EVENT_DESTINATION, "dest", destination()),
    ]
    assert check_stack(rule, handled) == []
    split = [
        Spec(CONFIGURATION_SET, "set", configuration_set()),
        Spec(EVENT_DESTINATION, "bounces", destination(matchingTypes=["bounce"])),
        Spec(EVENT_DESTINATION, "complaints", destination(matchingTypes=["Complaint"])),
    ]
    assert check_stack(rule, split) == []

    for broken, missing in (
        ([], "bounce and complaint"),
        ([Spec(EVENT_DESTINATION, "d", destination(matchingTypes=["bounce"]))], "complaint"),
        ([Spec(EVENT_DESTINATION, "d", destination(enabled=False))], "bounce and complaint"),
        ([Spec(EVENT_DESTINATION, "d", destination(snsDestination=None))], "bounce and complaint"),
        (
            [Spec(EVENT_DESTINATION, "d", destination(configurationSetName="other"))],
            "bounce and complaint",
        ),
    ):
        [(name, message)] = check_stack(
            rule, [Spec(CONFIGURATION_SET, "set", configuration_set()), *broken]
        )
        assert name == "set"
        assert f"receives its {missing} events" in message
