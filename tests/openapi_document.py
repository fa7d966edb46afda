"""The OpenAPI description (handlers/openapi.yaml) as tests use it.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so bodies are validated with
`jsonschema` against the schemas where they stand in the document (their
`$ref`s resolve inside it), with formats such as `date-time` checked, and
patterns read as ECMA-262 regular expressions, as JSON Schema says (and
schemathesis reads them): a closing `$` is the end of the string, where
Python's `$` also matches before a final newline.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests
import yaml
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "handlers" / "openapi.yaml"
DOCUMENT_URI = "urn:securebase:analytics:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = "application/json"


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    end_anchored = pattern.endswith("$") and not pattern.endswith("\\$")
    if not re.search(pattern[:-1] + r"\Z" if end_anchored else pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


SchemaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@functools.cache
def document() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI_PATH.read_text())


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def pointer(*parts: str) -> str:
    """A JSON pointer into the document: `pointer("paths", "/analytics/usage")`."""
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def resolve(location: str) -> Any:
    """The document's node at a `#/...` pointer."""
    node: Any = document()
    for part in location.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validator_at(location: str) -> Any:
    """Validates instances against the schema at `location` (a `#/...` pointer)."""
    return SchemaValidator(
        {"$ref": f"{DOCUMENT_URI}{location}"},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def component_validator(name: str) -> Any:
    return validator_at(pointer("components", "schemas", name))


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation in the document."""
    for path, item in document()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def response_location(method: str, path: str, status: int) -> str | None:
    """Where the documented response for `status` is; None when it is not documented."""
    location = pointer("paths", path, method.lower(), "responses", str(status))
    try:
        response = resolve(location)
    except KeyError:
        return None
    return response.get("$ref", location)


def assert_conforms(response: requests.Response, method: str, path: str) -> Any:
    """Asserts the response is documented for the operation, has the required headers it
    documents and a matching body; returns the body."""
    location = response_location(method, path, response.status_code)
    assert location is not None, (
        f"{method} {path} answered {response.status_code}, which the description does not list:"
        f" {response.text[:500]}"
    )
    documented: Mapping[str, Any] = resolve(location)
    for name, header in documented.get("headers", {}).items():
        header = resolve(header["$ref"]) if "$ref" in header else header
        if header.get("required"):
            assert name in response.headers, f"{method} {path} {response.status_code}: no {name}"
            errors = [
                e.message
                for e in SchemaValidator(header["schema"]).iter_errors(response.headers[name])
            ]
            assert not errors, f"{method} {path} {response.status_code} {name}: {errors}"
    if "content" not in documented:
        assert response.content == b"", f"{method} {path} {response.status_code} has a body"
        return None
    assert response.headers["Content-Type"].startswith(JSON)
    body = response.json()
    errors = sorted(
        validator_at(f"{location}/content/{pointer(JSON)[2:]}/schema").iter_errors(body),
        key=str,
    )
    assert not errors, f"{method} {path} {response.status_code}: " + "; ".join(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors[:5]
    )
    return body
