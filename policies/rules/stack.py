"""Whole-stack guarantees: observable functions, protected data, reviewed resource types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pulumi_policy import Severity

from .framework import UNKNOWN, Config, Finding, Resource, Setting, Stack, StackRule, matches_any

FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DATA_TYPES = ("aws:dynamodb/table:Table", "aws:s3/bucket:Bucket", "aws:kms/key:Key")

REVIEWED_TYPES = (
    "pulumi:*",
    "securebase:analytics:*",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketLogging:BucketLogging",
    "aws:dynamodb/table:Table",
    "aws:kms/key:Key",
    "aws:kms/alias:Alias",
    "aws:iam/role:Role",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policy:Policy",
    "aws:lambda/function:Function",
    "aws:lambda/permission:Permission",
    "aws:lambda/layerVersion:LayerVersion",
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
    "aws:lambda/eventSourceMapping:EventSourceMapping",
    "aws:lambda/functionUrl:FunctionUrl",
    "aws:apigatewayv2/api:Api",
    "aws:apigatewayv2/route:Route",
    "aws:apigatewayv2/stage:Stage",
    "aws:apigatewayv2/integration:Integration",
    "aws:apigatewayv2/authorizer:Authorizer",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:cloudwatch/compositeAlarm:CompositeAlarm",
    "aws:cloudwatch/dashboard:Dashboard",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:ses/configurationSet:ConfigurationSet",
    "aws:ses/eventDestination:EventDestination",
    "aws:sns/topic:Topic",
    "aws:sns/topicSubscription:TopicSubscription",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:sqs/queue:Queue",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:sqs/redrivePolicy:RedrivePolicy",
    "aws:scheduler/schedule:Schedule",
    "aws:scheduler/scheduleGroup:ScheduleGroup",
)


def _errors_metrics(alarm: Resource) -> list[Any]:
    """The FunctionName of each AWS/Lambda Errors metric the alarm watches (UNKNOWN if unknown)."""
    metrics = [alarm.props]
    queries = alarm.get("metricQueries")
    if queries is UNKNOWN:
        return [UNKNOWN]
    metrics += [q.get("metric") if isinstance(q, dict) else UNKNOWN for q in queries or []]
    names = []
    for metric in metrics:
        if not isinstance(metric, dict):
            names.append(UNKNOWN)
            continue
        namespace, metric_name = metric.get("namespace"), metric.get("metricName")
        if UNKNOWN in (namespace, metric_name):
            names.append(UNKNOWN)
        elif (namespace, metric_name) == ("AWS/Lambda", "Errors"):
            dimensions = metric.get("dimensions")
            names.append(
                dimensions.get("FunctionName") if isinstance(dimensions, dict) else dimensions
            )
    return names


def _function_observability(stack: Stack, config: Config) -> Iterator[Finding]:
    groups = {g.get("name"): g for g in stack.of_type(LOG_GROUP)}
    watched = [name for alarm in stack.of_type(METRIC_ALARM) for name in _errors_metrics(alarm)]
    for function in stack.of_type(FUNCTION):
        name = function.get("name")
        if not isinstance(name, str):
            continue
        configured = function.get("loggingConfig", "logGroup")
        expected = configured if configured is not None else f"/aws/lambda/{name}"
        group = groups.get(expected)
        if expected is not UNKNOWN and UNKNOWN not in groups:
            if group is None:
                yield Finding(
                    function,
                    f"log group {expected} is not created by the stack: Lambda creates it "
                    "on first run, without retention",
                    f"create an aws.cloudwatch.LogGroup named {expected} with retentionInDays, "
                    "and make the function depend on it",
                )
            elif group.get("retentionInDays") is None:
                yield Finding(
                    function,
                    f"its log group {expected} keeps logs forever",
                    "set retentionInDays on the log group",
                )
        if name not in watched and UNKNOWN not in watched:
            yield Finding(
                function,
                "no alarm watches its Errors metric: failures go unnoticed",
                "add an aws.cloudwatch.MetricAlarm on AWS/Lambda Errors with dimension "
                f"FunctionName={name}, notifying the alerts topic",
            )


def _protected(stack: Stack, config: Config) -> Iterator[Finding]:
    for resource in stack.of_type(*DATA_TYPES):
        if not resource.protect:
            yield Finding(
                resource,
                "it holds data that must survive but is not protected: `pulumi destroy` or "
                "a replacement deletes it",
                "create it with pulumi.ResourceOptions(protect=True)",
            )


def _reviewed_types(stack: Stack, config: Config) -> Iterator[Finding]:
    patterns = config.strings("reviewedResourceTypes")
    for resource in stack.resources:
        if not matches_any(resource.type, patterns):
            yield Finding(
                resource,
                f"the pack has no rules for {resource.type} yet",
                "add rules for its risks to policies/rules/ and its type to "
                "reviewedResourceTypes, or build it from a reviewed type",
            )


POLICIES = [
    StackRule(
        name="lambda-function-observability",
        description="Every function logs to a log group the stack creates (with retention) and "
        "has an alarm on its Errors metric.",
        remediation="Create /aws/lambda/<function name> (or the group loggingConfig names) "
        "with retentionInDays, and a MetricAlarm on AWS/Lambda Errors for the function.",
        severity=Severity.MEDIUM,
        check=_function_observability,
    ),
    StackRule(
        name="data-resources-protected",
        description="Tables, buckets and KMS keys are protected from deletion by Pulumi "
        "(mandatory in production).",
        remediation="Create them with ResourceOptions(protect=True).",
        severity=Severity.HIGH,
        check=_protected,
    ),
    StackRule(
        name="stack-resource-types-reviewed",
        description="The stack creates only resource types this pack has rules for.",
        remediation="Before using a new resource type, add rules for it and list it in "
        "reviewedResourceTypes.",
        severity=Severity.MEDIUM,
        check=_reviewed_types,
        settings=[
            Setting(
                "reviewedResourceTypes",
                "Resource types (shell-style patterns) the pack has rules for.",
                {"type": "array", "items": {"type": "string"}},
                list(REVIEWED_TYPES),
            )
        ],
    ),
]
