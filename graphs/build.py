"""Runs the program under mocks per stack and turns what it registers into a graph.

A graph is plain, deterministic JSON: every resource sorted by URN with its
type, parent, provider, options and inputs as the engine receives them, except
what would make two runs differ without the program changing: secrets become
SECRET, assets and archives their content's SHA-256 (their paths are local),
provider references lose the provider's id, and the program runs at the
harness's fixed moment (tests.pulumi_program.PROGRAM_NOW), not now.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc

from graphs import ROOT, graph_path
from tests.pulumi_program import PROGRAM_NOW, Deployment, Resource, run_program

SECRET = "[secret]"  # noqa: S105 (the marker that replaces every secret)
UNKNOWN = "[unknown]"

_SIG = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig
_ASSET_SIG = rpc._special_asset_sig
_ARCHIVE_SIG = rpc._special_archive_sig
_RESOURCE_SIG = rpc._special_resource_sig


def program_graph(stack: str) -> dict[str, Any]:
    """The graph of the real program for `stack`, from its committed config."""
    return graph_of(run_program(stack))


def graph_of(deployment: Deployment) -> dict[str, Any]:
    return {
        "stack": deployment.stack,
        # When the program believed it ran: the Phase 2 schedule's dates depend on it.
        "programTime": PROGRAM_NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": sorted((_resource(r) for r in deployment.resources), key=_by_urn),
    }


def render(graph: dict[str, Any]) -> str:
    return json.dumps(graph, indent=2, ensure_ascii=False) + "\n"


def _by_urn(resource: dict[str, Any]) -> str:
    return resource["urn"]


def _resource(resource: Resource) -> dict[str, Any]:
    return {
        "urn": resource.urn,
        "type": resource.type,
        "name": resource.name,
        "custom": resource.custom,
        "parent": resource.parent,
        # A provider reference is "<urn>::<id>"; the id is the mock's.
        "provider": resource.provider.rsplit("::", 1)[0] if resource.provider else "",
        "protect": resource.protect,
        "retainOnDelete": resource.retain_on_delete,
        "deleteBeforeReplace": resource.delete_before_replace,
        "aliases": [_alias(alias) for alias in resource.aliases],
        "dependencies": sorted(set(resource.dependencies)),
        "replaceOnChanges": sorted(resource.replace_on_changes),
        "ignoreChanges": sorted(resource.ignore_changes),
        "inputs": normalised(resource.wire_inputs),
    }


def _alias(alias: dict[str, Any]) -> dict[str, Any]:
    """An alias as sent: {"urn": ...} or the spec's set fields (name, type, parentUrn, noParent, ...)."""
    return dict(sorted(alias.get("spec", alias).items()))


def normalised(value: Any) -> Any:
    """A wire value with secrets, assets, archives and resource references made stable."""
    if isinstance(value, dict):
        signature = value.get(_SIG)
        if signature == _SECRET_SIG:
            return SECRET
        if signature in (_ASSET_SIG, _ARCHIVE_SIG):
            kind = "asset" if signature == _ASSET_SIG else "archive"
            return {kind: _content_digest(value)}
        if signature == _RESOURCE_SIG:
            return {"resource": value["urn"]}
        return {key: normalised(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [normalised(item) for item in value]
    if value == rpc.UNKNOWN:
        return UNKNOWN
    return value


def _content_digest(value: dict[str, Any]) -> str:
    """sha256 of an asset's or archive's content; a remote one keeps its URI."""
    if "uri" in value:
        return value["uri"]
    if "text" in value:
        content = value["text"].encode()
    elif "path" in value:
        content = _path_content(Path(value["path"]))
    else:  # an AssetArchive: its members, each by content
        members = {name: normalised(member) for name, member in value["assets"].items()}
        content = json.dumps(members, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _path_content(path: Path) -> bytes:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return b"".join(
            p.relative_to(path).as_posix().encode()
            + b"\0"
            + hashlib.sha256(p.read_bytes()).digest()
            for p in files
        )
    return path.read_bytes()


def write_graphs(stacks: tuple[str, ...], directory: Path) -> list[Path]:
    written = []
    for stack in stacks:
        path = graph_path(stack, directory)
        path.write_text(render(program_graph(stack)))
        written.append(path)
    return written


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
