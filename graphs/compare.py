"""Two graphs of one stack compared the way the engine would compare state and program.

The engine looks each registered resource up in the old state by its URN, then
by its aliases (pkg/resource/deploy/step_generator.go: generateAliases,
collapseAliasToUrn, inheritedChildAlias): a child also answers to its name
under each alias its parent matched, with the parent's old name in place of the
new one at the front of its name. Old resources nothing matches are deleted.

A stateful resource (a type in replacements.RULES that holds data, or anything
`protect`ed) that would be deleted or replaced is a Violation unless
acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphs.replacements import (
    PROVIDER_INPUTS,
    PROVIDER_SOURCE,
    PROVIDER_TYPE,
    RULES,
    forcing_values,
    holds_data,
)
from tests.pulumi_program import ROOT_STACK_TYPE, engine_urn

# Options whose change the diff reports (aliases and dependencies change nothing in the cloud).
REPORTED_OPTIONS = ("protect", "retainOnDelete", "deleteBeforeReplace", "ignoreChanges")

Graph = Mapping[str, Any]
Resource = Mapping[str, Any]


@dataclass(frozen=True)
class Forced:
    """A value whose change replaces the resource."""

    name: str
    old: Any
    new: Any
    source: str  # where the provider documents it; "" when it is the engine's own rule

    def __str__(self) -> str:
        see = f" (see {self.source})" if self.source else ""
        return f"{self.name} changes from {_short(self.old)} to {_short(self.new)}{see}"


@dataclass(frozen=True)
class Change:
    old: Resource
    new: Resource
    inputs: tuple[str, ...]  # changed top-level inputs
    options: tuple[str, ...]  # changed options, parent and provider
    forced: tuple[Forced, ...]  # what replaces it

    @property
    def renamed(self) -> bool:
        return self.old["urn"] != self.new["urn"]


@dataclass(frozen=True)
class Violation:
    urn: str  # the URN in the base graph: what an acknowledgement names
    type: str
    what: str  # "deleted" or "replaced"
    why: str
    loses: str
    acknowledged: str | None = None  # the acknowledgement's reason


@dataclass
class GraphDiff:
    stack: str
    added: list[Resource] = field(default_factory=list)
    removed: list[Resource] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def unacknowledged(self) -> list[Violation]:
        return [v for v in self.violations if v.acknowledged is None]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def urn_type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def urn_name(urn: str) -> str:
    return urn.split("::", 3)[3]


def _root_or_empty(parent: str) -> str:
    return "" if not parent or urn_type(parent) == ROOT_STACK_TYPE else parent


def _collapse(resource: Resource, alias: Mapping[str, Any], stack: str, matched: dict) -> str:
    """collapseAliasToUrn: an alias spec made a URN, unset fields taken from the resource."""
    if alias.get("urn"):
        return alias["urn"]
    # An old parent that matched through an alias stands for its old URN.
    parent = alias.get("parentUrn") or ""
    parent = matched.get(parent, parent) if parent else resource["parent"]
    if alias.get("noParent"):
        parent = ""
    return engine_urn(
        alias.get("stack") or stack,
        _root_or_empty(parent),
        alias.get("type") or resource["type"],
        alias.get("name") or resource["name"],
    )


def _inherited(child_type: str, child_name: str, parent_name: str, parent_alias: str) -> str:
    """inheritedChildAlias: the child under its parent's old URN, renamed like its parent."""
    if child_name.startswith(parent_name):
        child_name = urn_name(parent_alias) + child_name[len(parent_name) :]
    stack = parent_alias.split("::")[0].removeprefix("urn:pulumi:")
    return engine_urn(stack, parent_alias, child_type, child_name)


def aliases(resource: Resource, stack: str, matched: dict[str, str]) -> list[str]:
    """generateAliases: every old URN the engine looks `resource` up by, in its order."""
    own = [_collapse(resource, alias, stack, matched) for alias in resource["aliases"]]
    found = list(own)
    parent_alias = matched.get(resource["parent"])
    if parent_alias:
        parent_name = urn_name(resource["parent"])
        found.append(_inherited(resource["type"], resource["name"], parent_name, parent_alias))
        found += [_inherited(urn_type(a), urn_name(a), parent_name, parent_alias) for a in own]
    return list(dict.fromkeys(found))


def match(old: Graph, new: Graph) -> dict[str, str]:
    """New URN -> the old URN it continues, looked up by URN first, then by alias."""
    olds = {r["urn"] for r in old["resources"]}
    news = {r["urn"]: r for r in new["resources"]}

    def depth(resource: Resource) -> int:
        parent = news.get(resource["parent"])
        return 0 if parent is None else 1 + depth(parent)

    continued: dict[str, str] = {}
    through_alias: dict[str, str] = {}  # the engine's sg.aliases
    for resource in sorted(news.values(), key=lambda r: (depth(r), r["urn"])):
        urn = resource["urn"]
        for candidate in [urn, *aliases(resource, new["stack"], through_alias)]:
            if candidate in olds and candidate not in continued.values():
                continued[urn] = candidate
                if candidate != urn:
                    through_alias[urn] = candidate
                break
    return continued


