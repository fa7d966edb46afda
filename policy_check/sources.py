"""Where the program declares a resource: the file and the logical name a reviewer should read.

The Pulumi SDK sends, with every registration, the Python stack that
constructed the resource (innermost frame first; the engine shows the first
as the resource's source position), and the mocks record it. The declaration
is the innermost frame in the program's own code (`__main__.py`, `components/`)
unless that frame only passes on a logical name it was given as a parameter,
as helpers do (`_table(resource_name, ...)`, `SecureBucket(name, ...)`): then
the caller, where the name is built, declares it. The region is the logical
name argument of that call, so the location follows the code when lines move.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.pulumi_program import Deployment, Resource

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ("__main__.py", "components")


@dataclass(frozen=True)
class SourceRegion:
    """Lines and columns are 1-based, columns in characters; end_column is exclusive (SARIF)."""

    path: str  # relative to the repository, with "/" separators
    start_line: int
    start_column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.start_line}"


def declaration(deployment: Deployment, resource: Resource) -> SourceRegion | None:
    """The resource's declaration, else its nearest ancestor's (a component declares its children)."""
    current: Resource | None = resource
    while current is not None:
        region = declared_at(current.registered_at)
        if region is not None:
            return region
        current = next((r for r in deployment.resources if r.urn == current.parent), None)
    return None


def declared_at(frames: Sequence[tuple[Path, int]], root: Path = ROOT) -> SourceRegion | None:
    """The call that names the resource, from its registration stack (innermost frame first)."""
    program = [(path, line) for path, line in frames if _in_program(path, root)]
    for index, (path, line) in enumerate(program):
        call = _call_at(_parse(path), line)
        name = _logical_name(call) if call is not None else None
        if name is None:
            return _region(path, root, line, None)
        if _is_parameter(name, _parse(path), call) and index + 1 < len(program):
            continue
        return _region(path, root, line, name)
    return None


def _in_program(path: Path, root: Path) -> bool:
    try:
        relative = path.relative_to(root)
    except ValueError:
        return False
    return relative.parts[0] in PROGRAM and relative.suffix == ".py"


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _call_at(module: ast.Module, line: int) -> ast.Call | None:
    """The call a frame stopped at: the outermost call whose callee ends on the frame's line."""
    for node in ast.walk(module):  # breadth first: outer calls come first
        if isinstance(node, ast.Call) and node.func.end_lineno == line:
            return node
    return None


def _logical_name(call: ast.Call) -> ast.expr | None:
    """The first argument of Pulumi resources, components and our helpers alike."""
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return next(
        (kw.value for kw in call.keywords if kw.arg in ("resource_name", "name")),
        None,
    )


def _is_parameter(name: ast.expr, module: ast.Module, call: ast.Call) -> bool:
    if not isinstance(name, ast.Name):
        return False
    function = _enclosing_function(module, call)
    if function is None:
        return False
    arguments = function.args
    parameters = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return name.id in {parameter.arg for parameter in parameters}


def _enclosing_function(
    module: ast.Module, call: ast.Call
) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | None:
    def functions() -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda]:
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and (
                node.lineno <= call.lineno and call.end_lineno <= (node.end_lineno or 0)
            ):
                yield node

    # The innermost one starts last.
    return max(functions(), key=lambda node: (node.lineno, node.col_offset), default=None)


def _region(path: Path, root: Path, line: int, name: ast.expr | None) -> SourceRegion:
    relative = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    if name is None or name.end_lineno is None or name.end_col_offset is None:
        return SourceRegion(relative, line, 1, line, len(lines[line - 1]) + 1)
    return SourceRegion(
        relative,
        name.lineno,
        _characters(lines[name.lineno - 1], name.col_offset) + 1,
        name.end_lineno,
        _characters(lines[name.end_lineno - 1], name.end_col_offset) + 1,
    )


def _characters(line: str, byte_offset: int) -> int:
    """ast offsets count UTF-8 bytes; SARIF columns here count characters."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8"))
