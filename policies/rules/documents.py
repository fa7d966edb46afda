"""Reading IAM policy documents: identity policies, trust policies and resource policies.

Pulumi sends policies as JSON strings. `parse` normalises every statement so rules
can ask plain questions: does it allow, which actions, which resources, is the
principal everyone, does it deny requests without TLS.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .framework import UNKNOWN

# Condition keys that narrow a statement for "everyone" to one source, account or
# network: with one of them, Principal "*" is not public.
_NARROWING_CONDITION_KEYS = frozenset(
    {
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:sourceowner",
        "aws:principalorgid",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:sourcevpc",
        "aws:sourcevpce",
    }
)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    # NotAction / NotResource / NotPrincipal: "everything except", as broad as "*".
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    # "*" for `Principal: "*"`, else principal type ("AWS", "Service", ...) -> values.
    principals: Mapping[str, tuple[str, ...]]
    not_principal: bool
    conditions: Mapping[str, Any]

    @property
    def allows(self) -> bool:
        return self.effect == "Allow"

    @property
    def denies(self) -> bool:
        return self.effect == "Deny"

    @property
    def everyone(self) -> bool:
        """The principal is anyone at all (`*` or `{"AWS": "*"}`)."""
        return "*" in self.principals.get("*", ()) or "*" in self.principals.get("AWS", ())

    @property
    def condition_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        for pairs in self.conditions.values():
            if isinstance(pairs, Mapping):
                keys.update(key.lower() for key in pairs)
        return frozenset(keys)

    @property
    def narrowed(self) -> bool:
        return bool(self.condition_keys & _NARROWING_CONDITION_KEYS)

    def allows_action(self, action: str) -> bool:
        """Whether this statement's actions cover `action` (IAM matches case-insensitively)."""
        if self.not_action:
            return True
        return any(_action_matches(pattern, action) for pattern in self.actions)

    @property
    def services(self) -> tuple[str, ...]:
        return self.principals.get("Service", ())


def _action_matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def _principals(value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"*": (value,)}
    if isinstance(value, Mapping):
        return {str(kind): _strings(values) for kind, values in value.items()}
    return {}


def _statement(raw: Mapping[str, Any]) -> Statement:
    conditions = raw.get("Condition")
    return Statement(
        effect=str(raw.get("Effect", "")),
        actions=_strings(raw.get("Action", raw.get("NotAction"))),
        not_action="NotAction" in raw,
        resources=_strings(raw.get("Resource", raw.get("NotResource"))),
        not_resource="NotResource" in raw,
        principals=_principals(raw.get("Principal", raw.get("NotPrincipal"))),
        not_principal="NotPrincipal" in raw,
        conditions=conditions if isinstance(conditions, Mapping) else {},
    )


def parse(document: Any) -> tuple[Statement, ...] | None:
    """The statements of a policy (a JSON string or an object); None if it is not a policy.

    The caller checks for `UNKNOWN` first: a document built from an unknown ARN
    is unknown as a whole during preview.
    """
    if document is UNKNOWN:
        raise ValueError("parse() needs a known document; check for UNKNOWN first")
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return None
    if not isinstance(document, Mapping):
        return None
    raw = document.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        return None
    return tuple(_statement(item) for item in raw if isinstance(item, Mapping))


def unscoped(resource: str) -> bool:
    """`*`, or an ARN whose resource part is `*` (any resource of the service)."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    return len(parts) == 6 and parts[0] == "arn" and parts[5] == "*"


def _is_false(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(
        item is False or (isinstance(item, str) and item.lower() == "false") for item in values
    )


def denies_insecure_transport(statement: Statement, action: str) -> bool:
    """A `Deny` for everyone covering `action` (e.g. "s3:*") when the request is not TLS."""
    if not (statement.denies and statement.everyone):
        return False
    if not (statement.not_action or any(_action_matches(p, action) for p in statement.actions)):
        return False
    for operator in ("Bool", "BoolIfExists"):
        pairs = statement.conditions.get(operator)
        if isinstance(pairs, Mapping):
            for key, value in pairs.items():
                if key.lower() == "aws:securetransport" and _is_false(value):
                    return True
    return False


def locks_everyone_out(statement: Statement) -> bool:
    """A `Deny` for everyone on everything with no condition: only the root user gets back in."""
    return (
        statement.denies
        and statement.everyone
        and not statement.conditions
        and (statement.not_action or any(a == "*" or a.endswith(":*") for a in statement.actions))
    )
