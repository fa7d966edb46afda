"""Lambda: supported runtimes, explicit sizing, tracing, no secrets, scoped invocation,
failure handling for asynchronous and queue-driven invocations, one role per function."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity

from . import references
from .framework import (
    UNKNOWN,
    Config,
    Finding,
    Links,
    Resource,
    ResourceRule,
    Setting,
    Stack,
    StackRule,
    known,
    link,
)
from .sqs import QUEUE, redrive_target

FUNCTION = "aws:lambda/function:Function"
LAYER = "aws:lambda/layerVersion:LayerVersion"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ROLE = "aws:iam/role:Role"
SCHEDULE = "aws:scheduler/schedule:Schedule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
BUCKET_NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"

# Lambda's own defaults when memorySize / timeout are not set.
DEFAULT_TIMEOUT_SECONDS = 3
# SQS's default visibility timeout.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30

_SECRET_VALUES = (
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    (
        "a password, token or key assignment",
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)[\"']?\s*[=:]\s*[\"']?[^\s&;,'\"{}]{4,}"
        ),
    ),
    ("credentials in a URL", re.compile(r"://[^/\s:@]+:[^/\s@]+@")),
    (
        "a JSON web token",
        re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),
    ),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}")),
)
# A variable named like a secret must hold a reference to one (ARN, SSM path,
# Secrets Manager name), never the secret.
_SECRET_NAME = re.compile(r"(?i)(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$")
_REFERENCE = re.compile(r"^(arn:\S+|/[\w./-]+|[\w+=.@-]+(/[\w+=.@-]+)+)$")
_ARN = re.compile(r"arn:[^\s\"',]+")
_URL_OR_ARN = re.compile(r"(arn:[^\s\"',]+|[a-z]+://[^\s\"',]+)")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_HEX = re.compile(r"^[0-9a-fA-F]{40,}$")
# Bits per character above which a 32+ character mixed-case alphanumeric token
# is a generated secret rather than a word, name or id.
_ENTROPY_THRESHOLD = 4.0


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(value: str) -> bool:
    for token in _TOKEN.findall(_URL_OR_ARN.sub(" ", value)):
        if _HEX.match(token):
            return True
        mixed = (
            any(c.islower() for c in token)
            and any(c.isupper() for c in token)
            and any(c.isdigit() for c in token)
        )
        if mixed and _entropy(token) >= _ENTROPY_THRESHOLD:
            return True
    return False


def secret_kind(name: str, value: str) -> str | None:
    """What makes `value` (of variable `name`) look like a secret, or None."""
    # ARNs name secrets ("...:secret:name"); they never contain one.
    without_arns = _ARN.sub(" ", value)
    for kind, pattern in _SECRET_VALUES:
        if pattern.search(without_arns):
            return kind
    if _random_looking(value):
        return "a long random-looking string"
    if _SECRET_NAME.search(name) and value and not _REFERENCE.match(value):
        return "a literal value in a variable named like a secret"
    return None


def _runtime(resource: Resource, config: Config) -> Iterator[Finding]:
    runtimes = config.strings("allowedRuntimes")
    architectures = config.strings("allowedArchitectures")
    if resource.type == LAYER:
        for field, allowed in (
            ("compatibleRuntimes", runtimes),
            ("compatibleArchitectures", architectures),
        ):
            values = resource.get(field)
            if values is UNKNOWN or UNKNOWN in (values or []):
                continue
            outside = [v for v in values or [] if v not in allowed]
            if not values or outside:
                yield Finding(
                    resource,
                    f"{field} is {values or 'unset'}; layers are built for {list(allowed)}",
                    f"set {field} to values from {list(allowed)}",
                )
        return
    runtime = resource.get("runtime")
    if known(runtime) and runtime not in runtimes:
        yield Finding(
            resource,
            f"runtime {runtime!r} is not supported here (allowed: {list(runtimes)})",
            f"set runtime to one of {list(runtimes)}",
        )
    chosen = resource.get("architectures")
    if chosen is UNKNOWN or UNKNOWN in (chosen or []):
        return
    if not chosen or any(a not in architectures for a in chosen):
        yield Finding(
            resource,
            f"architectures is {chosen or 'unset (x86_64)'}; allowed: {list(architectures)}",
            f"set architectures=[{architectures[0]!r}]",
        )


def _sizing(function: Resource, config: Config) -> Iterator[Finding]:
    for field, low, high, unit in (
        ("memorySize", "minMemoryMb", "maxMemoryMb", "MB"),
        ("timeout", "minTimeoutSeconds", "maxTimeoutSeconds", "s"),
    ):
        value = function.get(field)
        lowest, highest = config.integer(low), config.integer(high)
        if value is None:
            yield Finding(
                function,
                f"{field} is not set, so Lambda's default applies",
                f"set {field} explicitly, between {lowest} and {highest} {unit}",
            )
        elif known(value) and not lowest <= value <= highest:
            yield Finding(
                function,
                f"{field} {value:g} {unit} is outside {lowest}-{highest} {unit}",
                f"size {field} between {lowest} and {highest} {unit}",
            )


def _tracing(function: Resource, config: Config) -> Iterator[Finding]:
    mode = function.get("tracingConfig", "mode")
    if known(mode) and mode != "Active":
        yield Finding(
            function,
            f"X-Ray tracing is {mode or 'off'}",
            "set tracingConfig.mode 'Active' (and allow xray:PutTraceSegments in its role)",
        )


def _no_secrets(function: Resource, config: Config) -> Iterator[Finding]:
    variables = function.get("environment", "variables")
    if not isinstance(variables, dict):
        return
    for name, value in sorted(variables.items()):
        if not isinstance(value, str):
            continue
        kind = secret_kind(name, value)
        if kind is not None:
            yield Finding(
                function,
                f"environment variable {name} holds what looks like {kind}",
                "store the secret in Secrets Manager or SSM and pass its name or ARN "
                "(the role reads it at run time)",
            )


def _invocation_scoped(resource: Resource, config: Config) -> Iterator[Finding]:
    if resource.type == FUNCTION_URL:
        auth = resource.get("authorizationType")
        if known(auth) and auth != "AWS_IAM":
            yield Finding(
                resource,
                f"the function URL has authorizationType {auth!r}: anyone can call it",
                "set authorizationType 'AWS_IAM' (or remove the URL and use the HTTP API)",
            )
        origins = resource.get("cors", "allowOrigins")
        if isinstance(origins, list) and "*" in origins:
            yield Finding(
                resource,
                "the function URL's CORS configuration allows every origin",
                "list the portal origins in cors.allowOrigins",
            )
        return
    principal, source_arn = resource.get("principal"), resource.get("sourceArn")
    action = resource.get("action")
    if principal == "*":
        yield Finding(
            resource,
            "it lets any principal ('*') invoke the function",
            "name the invoking service (e.g. 'apigateway.amazonaws.com') and its sourceArn",
        )
    elif isinstance(principal, str) and principal.endswith(".amazonaws.com") and source_arn is None:
        yield Finding(
            resource,
            f"{principal} may invoke the function from any resource, in any account",
            "set sourceArn to the API route, rule or bucket ARN that invokes it",
        )
    if resource.get("functionUrlAuthType") == "NONE":
        yield Finding(
            resource,
            "it opens the function URL without authentication",
            "use functionUrlAuthType 'AWS_IAM'",
        )
    if known(action) and action != "lambda:InvokeFunction":
        yield Finding(
            resource,
            f"it grants {action!r}",
            "grant 'lambda:InvokeFunction' only",
        )


def _function_links(stack: Stack, attachments: list[Resource], prop: str, field: str) -> Links:
    return link(
        attachments,
        stack.of_type(FUNCTION),
        reference=lambda attachment: references.function_name(attachment.get(field)),
        identity=lambda function: function.get("name"),
        prop=prop,
    )


def _asynchronous_invocations(stack: Stack) -> set[str]:
    """Names of the functions that schedules, rules, topics or buckets invoke asynchronously.

    A reference that is unknown yet (or names something else, e.g. a queue ARN)
    matches no function name and drops out.
    """
    refs: list[Any] = [schedule.get("target", "arn") for schedule in stack.of_type(SCHEDULE)]
    refs += [target.get("arn") for target in stack.of_type(EVENT_TARGET)]
    refs += [
        subscription.get("endpoint")
        for subscription in stack.of_type(SUBSCRIPTION)
        if subscription.get("protocol") == "lambda"
    ]
    for notification in stack.of_type(BUCKET_NOTIFICATION):
        entries = notification.get("lambdaFunctions")
        if isinstance(entries, list):
            refs += [e.get("lambdaFunctionArn") for e in entries if isinstance(e, dict)]
    names = {references.function_name(ref) for ref in refs}
    return {name for name in names if isinstance(name, str)}


def _failure_destination(stack: Stack, config: Config) -> Iterator[Finding]:
    # An invoker whose target is unknown yet is skipped: the update checks it again.
    asynchronous = _asynchronous_invocations(stack)
    configs = _function_links(stack, stack.of_type(INVOKE_CONFIG), "functionName", "functionName")
    for function in stack.of_type(FUNCTION):
        own_configs = configs.of(function)
        if function.get("name") not in asynchronous and not own_configs:
            continue
        if configs.undecided(function):
            continue
        destinations = [c.get("destinationConfig", "onFailure", "destination") for c in own_configs]
        dead_letter = function.get("deadLetterConfig", "targetArn")
        if UNKNOWN in (*destinations, dead_letter) or any(destinations) or dead_letter:
            continue
        yield Finding(
            function,
            "it is invoked asynchronously but a failed event is dropped after Lambda's retries",
            "add an aws.lambda_.FunctionEventInvokeConfig with destinationConfig.onFailure "
            "pointing at an SQS queue (and alarm on that queue)",
        )


def _dedicated_role(stack: Stack, config: Config) -> Iterator[Finding]:
    functions = stack.of_type(FUNCTION)
    roles = stack.of_type(ROLE)
    links = link(
        functions,
        roles,
        reference=lambda function: references.role_name(function.get("role")),
        identity=lambda role: role.get("name"),
        prop="role",
    )
    linked = {f.urn for role in roles for f in links.of(role)}
    unresolved = {f.urn for f in links.unresolved}
    for role in roles:
        users = links.of(role)
        if len(users) > 1:
            for function in users:
                others = sorted(f.name for f in users if f is not function)
                yield Finding(
                    function,
                    f"it shares role '{role.name}' with {others}: each gets the others' permissions",
                    "give every function its own role with only the permissions it uses",
                )
    for function in functions:
        if function.urn not in linked and function.urn not in unresolved:
            yield Finding(
                function,
                "its role is not created in this stack, so its permissions are not reviewed here",
                "create a dedicated aws.iam.Role for the function in this stack",
            )


@dataclass(frozen=True)
class _Mapping:
    """An event source mapping with the queue and function it links, where the stack has them."""

    mapping: Resource
    queue: Resource | None
    function: Resource | None

    @property
    def from_queue(self) -> bool:
        source = self.mapping.get("eventSourceArn")
        return self.queue is not None or (isinstance(source, str) and ":sqs:" in source)


def _mappings(stack: Stack) -> list[_Mapping]:
    mappings = stack.of_type(EVENT_SOURCE_MAPPING)
    if not mappings:
        return []
    queues = link(
        mappings,
        stack.of_type(QUEUE),
        reference=lambda mapping: references.queue_name(mapping.get("eventSourceArn")),
        identity=lambda queue: queue.get("name"),
        prop="eventSourceArn",
    )
    functions = _function_links(stack, mappings, "functionName", "functionName")
    queue_of = {m.urn: q for q in stack.of_type(QUEUE) for m in queues.of(q)}
    function_of = {m.urn: f for f in stack.of_type(FUNCTION) for m in functions.of(f)}
    return [_Mapping(m, queue_of.get(m.urn), function_of.get(m.urn)) for m in mappings]


def _queue_event_sources(stack: Stack, config: Config) -> Iterator[Finding]:
    multiple = config.integer("visibilityTimeoutMultiple")
    for linked in _mappings(stack):
        mapping, queue, function = linked.mapping, linked.queue, linked.function
        source = mapping.get("eventSourceArn")
        if not linked.from_queue:
            if (
                known(source)
                and mapping.get("destinationConfig", "onFailure", "destinationArn") is None
            ):
                yield Finding(
                    mapping,
                    "records that keep failing are dropped when they expire",
                    "set destinationConfig.onFailure.destinationArn to an SQS queue or SNS topic",
                )
            continue
        types = mapping.get("functionResponseTypes")
        if known(types) and "ReportBatchItemFailures" not in (types or []):
            yield Finding(
                mapping,
                "one failed message makes the whole batch be retried",
                "set functionResponseTypes=['ReportBatchItemFailures'] and return batchItemFailures",
            )
        if queue is None:
            continue
        if redrive_target(stack, queue) is None:
            yield Finding(
                queue,
                f"it feeds {mapping.type} '{mapping.name}' but has no dead-letter queue: a "
                "poison message is retried until it expires",
                "set redrivePolicy with deadLetterTargetArn and maxReceiveCount",
            )
        visibility = queue.get("visibilityTimeoutSeconds") or DEFAULT_VISIBILITY_TIMEOUT_SECONDS
        timeout = function.get("timeout") if function else None
        if function is None or UNKNOWN in (visibility, timeout):
            continue
        needed = multiple * (timeout or DEFAULT_TIMEOUT_SECONDS)
        if visibility < needed:
            yield Finding(
                queue,
                f"its visibility timeout ({visibility:g} s) is under {multiple}x the timeout of "
                f"'{function.name}' ({needed:g} s): messages are redelivered while still in work",
                f"set visibilityTimeoutSeconds to at least {needed:g}",
            )


def _queue_concurrency(stack: Stack, config: Config) -> Iterator[Finding]:
    for linked in _mappings(stack):
        mapping = linked.mapping
        if not linked.from_queue:
            continue
        maximum = mapping.get("scalingConfig", "maximumConcurrency")
        if maximum is UNKNOWN:
            continue
        if maximum is None:
            yield Finding(
                mapping,
                "it may run up to 1,250 invocations at once: a burst of messages takes the "
                "account's concurrency and floods what the function calls",
                "set scalingConfig.maximumConcurrency (2 to 1000)",
            )
            continue
        reserved = linked.function.get("reservedConcurrentExecutions") if linked.function else None
        if known(reserved) and reserved is not None and reserved < maximum:
            yield Finding(
                mapping,
                f"its maximum concurrency ({maximum:g}) is above the reserved concurrency of "
                f"'{linked.function.name}' ({reserved:g}): the mapping does not look at "
                "reserved concurrency, so deliveries are throttled and each counts towards "
                "the queue's maxReceiveCount",
                f"set scalingConfig.maximumConcurrency to at most {reserved:g}, or reserve more",
            )


RUNTIME_SETTINGS = [
    Setting(
        "allowedRuntimes",
        "Lambda runtimes functions and layers may use (supported, not deprecated).",
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ["python3.11", "python3.12", "python3.13"],
    ),
    Setting(
        "allowedArchitectures",
        "Instruction set architectures functions and layers may use.",
        {"type": "array", "items": {"enum": ["arm64", "x86_64"]}, "minItems": 1},
        ["arm64"],
    ),
]
SIZING_SETTINGS = [
    Setting("minMemoryMb", "Smallest memorySize.", {"type": "integer", "minimum": 128}, 128),
    Setting("maxMemoryMb", "Largest memorySize.", {"type": "integer", "maximum": 10240}, 3008),
    Setting("minTimeoutSeconds", "Shortest timeout.", {"type": "integer", "minimum": 1}, 3),
    Setting("maxTimeoutSeconds", "Longest timeout.", {"type": "integer", "maximum": 900}, 900),
]

POLICIES = [
    ResourceRule(
        name="lambda-function-runtime",
        description="Functions and layers use an allowed runtime and architecture.",
        remediation="Set runtime (layers: compatibleRuntimes) and architectures to allowed values.",
        severity=Severity.HIGH,
        resource_types=[FUNCTION, LAYER],
        check=_runtime,
        settings=RUNTIME_SETTINGS,
    ),
    ResourceRule(
        name="lambda-function-memory-and-timeout",
        description="Functions set memorySize and timeout explicitly, within the configured bounds.",
        remediation="Set memorySize and timeout from measurements, within the bounds.",
        severity=Severity.MEDIUM,
        resource_types=[FUNCTION],
        check=_sizing,
        settings=SIZING_SETTINGS,
    ),
    ResourceRule(
        name="lambda-function-tracing",
        description="Functions send X-Ray traces (tracing mode Active).",
        remediation="Set tracingConfig.mode 'Active'.",
        severity=Severity.LOW,
        resource_types=[FUNCTION],
        check=_tracing,
    ),
    ResourceRule(
        name="lambda-function-no-secrets-in-environment",
        description="Function environment variables hold names and ARNs, never secrets.",
        remediation="Keep secrets in Secrets Manager/SSM; pass their name or ARN and read them at run time.",
        severity=Severity.CRITICAL,
        resource_types=[FUNCTION],
        check=_no_secrets,
    ),
    ResourceRule(
        name="lambda-invocation-scoped",
        description="Invoke permissions name a service and the source ARN; nothing lets "
        "everyone invoke a function.",
        remediation="Grant lambda:InvokeFunction to the calling service with sourceArn; keep "
        "function URLs on AWS_IAM.",
        severity=Severity.CRITICAL,
        resource_types=[PERMISSION, FUNCTION_URL],
        check=_invocation_scoped,
    ),
    StackRule(
        name="lambda-async-failure-destination",
        description="Asynchronously invoked functions send events that keep failing to a queue.",
        remediation="Add an aws.lambda_.FunctionEventInvokeConfig with an onFailure SQS destination.",
        severity=Severity.MEDIUM,
        check=_failure_destination,
    ),
    StackRule(
        name="lambda-function-dedicated-role",
        description="Every function has its own role, created in this stack.",
        remediation="Create one aws.iam.Role per function, with only what that function uses.",
        severity=Severity.HIGH,
        check=_dedicated_role,
    ),
    StackRule(
        name="lambda-event-source-bounded-concurrency",
        description="Queue-driven mappings cap their concurrency, never above the function's "
        "reserved concurrency.",
        remediation="Set scalingConfig.maximumConcurrency, at most the function's "
        "reservedConcurrentExecutions when it reserves any.",
        severity=Severity.MEDIUM,
        check=_queue_concurrency,
    ),
    StackRule(
        name="lambda-event-source-failure-handling",
        description="Event source mappings report partial batch failures; their queues have a "
        "dead-letter queue and a visibility timeout that outlasts the function.",
        remediation="Set functionResponseTypes ['ReportBatchItemFailures']; give the queue a "
        "redrivePolicy and visibilityTimeoutSeconds >= the configured multiple of the "
        "function timeout (streams: an onFailure destination).",
        severity=Severity.MEDIUM,
        check=_queue_event_sources,
        settings=[
            Setting(
                "visibilityTimeoutMultiple",
                "A source queue's visibility timeout must be at least this many times the "
                "function timeout (AWS advises 6).",
                {"type": "integer", "minimum": 1},
                6,
            )
        ],
    ),
]
