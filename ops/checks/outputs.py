"""A stack's outputs (`pulumi stack output --json`), read by name.

Every accessor raises `MissingOutput` naming the output, so a check whose
resource was never exported fails with that name instead of a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ops.checks.base import MissingOutput

# What `pulumi stack output --json --show-secrets=false` prints for a secret.
SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - a placeholder, not a secret


class StackOutputs:
    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def value(self, key: str) -> Any:
        value = self._values.get(key)
        if value is None or value == "":
            raise MissingOutput(f"stack output {key!r} is missing")
        if value == SECRET_PLACEHOLDER:
            raise MissingOutput(f"stack output {key!r} is a secret; it must be a plain value")
        return value

    def text(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str):
            raise MissingOutput(f"stack output {key!r} must be a string; got {value!r}")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.value(key)
        if not isinstance(value, dict):
            raise MissingOutput(f"stack output {key!r} must be an object; got {value!r}")
        return value

    def entry(self, key: str, name: str) -> str:
        value = self.mapping(key).get(name)
        if not isinstance(value, str) or not value:
            raise MissingOutput(f"stack output {key!r} has no entry {name!r}")
        return value

    def names(self, key: str) -> list[str]:
        value = self.value(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise MissingOutput(f"stack output {key!r} must be a list of names; got {value!r}")
        return value

    def has(self, key: str) -> bool:
        return self._values.get(key) not in (None, "", SECRET_PLACEHOLDER)
