"""Deploying one Lambda function, and invoking functions on a schedule.

AnalyticsApi and Phase2Monitor deploy their functions the same way: the
catalogue's runtime and sizing (components.functions), a role of its own built
from the IAM table (components.iam), logging to the group AnalyticsObservability
created for it, and, when invoked asynchronously, an on-failure destination.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.functions import ARCHITECTURE, RUNTIME, FunctionSpec, reserved_concurrency
from components.packaging import function_archive
from components.settings import StackSettings
from handlers.shared import env
from handlers.shared.telemetry import DEFAULT_METRICS_NAMESPACE

LOG_LEVEL = "INFO"

# Asynchronous invocations (schedules): Lambda retries twice within an hour,
# then hands the event to the async-failures queue.
ASYNC_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE_SECONDS = 3600


def base_environment(environment: str) -> dict[str, str]:
    """What every function reads (handlers.shared.telemetry)."""
    return {
        env.ENVIRONMENT: environment,
        env.LOG_LEVEL: LOG_LEVEL,
        env.METRICS_NAMESPACE: DEFAULT_METRICS_NAMESPACE,
    }


@dataclass
class FunctionArgs:
    spec: FunctionSpec
    settings: StackSettings
    account_id: pulumi.Input[str]
    # The function's own variables (base_environment is added).
    variables: Mapping[str, pulumi.Input[str]]
    # Values for the IAM table's placeholders; <region>, <account> and
    # <log-group> are added here.
    policy_values: Mapping[str, pulumi.Input[str] | None]
    log_group: aws.cloudwatch.LogGroup
    layer_arns: Sequence[pulumi.Input[str]] = ()
    # Required for asynchronously invoked functions.
    on_failure_queue_arn: pulumi.Input[str] | None = None


@dataclass
class DeployedFunction:
    function: aws.lambda_.Function
    role: aws.iam.Role
    policy: aws.iam.RolePolicy


def deploy_function(name: str, args: FunctionArgs, parent: pulumi.Resource) -> DeployedFunction:
    """A function with its own least-privilege role, logging to its pre-created group."""
    spec = args.spec
    settings = args.settings
    function_name = spec.function_name(settings.name_prefix)
    policy = pulumi.Output.all(
        **args.policy_values,
        region=settings.region,
        account=args.account_id,
        **{"log-group": args.log_group.arn},
    ).apply(lambda values: json.dumps(iam.policy_document(iam.grants_for(spec.key), values)))
    role, role_policy = iam.service_role(
        f"{name}-role", function_name, "lambda.amazonaws.com", args.account_id, policy, parent
    )
    archive = function_archive(spec)
    function = aws.lambda_.Function(
        name,
        name=function_name,
        description=f"SecureBase analytics: {spec.module}",
        role=role.arn,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=spec.handler,
        code=archive.archive(),
        source_code_hash=archive.base64_sha256,
        memory_size=spec.memory_mb,
        timeout=spec.timeout_seconds,
        reserved_concurrent_executions=reserved_concurrency(spec, settings),
        tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
        environment=aws.lambda_.FunctionEnvironmentArgs(
            variables={**base_environment(settings.environment), **args.variables}
        ),
        layers=list(args.layer_arns) or None,
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(
            log_format="JSON", log_group=args.log_group.name
        ),
        # The group must exist first (or Lambda creates an unmanaged one without
        # retention), and the role must allow logging before the first invocation.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[args.log_group, role_policy]),
    )
    if spec.asynchronous:
        if args.on_failure_queue_arn is None:
            raise ValueError(f"{spec.key} is invoked asynchronously and needs a failure queue")
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=function.name,
            maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=ASYNC_MAX_EVENT_AGE_SECONDS,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=args.on_failure_queue_arn
                )
            ),
            # Lambda checks that the role may send to the destination.
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy]),
        )
    return DeployedFunction(function=function, role=role, policy=role_policy)


def scheduler_role(
    name: str,
    role_name: str,
    account_id: pulumi.Input[str],
    functions: Sequence[aws.lambda_.Function],
    dead_letter_queue_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """The role EventBridge Scheduler invokes `functions` with."""
    policy = pulumi.Output.all(dead_letter_queue_arn, *(f.arn for f in functions)).apply(
        lambda arns: json.dumps(iam.scheduler_policy(arns[1:], arns[0]))
    )
    return iam.service_role(name, role_name, "scheduler.amazonaws.com", account_id, policy, parent)


def schedule_function(
    name: str,
    *,
    schedule_name: str,
    expression: str,
    function: aws.lambda_.Function,
    role_arn: pulumi.Input[str],
    dead_letter_queue_arn: pulumi.Input[str],
    max_event_age_seconds: int,
    parent: pulumi.Resource,
    start_date: str | None = None,
    end_date: str | None = None,
    enabled: bool = True,
    depends_on: Sequence[pulumi.Resource] = (),
) -> aws.scheduler.Schedule:
    """An EventBridge Scheduler schedule invoking `function` on time, with retries and a DLQ."""
    return aws.scheduler.Schedule(
        name,
        name=schedule_name,
        group_name="default",
        schedule_expression=expression,
        schedule_expression_timezone="UTC",
        flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
        start_date=start_date,
        end_date=end_date,
        state="ENABLED" if enabled else "DISABLED",
        # Keep an expired schedule: deleting it would leave Pulumi's state behind.
        action_after_completion="NONE",
        target=aws.scheduler.ScheduleTargetArgs(
            arn=function.arn,
            role_arn=role_arn,
            input=json.dumps({"source": "securebase.scheduler", "schedule": schedule_name}),
            retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS,
                maximum_event_age_in_seconds=max_event_age_seconds,
            ),
            dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(
                arn=dead_letter_queue_arn
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
