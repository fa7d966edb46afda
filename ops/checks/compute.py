"""Functions, their layers, roles and log groups, against `components.functions`."""

from __future__ import annotations

from functools import partial
from typing import Any

from components.functions import ARCHITECTURE, RUNTIME, FunctionSpec, reserved_concurrency
from ops.checks.aws import AwsView
from ops.checks.base import Check, Lazy, Outcome, failed, passed, verdict
from ops.checks.expectations import API_ACCESS_LOG_KEY, Expectations
from ops.checks.operations import dead_letter_arns
from ops.checks.outputs import StackOutputs

LAMBDA_SERVICE = "lambda.amazonaws.com"


def function_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    checks = []
    for spec in expect.functions:
        name = partial(outputs.entry, "function_names", spec.key)
        label = f"function {spec.key}"
        checks += [
            Check("function", f"{label}: active", partial(_active, aws, name)),
            Check("function", f"{label}: runtime and handler", partial(_runtime, aws, name, spec)),
            Check("function", f"{label}: architecture", partial(_architecture, aws, name)),
            Check(
                "function",
                f"{label}: memory, timeout, concurrency",
                partial(_sizing, aws, name, spec, reserved_concurrency(spec, expect.settings)),
            ),
            Check("function", f"{label}: environment", partial(_environment, aws, name, expect)),
            Check("function", f"{label}: own execution role", partial(_role, aws, outputs, spec)),
            Check("function", f"{label}: layers", partial(_layers, aws, outputs, name, spec)),
            Check("function", f"{label}: X-Ray tracing", partial(_tracing, aws, name)),
        ]
        if spec.asynchronous:
            checks.append(
                Check(
                    "function",
                    f"{label}: failed async invocations kept",
                    partial(_on_failure, aws, outputs, name),
                )
            )
    return checks


def _configuration(aws: AwsView, name: Lazy) -> dict[str, Any]:
    return aws.function(name())["Configuration"]


def _active(aws: AwsView, name: Lazy) -> Outcome:
    config = _configuration(aws, name)
    state, update = config.get("State"), config.get("LastUpdateStatus")
    if state == "Active" and update == "Successful":
        return passed(f"{config['FunctionName']} Active, last update Successful")
    reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or ""
    return failed(
        f"state {state}, last update {update}, expected Active/Successful {reason}".strip()
    )


def _runtime(aws: AwsView, name: Lazy, spec: FunctionSpec) -> Outcome:
    config = _configuration(aws, name)
    problems = []
    if config.get("Runtime") != RUNTIME:
        problems.append(f"runtime {config.get('Runtime')}, expected {RUNTIME}")
    if config.get("Handler") != spec.handler:
        problems.append(f"handler {config.get('Handler')}, expected {spec.handler}")
    return verdict(problems, f"{RUNTIME}, {spec.handler}")


def _architecture(aws: AwsView, name: Lazy) -> Outcome:
    architectures = _configuration(aws, name).get("Architectures", ["x86_64"])
    if architectures == [ARCHITECTURE]:
        return passed(ARCHITECTURE)
    return failed(f"architectures {architectures}, expected [{ARCHITECTURE!r}]")


def _sizing(aws: AwsView, name: Lazy, spec: FunctionSpec, expected: int | None) -> Outcome:
    """Memory and timeout from the catalogue; reserved concurrency as the program sets it."""
    answer = aws.function(name())
    config = answer["Configuration"]
    reserved = answer.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    problems = []
    if config.get("MemorySize") != spec.memory_mb:
        problems.append(f"memory {config.get('MemorySize')} MB, expected {spec.memory_mb}")
    if config.get("Timeout") != spec.timeout_seconds:
        problems.append(f"timeout {config.get('Timeout')} s, expected {spec.timeout_seconds}")
    if reserved != expected:
        problems.append(f"reserved concurrency {reserved}, expected {expected}")
    concurrency = "unreserved" if expected is None else f"{expected} reserved"
    return verdict(problems, f"{spec.memory_mb} MB, {spec.timeout_seconds} s, {concurrency}")


def _environment(aws: AwsView, name: Lazy, expect: Expectations) -> Outcome:
    variables = _configuration(aws, name).get("Environment", {}).get("Variables", {})
    environment = variables.get("ENVIRONMENT")
    if environment == expect.environment:
        return passed(f"ENVIRONMENT={environment}")
    return failed(f"ENVIRONMENT={environment!r}, expected {expect.environment!r}")


def _role(aws: AwsView, outputs: StackOutputs, spec: FunctionSpec) -> Outcome:
    roles = {
        key: aws.function(function_name)["Configuration"]["Role"]
        for key, function_name in outputs.mapping("function_names").items()
    }
    role_arn = roles[spec.key]
    role_name = role_arn.rsplit("/", 1)[-1]
    problems = []
    sharing = sorted(key for key, arn in roles.items() if arn == role_arn and key != spec.key)
    if sharing:
        # One role per function keeps each one's permissions to what it uses.
        problems.append(f"role {role_name} is shared with {', '.join(sharing)}")
    # botocore hands the trust policy over already URL-decoded and parsed.
    if not _trusts_lambda(aws.role(role_name)["AssumeRolePolicyDocument"]):
        problems.append(f"role {role_name} does not trust {LAMBDA_SERVICE}")
    return verdict(problems, role_arn)


