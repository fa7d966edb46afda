"""The toolkit every rule module builds on.

Rules never touch pulumi_policy's arguments directly. They receive a `Resource`
(or a `Stack` of them) whose properties are plain Python values, with every
value the engine could not know yet (`pulumi preview` of a new resource) replaced
by the `UNKNOWN` marker, and yield `Finding`s. The wrappers here turn findings
into violation messages of one shape:

    <type> '<name>': <what is wrong>. Fix: <how to fix it>

Unknown values are handled deliberately: a rule that cannot decide because a
value is unknown reports nothing. Policies run again during `pulumi up`, when
every input of a resource is known before the resource is created, so a real
violation still stops the update.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

_UNKNOWN_SENTINELS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class _Unknown:
    """A value the engine does not know yet (computed during the update)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Any = _Unknown()


def plain(value: Any) -> Any:
    """Copies engine properties into plain dicts and lists, unknowns as `UNKNOWN`.

    pulumi_policy wraps properties in a proxy that raises `UnknownValueError` on
    any access to an unknown value; iterating keys and lengths never raises, so
    each value is read once here and the rules never meet the exception.
    """
    if isinstance(value, str | bytes):
        return UNKNOWN if value in _UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                result[key] = plain(value[key])
            except UnknownValueError:
                result[key] = UNKNOWN
        return result
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


@dataclass(frozen=True)
class Resource:
    """One resource as a rule sees it: plain properties plus what the engine adds."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False
    # The properties of the provider that manages the resource (default tags...).
    provider_props: Mapping[str, Any] | None = None
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, *path: str | int) -> Any:
        """The value at `path`; `UNKNOWN` if it or a value on the way is unknown, None if absent."""
        current: Any = self.props
        for key in path:
            if current is UNKNOWN:
                return UNKNOWN
            if isinstance(key, int):
                if not isinstance(current, list) or not -len(current) <= key < len(current):
                    return None
                current = current[key]
            elif isinstance(current, Mapping):
                current = current.get(key)
            else:
                return None
            if current is None:
                return None
        return current

    @classmethod
    def from_validation_args(cls, args: ResourceValidationArgs) -> Resource:
        return cls._of(args)

    @classmethod
    def from_policy_resource(cls, resource: PolicyResource) -> Resource:
        return cls._of(
            resource,
            dependencies=tuple(dependency.urn for dependency in resource.dependencies),
            property_dependencies={
                prop: tuple(dependency.urn for dependency in dependencies)
                for prop, dependencies in resource.property_dependencies.items()
            },
        )

    @classmethod
    def _of(cls, source: ResourceValidationArgs | PolicyResource, **relations: Any) -> Resource:
        """What the engine tells about a resource in both forms it hands one over."""
        return cls(
            type=source.resource_type,
            name=source.name,
            urn=source.urn,
            props=plain(source.props),
            protect=bool(source.opts.protect),
            provider_props=plain(source.provider.props) if source.provider is not None else None,
            **relations,
        )


class Stack:
    """Every resource of the stack, for rules that relate resources to each other."""

    def __init__(self, resources: Iterable[Resource]):
        self.resources = tuple(resources)
        self._by_urn = {resource.urn: resource for resource in self.resources}

    def of_type(self, *types: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.type in types]

    def get(self, urn: str) -> Resource | None:
        return self._by_urn.get(urn)


@dataclass(frozen=True)
class Finding:
    resource: Resource
    problem: str
    fix: str

    @property
    def message(self) -> str:
        return (
            f"{self.resource.type} '{self.resource.name}': {self.problem.rstrip('.')}. "
            f"Fix: {self.fix}"
        )


@dataclass(frozen=True)
class Setting:
    """One configurable limit of a policy: its JSON schema and its default."""

    name: str
    description: str
    schema: Mapping[str, Any]
    default: Any

    def json_schema(self) -> dict[str, Any]:
        return {**self.schema, "description": self.description, "default": self.default}


class Config:
    """A policy's configuration: the values from --policy-pack-config over the defaults."""

    def __init__(self, given: Mapping[str, Any] | None, settings: Sequence[Setting]):
        self._values: dict[str, Any] = {setting.name: setting.default for setting in settings}
        self._values.update(given or {})

    def integer(self, name: str) -> int:
        # The engine hands numbers over as floats (protobuf Struct).
        return int(self._values[name])

    def strings(self, name: str) -> tuple[str, ...]:
        return tuple(str(value) for value in self._values[name])

    def mapping(self, name: str) -> dict[str, str]:
        return {str(key): str(value) for key, value in self._values[name].items()}


