"""Runs the real `__main__.py` under Pulumi mocks and records what it registers.

Each `run_program` call gets a fresh monitor, fresh config and a fresh root
stack, and executes the program with `runpy`, the way the Pulumi language host
does. The mocks answer like the AWS provider for what the program reads back
(ids, ARNs, names, URLs) and echo every input, so tests assert the inputs the
engine would send (camelCase keys, numbers as floats). URNs are made the way the
engine makes them, so they are the URNs a real stack's state holds.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import unquote, urlparse

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import clock

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
PROJECT = "securebase-analytics"
ACCOUNT_ID = "123456789012"
STACKS = ("staging", "production")
# When the program "runs" unless a test says otherwise: a week before the
# committed Phase 2 observation windows open, so every stack deploys its
# monitor schedule enabled and the registered resources never depend on the
# day the suite runs.
PROGRAM_NOW = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)


# What the runbook's "Setting secrets" step adds to each stack with `pulumi config
# set --secret` (required in production, optional in staging). The CLI stores the
# value encrypted in Pulumi.<stack>.yaml and hands the program the decrypted
# value, listing the key among the secret keys; `stack_config` and `secret_keys`
# do the same. A test of a stack without one removes it (an override of None).
RUNBOOK_SECRETS: Mapping[str, Mapping[str, str]] = {
    stack: {
        f"{PROJECT}:alertWebhookUrl": (
            f"https://events.pagerduty.com/integration/runbook-{stack}-0123456789abcdef/enqueue"
        )
    }
    for stack in STACKS
}


def stack_config(stack: str) -> dict[str, str]:
    """The stack's config as the CLI hands it to the program: the committed file and the
    secrets the runbook sets."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    committed = {key: _config_string(value) for key, value in document["config"].items()}
    return {**committed, **RUNBOOK_SECRETS[stack]}


def runbook_stack_file(stack: str) -> str:
    """Pulumi.<stack>.yaml after the runbook's secrets step: each secret as the CLI
    writes it, encrypted (`secure: v1:...`; this ciphertext stands in, nothing decrypts it)."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    for key in RUNBOOK_SECRETS[stack]:
        document["config"][key] = {"secure": "v1:c3RhbmQtaW4=:bm90LWEtcmVhbC1jaXBoZXJ0ZXh0"}
    return yaml.safe_dump(document, sort_keys=False)


def secret_keys(stack: str, config: Mapping[str, str]) -> list[str]:
    """The keys of `config` the CLI marks secret: those the runbook sets with --secret."""
    return [key for key in RUNBOOK_SECRETS[stack] if key in config]


def _config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str
    provider: str
    protect: bool
    dependencies: list[str]
    custom: bool
    # The Python stack that constructed the resource, innermost frame first:
    # (file, line) of each frame the SDK could place (it sends them with the
    # registration; the engine shows the first as the resource's source position).
    registered_at: tuple[tuple[Path, int], ...] = ()
    # The registration as the engine receives it: the inputs in their wire form
    # (secrets, assets and archives still marked as such) and the options.
    wire_inputs: dict[str, Any] = field(default_factory=dict)
    aliases: list[dict[str, Any]] = field(default_factory=list)
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)

    @property
    def parent_type(self) -> str:
        """The type of the parent, read from this resource's URN ("" at the top level)."""
        qualified = self.urn.split("::")[2].split("$")
        return qualified[-2] if len(qualified) > 1 else ""


