"""The whole program, for both stacks, through the whole pack, as the engine runs it.

Every resource goes through Analyze (its inputs) and the stack through
AnalyzeStack (every resource's outputs), with the stack's own policy config.
"""

from __future__ import annotations

from typing import Any

import pytest

from policy_check.engine import Diagnostic, analyze_deployment, stack_config_file
from tests.pulumi_program import (
    RUNBOOK_SECRETS,
    STACKS,
    Deployment,
    committed_deployment,
    run_program,
)
from tests.pulumi_program import Resource as Recorded
from tests.test_policies_harness import UNKNOWN


@pytest.fixture(scope="module", params=STACKS)
def deployment(request) -> Deployment:
    return committed_deployment(request.param)


@pytest.fixture(scope="module")
def diagnostics(deployment) -> list[Diagnostic]:
    return analyze_deployment(deployment, stack_config_file(deployment.stack))


def _report(found: list[Diagnostic]) -> str:
    return "\n".join(f"[{d.level}] {d.policy}: {d.detail}" for d in found)


def test_the_stack_passes_its_own_pack(diagnostics):
    mandatory = [d for d in diagnostics if d.level == "mandatory"]
    assert mandatory == [], "mandatory policy violations:\n" + _report(mandatory)


def test_the_stack_is_configured_as_the_runbook_says_with_the_paging_webhook(deployment):
    # The runbook's "Setting secrets" step (RUNBOOK_SECRETS): every resource of the
    # webhook's subscription and dead-letter queue went through the pack above.
    webhook = deployment.one(
        "aws:sns/topicSubscription:TopicSubscription", lambda r: r.inputs["protocol"] == "https"
    )
    assert (
        webhook.inputs["endpoint"]["value"]
        == (RUNBOOK_SECRETS[deployment.stack]["securebase-analytics:alertWebhookUrl"])
    )
    assert webhook.inputs["redrivePolicy"]


def test_staging_without_the_optional_webhook_passes_its_own_pack():
    # The other configuration the runbook allows; production refuses to deploy without one.
    deployment = run_program("staging", {"alertWebhookUrl": None})
    found = analyze_deployment(deployment, stack_config_file("staging"))
    assert [d for d in found if d.level == "mandatory"] == []
    assert [d for d in found if "can't run policy" in d.message] == []


def test_every_policy_runs_to_completion(diagnostics):
    # An UnknownValueError escaping a rule shows up as "can't run policy".
    assert [d for d in diagnostics if "can't run policy" in d.message] == []


def test_every_violation_names_the_resource_what_is_wrong_and_the_fix(deployment, diagnostics):
    urns = {resource.urn: resource for resource in deployment.resources}
    for diagnostic in diagnostics:
        resource = urns[diagnostic.urn]
        detail = diagnostic.detail
        assert detail.startswith(f"{resource.type} '{resource.name}': "), detail
        assert ". Fix: " in detail, detail


def _computed_values(deployment: Deployment) -> dict[str, str]:
    """Output values the provider computes (ARNs, URLs, key ids) -> the URN that owns them."""
    values = {}
    for resource in deployment.resources:
        for key, value in resource.outputs.items():
            if key not in resource.inputs and isinstance(value, str) and len(value) > 8:
                values[value] = resource.urn
    return values


def _unknown_where_computed(value: Any, computed: dict[str, str], owner: str) -> Any:
    if isinstance(value, str):
        others = (v for v, urn in computed.items() if urn != owner)
        return UNKNOWN if any(v in value for v in others) else value
    if isinstance(value, list):
        return [_unknown_where_computed(item, computed, owner) for item in value]
    if isinstance(value, dict):
        return {k: _unknown_where_computed(v, computed, owner) for k, v in value.items()}
    return value


def test_a_first_preview_reports_no_more_than_the_update(deployment, diagnostics):
    """Before anything exists, every ARN, URL and key id is unknown: rules hold back."""
    computed = _computed_values(deployment)

    def preview_inputs(resource: Recorded) -> dict[str, Any]:
        return _unknown_where_computed(resource.inputs, computed, resource.urn)

    def preview_outputs(resource: Recorded) -> dict[str, Any]:
        planned = preview_inputs(resource)
        return {**planned, **{key: UNKNOWN for key in resource.outputs if key not in planned}}

    preview = analyze_deployment(
        deployment,
        stack_config_file(deployment.stack),
        stack_props=preview_outputs,
        inputs=preview_inputs,
    )
    assert [d for d in preview if "can't run policy" in d.message] == []
    known = {(d.policy, d.urn) for d in diagnostics}
    assert [d for d in preview if (d.policy, d.urn) not in known] == []


def test_secret_config_reaches_the_pack_and_never_its_messages():
    webhook = "https://events.pagerduty.com/integration/0123456789abcdef/enqueue"
    deployment = run_program("production", {"alertWebhookUrl": webhook})
    found = analyze_deployment(deployment, stack_config_file("production"))
    subscription = deployment.one(
        "aws:sns/topicSubscription:TopicSubscription", lambda r: r.inputs["protocol"] == "https"
    )
    # Sent as a secret: pulumi_policy unwraps it before the rules see it.
    assert subscription.inputs["endpoint"]["value"] == webhook
    assert [d for d in found if "can't run policy" in d.message] == []
    assert [d.message for d in found if webhook in d.message] == []