ResourceCheck = Callable[[Resource, Config], Iterable[Finding]]
StackCheck = Callable[[Stack, Config], Iterable[Finding]]


def _config_schema(settings: Sequence[Setting]) -> PolicyConfigSchema | None:
    if not settings:
        return None
    return PolicyConfigSchema(
        properties={setting.name: setting.json_schema() for setting in settings}
    )


class _Rule:
    """What both kinds of rule share: a check, its settings, and the engine policy they make.

    Listed before the pulumi_policy base class, whose __init__ it calls.
    """

    # The engine's entry point, defined by each kind of rule.
    _validate: Callable[..., None]

    def __init__(
        self,
        *,
        name: str,
        description: str,
        remediation: str,
        severity: Severity,
        check: ResourceCheck | StackCheck,
        settings: Sequence[Setting] = (),
    ):
        self.settings = tuple(settings)
        self._check = check
        super().__init__(
            name=name,
            description=description,
            validate=self._validate,
            config_schema=_config_schema(self.settings),
            severity=severity,
            remediation_steps=remediation,
        )


class ResourceRule(_Rule, ResourceValidationPolicy):
    """A policy that checks each resource of `resource_types` on its own.

    Takes `resource_types` besides the arguments of every rule (see _Rule); its
    `check` is a ResourceCheck.
    """

    _check: ResourceCheck

    def __init__(self, *, resource_types: Iterable[str], **rule: Any):
        self.resource_types = frozenset(resource_types)
        super().__init__(**rule)

    def findings(
        self, resource: Resource, config: Mapping[str, Any] | None = None
    ) -> list[Finding]:
        if resource.type not in self.resource_types:
            return []
        return list(self._check(resource, Config(config, self.settings)))

    def _validate(self, args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in self.resource_types:
            return
        resource = Resource.from_validation_args(args)
        for finding in self.findings(resource, args.get_config()):
            report_violation(finding.message, None)


class StackRule(_Rule, StackValidationPolicy):
    """A policy that relates resources to each other across the whole stack."""

    _check: StackCheck

    def findings(self, stack: Stack, config: Mapping[str, Any] | None = None) -> list[Finding]:
        return list(self._check(stack, Config(config, self.settings)))

    def _validate(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        stack = Stack(Resource.from_policy_resource(resource) for resource in args.resources)
        for finding in self.findings(stack, args.get_config()):
            report_violation(finding.message, finding.resource.urn)


@dataclass
class Links:
    """Which resources attach to which target (a policy to its bucket, a queue to its DLQ...)."""

    by_target: dict[str, list[Resource]]
    # Attachments whose target cannot be known yet: a target without attachments
    # may still get one of these, so a rule cannot call it missing.
    unresolved: list[Resource]

    def of(self, target: Resource) -> list[Resource]:
        return self.by_target.get(target.urn, [])

    def undecided(self, target: Resource) -> bool:
        return not self.of(target) and bool(self.unresolved)


def link(
    attachments: Iterable[Resource],
    targets: Sequence[Resource],
    *,
    reference: Callable[[Resource], Any],
    identity: Callable[[Resource], Any],
    prop: str,
) -> Links:
    """Attaches each resource to the target its `prop` refers to.

    `reference` reads the name an attachment refers to, `identity` a target's
    name. When a reference is unknown (during preview, ids and ARNs are), the
    engine's dependency lists still say which target the property came from.
    """
    by_identity: dict[str, Resource] = {}
    identities_known = True
    for target in targets:
        name = identity(target)
        if isinstance(name, str):
            by_identity.setdefault(name, target)
        else:
            identities_known = False
    target_urns = {target.urn: target for target in targets}
    links = Links(by_target={}, unresolved=[])
    for attachment in attachments:
        ref = reference(attachment)
        found = by_identity.get(ref) if isinstance(ref, str) else None
        if found is None:
            candidates = {
                urn
                for urn in (attachment.property_dependencies.get(prop) or attachment.dependencies)
                if urn in target_urns
            }
            if len(candidates) == 1:
                found = target_urns[candidates.pop()]
        if found is not None:
            links.by_target.setdefault(found.urn, []).append(attachment)
        elif ref is UNKNOWN or not identities_known:
            links.unresolved.append(attachment)
    return links


def matches_any(value: str, patterns: Iterable[str]) -> bool:
    """Shell-style patterns (`securebase-*-report-cache`), as config files write them."""
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def known(value: Any) -> bool:
    return value is not UNKNOWN
