"""What a change is compared with: the graphs and acknowledgements at the merge base.

The base is the merge base of HEAD and the target branch ($GRAPH_BASE if set,
else `main`, else `origin/main`), so a branch is judged by what it changes,
whatever main did meanwhile. Without one (no git, no target branch, or graphs
that do not exist there yet) the base is the committed graph at HEAD, or the
file in the working tree.

An acknowledgement lets the replacement or deletion of one resource through. It
applies to the change that adds it: entries already in the base's file are a
record and let nothing through any more.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graphs import ACKNOWLEDGEMENTS, GRAPH_DIR, ROOT, STACKS, graph_path

TARGET_BRANCHES = ("main", "origin/main")


@dataclass(frozen=True)
class Base:
    where: str  # for messages: "the graphs at <commit> (the merge base with main)"
    graphs: dict[str, dict[str, Any] | None]  # per stack; None: no graph there
    acknowledged: frozenset[tuple[str, str]]  # (urn, reason) already in the base's file


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 (fixed git arguments)
            ["git", "-C", str(root), *args],  # noqa: S607 (git from PATH, like a developer's)
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None


def merge_base(target: str | None = None, root: Path = ROOT) -> tuple[str, str] | None:
    """(commit, branch) for the first target branch HEAD shares history with."""
    target = target or os.environ.get("GRAPH_BASE")
    for branch in (target,) if target else TARGET_BRANCHES:
        commit = _git(root, "merge-base", "HEAD", branch)
        if commit:
            return commit.strip(), branch
    return None


def find_base(
    stacks: tuple[str, ...] = STACKS, target: str | None = None, root: Path = ROOT
) -> Base:
    """The graphs at the merge base with `target` (default: see above), else HEAD's, else on disk."""
    files = {stack: graph_path(stack, root / GRAPH_DIR.name) for stack in stacks}
    acks_file = root / GRAPH_DIR.name / ACKNOWLEDGEMENTS.name

    def at(revision: str, path: Path) -> str | None:
        return _git(root, "show", f"{revision}:{path.relative_to(root).as_posix()}")

    found = merge_base(target, root)
    if found:
        commit, branch = found
        texts = {stack: at(commit, path) for stack, path in files.items()}
        if any(texts.values()):
            acknowledged = read_acknowledgements(at(commit, acks_file) or "", commit)
            return Base(
                where=f"the graphs at {commit[:12]} (the merge base with {branch})",
                graphs={s: json.loads(t) if t else None for s, t in texts.items()},
                acknowledged=frozenset(acknowledged.items()),
            )
    head = {stack: at("HEAD", path) for stack, path in files.items()}
    if any(head.values()):
        graphs = {s: json.loads(t) if t else None for s, t in head.items()}
        return Base("the graphs committed at HEAD", graphs, frozenset())
    graphs = {s: json.loads(p.read_text()) if p.is_file() else None for s, p in files.items()}
    return Base("the graphs in the working tree", graphs, frozenset())


def read_acknowledgements(text: str, where: str) -> dict[str, str]:
    """URN -> reason, from the acknowledgements file's YAML."""
    document = yaml.safe_load(text) or {}
    entries = document.get("acknowledgements") or []
    found: dict[str, str] = {}
    for number, entry in enumerate(entries, 1):
        urn = entry.get("urn") if isinstance(entry, dict) else None
        reason = entry.get("reason") if isinstance(entry, dict) else None
        if not (isinstance(urn, str) and urn.startswith("urn:pulumi:")):
            raise ValueError(f"{where}: entry {number} needs a `urn` (urn:pulumi:...)")
        if not (isinstance(reason, str) and reason.strip()):
            raise ValueError(f"{where}: entry {number} ({urn}) needs a `reason`")
        found[urn] = reason.strip()
    return found


def acknowledgements(base: Base, path: Path = ACKNOWLEDGEMENTS) -> dict[str, str]:
    """The entries of the working tree's file that this change adds."""
    current = read_acknowledgements(path.read_text(), str(path)) if path.is_file() else {}
    return {
        urn: reason for urn, reason in current.items() if (urn, reason) not in base.acknowledged
    }