def is_stateful(resource: Resource) -> bool:
    return holds_data(resource["type"]) or bool(resource["protect"])


def compare(old: Graph, new: Graph, acknowledgements: Mapping[str, str] | None = None) -> GraphDiff:
    """What changes from `old` to `new`; acknowledgements: URN -> reason."""
    acknowledgements = acknowledgements or {}
    continued = match(old, new)
    olds = {r["urn"]: r for r in old["resources"]}
    news = {r["urn"]: r for r in new["resources"]}
    diff = GraphDiff(stack=new["stack"])
    diff.added = [r for urn, r in news.items() if urn not in continued]
    kept = set(continued.values())
    diff.removed = [r for urn, r in olds.items() if urn not in kept]

    for new_urn, old_urn in sorted(continued.items(), key=lambda item: item[1]):
        change = _change(olds[old_urn], news[new_urn], continued, olds, news)
        if change.inputs or change.options or change.forced or change.renamed:
            diff.changed.append(change)
        if change.forced and is_stateful(change.old):
            why = "; ".join(str(f) for f in change.forced)
            diff.violations.append(_violation(change.old, "replaced", why, acknowledgements))

    for resource in diff.removed:
        if is_stateful(resource):
            why = "its URN is gone and no resource of the program has an alias for it" + (
                " (retainOnDelete keeps the cloud resource, unmanaged)"
                if resource["retainOnDelete"]
                else ""
            )
            diff.violations.append(_violation(resource, "deleted", why, acknowledgements))
    diff.violations.sort(key=lambda v: v.urn)
    return diff


def _violation(
    resource: Resource, what: str, why: str, acknowledgements: Mapping[str, str]
) -> Violation:
    rule = RULES.get(resource["type"])
    loses = rule.loses if rule and holds_data(resource["type"]) else "a protected resource"
    return Violation(
        urn=resource["urn"],
        type=resource["type"],
        what=what,
        why=why,
        loses=loses,
        acknowledged=acknowledgements.get(resource["urn"]),
    )


def _change(
    old: Resource,
    new: Resource,
    continued: Mapping[str, str],
    olds: Mapping[str, Resource],
    news: Mapping[str, Resource],
) -> Change:
    names = sorted(set(old["inputs"]) | set(new["inputs"]))
    inputs = tuple(n for n in names if old["inputs"].get(n) != new["inputs"].get(n))
    options = [o for o in REPORTED_OPTIONS if old[o] != new[o]]
    if continued.get(new["parent"], new["parent"]) != old["parent"]:
        options.append("parent")
    provider_moved = continued.get(new["provider"], new["provider"]) != old["provider"]
    if provider_moved:
        options.append("provider")
    return Change(
        old=old,
        new=new,
        inputs=inputs,
        options=tuple(options),
        forced=tuple(_forced(old, new, provider_moved, olds, news)),
    )


def _forced(
    old: Resource,
    new: Resource,
    provider_moved: bool,
    olds: Mapping[str, Resource],
    news: Mapping[str, Resource],
) -> list[Forced]:
    forced = []
    if new["custom"] and old["type"] != new["type"]:
        forced.append(Forced("type", old["type"], new["type"], ""))
    if new["custom"] and provider_moved:
        forced.append(Forced("provider", old["provider"], new["provider"], ""))
    before, after = forcing_values(old), forcing_values(new)
    changed = {
        n for n in set(before) | set(after) if before.get(n, (None,))[0] != after.get(n, (None,))[0]
    }
    for name in sorted(changed):
        if name.split(" ")[0] in changed - {name}:
            continue  # "hashKey type" when hashKey itself changes: once is enough
        (was, source), (now, _) = before.get(name, (None, "")), after.get(name, (None, ""))
        forced.append(Forced(name, was, now, source or after[name][1]))
    old_provider, new_provider = olds.get(old["provider"]), news.get(new["provider"])
    if old_provider and new_provider and old_provider["type"] == PROVIDER_TYPE:
        for name in PROVIDER_INPUTS:
            if old_provider["inputs"].get(name) != new_provider["inputs"].get(name):
                forced.append(
                    Forced(
                        f"provider {name}",
                        old_provider["inputs"].get(name),
                        new_provider["inputs"].get(name),
                        PROVIDER_SOURCE,
                    )
                )
    return forced


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 3] + "..."