@dataclass
class Deployment:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, predicate: Callable[[Resource], bool] = lambda r: True) -> Resource:
        found = [r for r in self.of_type(type_) if predicate(r)]
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Resource:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def children_of(self, parent: Resource) -> Iterator[Resource]:
        return (r for r in self.resources if r.parent == parent.urn)


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class ProviderLikeMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes as the AWS provider would."""

    def __init__(self, region: str):
        self.region = region
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        name = inputs.get("name") or args.name
        kind = args.typ
        state: dict[str, Any] = dict(inputs)
        resource_id = f"{args.name}-id"
        region = self.region
        if kind == "aws:dynamodb/table:Table":
            resource_id = name
            state["arn"] = _arn("dynamodb", region, f"table/{name}")
        elif kind == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or args.name
            resource_id = bucket
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
        elif kind == "aws:kms/key:Key":
            resource_id = f"{args.name}-key-id"
            state.update(keyId=resource_id, arn=_arn("kms", region, f"key/{resource_id}"))
        elif kind == "aws:kms/alias:Alias":
            state["arn"] = _arn("kms", region, name)
        elif kind == "aws:iam/role:Role":
            resource_id = name
            state["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        elif kind == "aws:lambda/function:Function":
            resource_id = name
            arn = _arn("lambda", region, f"function:{name}")
            state.update(
                arn=arn,
                qualifiedArn=f"{arn}:$LATEST",
                invokeArn=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            )
        elif kind == "aws:lambda/layerVersion:LayerVersion":
            layer = inputs.get("layerName") or args.name
            state.update(
                arn=_arn("lambda", region, f"layer:{layer}:1"),
                layerArn=_arn("lambda", region, f"layer:{layer}"),
            )
        elif kind == "aws:apigatewayv2/api:Api":
            resource_id = "a1b2c3d4e5"
            state.update(
                apiEndpoint=f"https://{resource_id}.execute-api.{region}.amazonaws.com",
                executionArn=_arn("execute-api", region, resource_id),
                arn=f"arn:aws:apigateway:{region}::/apis/{resource_id}",
            )
        elif kind == "aws:apigatewayv2/stage:Stage":
            state["invokeUrl"] = f"https://a1b2c3d4e5.execute-api.{region}.amazonaws.com/"
        elif kind == "aws:cloudwatch/logGroup:LogGroup":
            resource_id = name
            state["arn"] = _arn("logs", region, f"log-group:{name}")
        elif kind == "aws:sns/topic:Topic":
            state["arn"] = _arn("sns", region, name)
            resource_id = state["arn"]
        elif kind == "aws:sqs/queue:Queue":
            state.update(
                arn=_arn("sqs", region, name),
                url=f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{name}",
            )
            resource_id = state["url"]
        elif kind in (
            "aws:scheduler/schedule:Schedule",
            "aws:scheduler/scheduleGroup:ScheduleGroup",
        ):
            state["arn"] = _arn("scheduler", region, f"schedule/default/{name}")
        elif kind == "aws:cloudwatch/eventRule:EventRule":
            state["arn"] = _arn("events", region, f"rule/{name}")
        elif kind == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state["arn"] = _arn("cloudwatch", region, f"alarm:{name}")
        elif kind == "aws:cloudwatch/dashboard:Dashboard":
            state["dashboardArn"] = (
                f"arn:aws:cloudwatch::{ACCOUNT_ID}:dashboard/{inputs.get('dashboardName')}"
            )
        elif "arn" not in state and args.custom:
            state["arn"] = _arn(kind.split(":")[1].split("/")[0], region, args.name)
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT_ID,
            }
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        raise NotImplementedError(
            f"the program invoked {args.token}, which the mocks do not answer"
        )


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def engine_urn(stack: str, parent: str, type_: str, name: str) -> str:
    """The URN the engine gives a resource (pkg/resource/deploy/deployment.go, generateURN).

    The type is qualified by the parent's whole qualified type, except the root
    stack's. (The SDK's MockMonitor keeps only the parent's last type and
    qualifies top-level resources with the stack's type.)
    """
    qualified = type_
    if parent:
        parent_type = parent.split("::")[2]
        if parent_type != ROOT_STACK_TYPE:
            qualified = f"{parent_type}${type_}"
    return f"urn:pulumi:{stack}::{PROJECT}::{qualified}::{name}"


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps what the engine would see of each registration (parent, protect, ...)."""

    def __init__(self, mocks: ProviderLikeMocks, stack: str):
        super().__init__(mocks)
        self.stack = stack
        self.records: list[Resource] = []
        self.stack_outputs: dict[str, Any] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        return engine_urn(self.stack, parent, type_, name)

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            registration = self.resources[response.urn]
            self.records.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=rpc.deserialize_properties(request.object),
                    outputs=dict(registration.state),
                    parent=request.parent,
                    provider=request.provider,
                    protect=bool(request.protect),
                    dependencies=list(request.dependencies),
                    custom=bool(request.custom),
                    registered_at=_stack_trace(request),
                    wire_inputs=json_format.MessageToDict(request.object),
                    aliases=[json_format.MessageToDict(alias) for alias in request.aliases],
                    retain_on_delete=bool(request.retainOnDelete),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    replace_on_changes=list(request.replaceOnChanges),
                    ignore_changes=list(request.ignoreChanges),
                )
            )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            self.stack_outputs = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


def _stack_trace(request: Any) -> tuple[tuple[Path, int], ...]:
    positions = [frame.pc for frame in request.stackTrace.frames] or [request.sourcePosition]
    return tuple(
        (Path(unquote(urlparse(position.uri).path)), position.line)
        for position in positions
        if position.uri.startswith("file:")
    )


def run_program(
    stack: str,
    overrides: Mapping[str, str | None] | None = None,
    now: dt.datetime = PROGRAM_NOW,
    *,
    program: Path = PROGRAM,
) -> Deployment:
    """Runs `program` (`__main__.py`) for `stack` with its config file plus `overrides`, at `now`.

    An override of None removes the key. Raises whatever the program raises.
    """
    config = stack_config(stack)
    for key, value in (overrides or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            config.pop(full_key, None)
        else:
            config[full_key] = value

    mocks = ProviderLikeMocks(region=config.get("aws:region", "us-east-1"))
    monitor = RecordingMonitor(mocks, stack)
    settings.set_root_resource(None)
    pulumi.runtime.set_all_config(config, secret_keys(stack, config))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    # set_mocks registers an empty root stack; run the program inside a fresh
    # one, as the language host does, so its exports are registered at the end.
    settings.set_root_resource(None)
    with mock.patch.object(clock, "deployment_time", return_value=now):
        _sync_await(
            run_pulumi_func(
                lambda: Stack(lambda: runpy.run_path(str(program), run_name="__main__"))
            )
        )
    return Deployment(
        stack=stack, resources=monitor.records, outputs=monitor.stack_outputs, invokes=mocks.invokes
    )


@functools.cache
def _committed_run(stack: str) -> Deployment:
    return run_program(stack)


def committed_deployment(stack: str) -> Deployment:
    """The program for `stack` with its committed config, run once per test process.

    Many modules only read this one run; sharing it saves a program run per module
    and stack (about 2 s each). Each caller gets its own deep copy, so no module
    can change what another reads.
    """
    return copy.deepcopy(_committed_run(stack))