def _trusts_lambda(trust: dict[str, Any]) -> bool:
    statements = trust.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        services = statement.get("Principal", {}).get("Service", [])
        services = services if isinstance(services, list) else [services]
        if statement.get("Effect") == "Allow" and LAMBDA_SERVICE in services:
            return True
    return False


def _layers(aws: AwsView, outputs: StackOutputs, name: Lazy, spec: FunctionSpec) -> Outcome:
    attached = sorted(layer["Arn"] for layer in _configuration(aws, name).get("Layers", []))
    wanted = {layer: outputs.entry("layer_arns", layer) for layer in spec.layers}
    if attached == sorted(wanted.values()):
        versions = [f"{layer} version {arn.rsplit(':', 1)[-1]}" for layer, arn in wanted.items()]
        return passed(", ".join(versions) or "none")
    return failed(f"layers {attached or 'none'}, expected {sorted(wanted.values()) or 'none'}")


def _tracing(aws: AwsView, name: Lazy) -> Outcome:
    mode = _configuration(aws, name).get("TracingConfig", {}).get("Mode", "PassThrough")
    return passed(mode) if mode == "Active" else failed(f"tracing mode {mode}, expected Active")


def _on_failure(aws: AwsView, outputs: StackOutputs, name: Lazy) -> Outcome:
    config = aws.client("lambda").get_function_event_invoke_config(FunctionName=name())
    destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if destination in dead_letter_arns(aws, outputs):
        return passed(f"on failure to {destination}")
    return failed(
        f"on-failure destination {destination}, expected one of the stack's dead-letter queues"
    )


def layer_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    names = sorted({layer for spec in expect.functions for layer in spec.layers})
    return [
        Check(
            "layer",
            f"layer {layer}: built for {RUNTIME} on {ARCHITECTURE}",
            partial(_layer, aws, outputs, layer),
        )
        for layer in names
    ]


def _layer(aws: AwsView, outputs: StackOutputs, layer: str) -> Outcome:
    arn = outputs.entry("layer_arns", layer)
    version = aws.layer_version(arn)
    runtimes = version.get("CompatibleRuntimes", [])
    architectures = version.get("CompatibleArchitectures", [])
    problems = []
    if RUNTIME not in runtimes:
        problems.append(f"compatible runtimes {runtimes} lack {RUNTIME}")
    if ARCHITECTURE not in architectures:
        problems.append(f"compatible architectures {architectures} lack {ARCHITECTURE}")
    return verdict(problems, arn)


def log_group_checks(outputs: StackOutputs, expect: Expectations, aws: AwsView) -> list[Check]:
    keys = [spec.key for spec in expect.functions] + [API_ACCESS_LOG_KEY]
    retention = expect.settings.log_retention_days
    checks = []
    for key in keys:
        checks += [
            Check(
                "logs",
                f"log group {key}: retention {retention} days",
                partial(_log_group, aws, outputs, expect, key),
            ),
            Check(
                "logs",
                f"log group {key}: encrypted with a rotating customer managed key",
                partial(_log_group_key, aws, outputs, key),
            ),
        ]
    return checks


def _log_group(aws: AwsView, outputs: StackOutputs, expect: Expectations, key: str) -> Outcome:
    name = outputs.entry("log_group_names", key)
    spec = next((spec for spec in expect.functions if spec.key == key), None)
    if spec is not None:
        function_name = outputs.entry("function_names", key)
        logging = _configuration(aws, lambda: function_name).get("LoggingConfig", {})
        writes_to = logging.get("LogGroup") or f"/aws/lambda/{function_name}"
        if name != writes_to:
            return failed(f"stack output names {name}, but the function logs to {writes_to}")
    group = aws.log_group(name)
    if group is None:
        return failed(f"{name} does not exist (Lambda would create it without retention)")
    days = group.get("retentionInDays")
    if days != expect.settings.log_retention_days:
        return failed(
            f"{name} keeps logs {days or 'forever'} days, expected {expect.settings.log_retention_days}"
        )
    return passed(name)


def _log_group_key(aws: AwsView, outputs: StackOutputs, key: str) -> Outcome:
    name = outputs.entry("log_group_names", key)
    group = aws.log_group(name)
    if group is None:
        return failed(f"{name} does not exist")
    key_arn = group.get("kmsKeyId")
    if not key_arn:
        return failed(f"{name} is encrypted with a CloudWatch owned key, not the stack's own key")
    if not aws.key_rotation_enabled(key_arn):
        return failed(f"automatic rotation is off for {key_arn}")
    return passed(key_arn)
