"""Tags (through the provider's default tags) and the whole-stack rules."""

from __future__ import annotations

import importlib
import inspect
import json

import pytest

from policies.rules import ALL_POLICIES
from policies.rules.stack import REVIEWED_TYPES
from policies.rules.tags import TAGGABLE_TYPES
from tests.test_policies_harness import TAGGED_PROVIDER, UNKNOWN, Spec, check_resource, check_stack

POLICIES = {policy.name: policy for policy in ALL_POLICIES}
FUNCTION = "aws:lambda/function:Function"
NAME = "securebase-production-analytics-query"


def tags(props: dict, provider: dict | None = TAGGED_PROVIDER, **kwargs) -> list[str]:
    return check_resource(POLICIES["required-tags"], FUNCTION, props, provider=provider, **kwargs)


def test_the_providers_default_tags_tag_every_resource():
    assert tags({"name": NAME}) == []


def test_without_default_tags_the_resource_must_tag_itself():
    untagged_provider = {"region": "us-east-1"}
    [message] = tags({"name": NAME}, provider=untagged_provider)
    assert message == (
        "aws:lambda/function:Function 'subject': it lacks the tags ['Project', 'Environment', "
        "'Owner', 'CostCenter'] (neither its provider's defaultTags nor its own tags set them). "
        "Fix: create it with the stack's AWS provider, whose defaultTags carry Project, "
        "Environment, Owner and CostCenter"
    )
    own = {
        "Project": "securebase-analytics",
        "Environment": "production",
        "Owner": "o",
        "CostCenter": "c",
    }
    assert tags({"name": NAME, "tags": own}, provider=untagged_provider) == []


def test_own_tags_override_default_tags_and_must_keep_the_expected_values():
    [message] = tags({"name": NAME, "tags": {"Environment": "staging"}})
    assert "its Environment tag is 'staging', not 'production'" in message
    config = {"expectedTagValues": {"Environment": "staging"}}
    [message] = tags({"name": NAME}, config=config)
    assert "its Environment tag is 'production', not 'staging'" in message


def test_an_empty_tag_value_is_missing():
    [message] = tags({"name": NAME, "tags": {"Owner": ""}})
    assert "it lacks the tags ['Owner']" in message


def test_default_tags_sent_as_an_object_count_too():
    provider = {"defaultTags": json.loads(TAGGED_PROVIDER["defaultTags"])}
    assert tags({"name": NAME}, provider=provider) == []


def test_tags_unknown_during_preview_are_not_judged():
    assert tags({"name": NAME, "tags": UNKNOWN}) == []
    assert tags({"name": NAME}, provider={"defaultTags": UNKNOWN}) == []


def test_untaggable_types_are_not_checked():
    check = POLICIES["required-tags"]
    assert check_resource(check, "aws:lambda/permission:Permission", {}, provider=None) == []


def _resource_class(resource_type: str):
    module, name = resource_type.split(":")[1].split("/")[0], resource_type.rsplit(":", 1)[1]
    package = importlib.import_module(f"pulumi_aws.{'lambda_' if module == 'lambda' else module}")
    return getattr(package, name)


def _takes_tags(resource_type: str) -> bool:
    return "tags" in inspect.signature(_resource_class(resource_type)._internal_init).parameters


@pytest.mark.parametrize("resource_type", sorted(t for t in REVIEWED_TYPES if t.startswith("aws:")))
def test_the_taggable_types_are_exactly_those_the_provider_tags(resource_type):
    assert (resource_type in TAGGABLE_TYPES) == _takes_tags(resource_type)


# --- stack rules ---------------------------------------------------------------------------


def function(name: str = NAME, **overrides) -> Spec:
    return Spec(FUNCTION, "query", {"name": name, "timeout": 10, **overrides})


def log_group(name: str = f"/aws/lambda/{NAME}", retention: object = 30) -> Spec:
    return Spec(
        "aws:cloudwatch/logGroup:LogGroup",
        "query-logs",
        {"name": name, "retentionInDays": retention},
    )


def errors_alarm(function_name: object = NAME) -> Spec:
    return Spec(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "query-errors",
        {
            "namespace": "AWS/Lambda",
            "metricName": "Errors",
            "dimensions": {"FunctionName": function_name},
        },
    )


def observability(specs: list[Spec]) -> list[tuple[str, str]]:
    return check_stack(POLICIES["lambda-function-observability"], specs)


def test_an_observable_function_passes():
    assert observability([function(), log_group(), errors_alarm()]) == []


def test_a_function_logging_to_a_configured_group_passes():
    custom = "/securebase/production/query"
    specs = [
        function(loggingConfig={"logFormat": "JSON", "logGroup": custom}),
        log_group(custom),
        errors_alarm(),
    ]
    assert observability(specs) == []


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        ([function(), errors_alarm()], "is not created by the stack: Lambda creates it on first run, without retention"),
        ([function(), log_group(retention=None), errors_alarm()], "keeps logs forever"),
        ([function(), log_group()], "no alarm watches its Errors metric"),
        ([function(), log_group(), errors_alarm("another-function")], "no alarm watches its Errors metric"),
    ],
)  # fmt: skip
def test_missing_log_groups_and_alarms_are_reported_on_the_function(specs, problem):
    [(name, message)] = observability(specs)
    assert name == "query"
    assert problem in message


def test_metric_math_alarms_on_errors_count():
    alarm = Spec(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "query-error-rate",
        {
            "metricQueries": [
                {"id": "errors", "metric": {"namespace": "AWS/Lambda", "metricName": "Errors", "dimensions": {"FunctionName": NAME}}},
                {"id": "result", "expression": "errors", "returnData": True},
            ]
        },
    )  # fmt: skip
    assert observability([function(), log_group(), alarm]) == []


def test_unknown_names_during_preview_are_not_judged():
    assert observability([function(), log_group(UNKNOWN), errors_alarm(UNKNOWN)]) == []


def test_data_resources_are_protected():
    rule = POLICIES["data-resources-protected"]
    specs = [
        Spec("aws:dynamodb/table:Table", "metrics", {"name": "m"}, protect=True),
        Spec("aws:s3/bucket:Bucket", "reports", {"bucket": "b"}, protect=True),
        Spec("aws:kms/key:Key", "data-key", {}, protect=False),
        Spec("aws:sqs/queue:Queue", "jobs", {"name": "q"}, protect=False),
    ]
    [(name, message)] = check_stack(rule, specs)
    assert name == "data-key"
    assert "create it with pulumi.ResourceOptions(protect=True)" in message


def test_only_reviewed_resource_types_may_be_created():
    rule = POLICIES["stack-resource-types-reviewed"]
    specs = [
        Spec("aws:sqs/queue:Queue", "jobs", {}),
        Spec("securebase:analytics:AnalyticsApi", "api", {}),
        Spec("aws:apigateway/restApi:RestApi", "legacy", {}),
    ]
    [(name, message)] = check_stack(rule, specs)
    assert name == "legacy"
    assert "the pack has no rules for aws:apigateway/restApi:RestApi yet" in message
    config = {"reviewedResourceTypes": ["aws:*", "securebase:*"]}
    assert check_stack(rule, specs, config) == []
