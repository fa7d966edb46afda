"""Tags: every taggable resource carries the cost and ownership tags.

The stack tags resources through the AWS provider's `defaultTags`, so a
resource's effective tags are the provider's default tags overlaid with its own.
The engine sends provider properties with nested values JSON-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, ResourceRule, Setting

# Types whose pulumi-aws resource takes `tags` (tests/test_policies_tags_stack.py
# checks this list against the installed provider).
TAGGABLE_TYPES = frozenset(
    {
        "aws:s3/bucket:Bucket",
        "aws:dynamodb/table:Table",
        "aws:kms/key:Key",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:lambda/function:Function",
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        "aws:apigatewayv2/api:Api",
        "aws:apigatewayv2/stage:Stage",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:cloudwatch/compositeAlarm:CompositeAlarm",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:scheduler/scheduleGroup:ScheduleGroup",
    }
)


def _default_tags(provider: Mapping[str, Any] | None) -> Any:
    """The provider's defaultTags.tags; the engine may send the block as a JSON string."""
    if provider is None:
        return {}
    block = provider.get("defaultTags")
    if block is UNKNOWN:
        return UNKNOWN
    if isinstance(block, str):
        try:
            block = json.loads(block)
        except json.JSONDecodeError:
            return {}
    tags = block.get("tags") if isinstance(block, Mapping) else None
    if tags is UNKNOWN:
        return UNKNOWN
    return dict(tags) if isinstance(tags, Mapping) else {}


def _required_tags(resource: Resource, config: Config) -> Iterator[Finding]:
    defaults, own = _default_tags(resource.provider_props), resource.get("tags")
    if UNKNOWN in (defaults, own):
        return
    tags = {**defaults, **(own or {})}
    missing = [t for t in config.strings("requiredTags") if tags.get(t) in (None, "")]
    if missing:
        yield Finding(
            resource,
            f"it lacks the tags {missing} (neither its provider's defaultTags nor its own tags set them)",
            "create it with the stack's AWS provider, whose defaultTags carry Project, "
            "Environment, Owner and CostCenter",
        )
    for tag, expected in config.mapping("expectedTagValues").items():
        value = tags.get(tag)
        if value not in (None, "", UNKNOWN) and value != expected:
            yield Finding(
                resource,
                f"its {tag} tag is {value!r}, not {expected!r}",
                f"tag it {tag}={expected} (check the stack and the policy config match)",
            )


POLICIES = [
    ResourceRule(
        name="required-tags",
        description="Every taggable resource carries Project, Environment, Owner and "
        "CostCenter (own tags or the provider's default tags).",
        remediation="Create resources with the stack's AWS provider, whose defaultTags set the "
        "required tags; tag the environment the policy config names.",
        severity=Severity.LOW,
        resource_types=TAGGABLE_TYPES,
        check=_required_tags,
        settings=[
            Setting(
                "requiredTags",
                "Tags every taggable resource must carry with a non-empty value.",
                {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                ["Project", "Environment", "Owner", "CostCenter"],
            ),
            Setting(
                "expectedTagValues",
                "Tags whose value is fixed for the stack the config belongs to.",
                {"type": "object", "additionalProperties": {"type": "string"}},
                {"Project": "securebase-analytics", "Environment": "production"},
            ),
        ],
    )
]
