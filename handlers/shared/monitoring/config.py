"""The monitor's config: the MONITOR_CONFIG JSON, validated (pure).

The same JSON is the Lambda's MONITOR_CONFIG variable and the stack output
`monitor_config` the CI command reads, so both run with identical resources and
thresholds. Every error names the field (`MONITOR_CONFIG.thresholds.api_latency_ms`)
and says what is allowed and what was given. Unknown fields are rejected: a
misspelt threshold would otherwise silently fall back to nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# 1-minute datapoints are kept for 15 days, and the window must fit in them.
MAX_LOOKBACK_HOURS = 336
MAX_OBSERVATION_DAYS = 90
# Caps that keep the largest config inside one GetMetricData call (500 queries):
# 50 functions x 5 + 50 tables x 4 + Aurora 8 + API 5 = 463.
MAX_FUNCTIONS = 50
MAX_TABLES = 50

_CLUSTER_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9._:/-]{1,255}$")
_HTTP_API_ID = re.compile(r"^[a-z0-9]{10}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_TOP_LEVEL = {
    "aurora_cluster_id",
    "function_names",
    "api",
    "table_names",
    "lookback_hours",
    "window",
    "thresholds",
}


class ConfigError(ValueError):
    """The monitor config is invalid; the message names the field."""


@dataclass(frozen=True)
class ApiTarget:
    """The Phase 2 API: a REST API (by name) or an HTTP API (by id)."""

    kind: str  # "rest" | "http"
    identifier: str  # the REST API's name or the HTTP API's id

    @property
    def dimension(self) -> str:
        return "ApiName" if self.kind == "rest" else "ApiId"


@dataclass(frozen=True)
class ObservationWindow:
    start: dt.date
    days: int

    @property
    def last_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)


@dataclass(frozen=True)
class Thresholds:
    lambda_error_rate_percent: float
    lambda_max_throttles: float
    api_5xx_rate_percent: float
    api_latency_ms: float
    aurora_cpu_percent: float
    aurora_max_connections: float


@dataclass(frozen=True)
class MonitorConfig:
    aurora_cluster_id: str
    function_names: tuple[str, ...]
    api: ApiTarget
    table_names: tuple[str, ...]
    lookback_hours: int
    window: ObservationWindow | None
    thresholds: Thresholds


def load_config(text: str, source: str) -> MonitorConfig:
    """Parses the JSON text; `source` (a variable or file name) prefixes error messages."""
    try:
        document = json.loads(text)
        # `pulumi stack output --json` of a string output is the JSON text, quoted.
        if isinstance(document, str):
            document = json.loads(document)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source} is not valid JSON: {error}") from None
    return parse_config(document, source)


def parse_config(document: Any, source: str = "MONITOR_CONFIG") -> MonitorConfig:
    fields = _Fields(document, source)
    fields.reject_unknown(_TOP_LEVEL)
    return MonitorConfig(
        aurora_cluster_id=fields.string(
            "aurora_cluster_id", _CLUSTER_ID, "an Aurora cluster identifier"
        ),
        function_names=fields.names("function_names", "Lambda function names", MAX_FUNCTIONS),
        api=_parse_api(fields.section("api")),
        table_names=fields.names("table_names", "DynamoDB table names", MAX_TABLES),
        lookback_hours=fields.integer("lookback_hours", 1, MAX_LOOKBACK_HOURS, default=24),
        window=_parse_window(fields.section("window")) if "window" in fields.values else None,
        thresholds=_parse_thresholds(fields.section("thresholds")),
    )


def _parse_api(fields: _Fields) -> ApiTarget:
    if fields.choice("kind", ("rest", "http")) == "rest":
        fields.reject_unknown({"kind", "name"})
        return ApiTarget("rest", fields.string("name", _RESOURCE_NAME, "the REST API's name"))
    fields.reject_unknown({"kind", "id"})
    return ApiTarget(
        "http",
        fields.string("id", _HTTP_API_ID, "the HTTP API's id (10 lowercase letters or digits)"),
    )


def _parse_window(fields: _Fields) -> ObservationWindow:
    fields.reject_unknown({"start", "days"})
    return ObservationWindow(
        start=fields.date("start"),
        days=fields.integer("days", 1, MAX_OBSERVATION_DAYS),
    )


def _parse_thresholds(fields: _Fields) -> Thresholds:
    names = {
        "lambda_error_rate_percent": 100.0,
        "lambda_max_throttles": None,
        "api_5xx_rate_percent": 100.0,
        "api_latency_ms": None,
        "aurora_cpu_percent": 100.0,
        "aurora_max_connections": None,
    }
    fields.reject_unknown(set(names))
    return Thresholds(**{name: fields.number(name, high) for name, high in names.items()})


class _Fields:
    """Typed reads from one JSON object, with errors that carry the field's path."""

    def __init__(self, values: Any, path: str):
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path} must be a JSON object; got {_kind(values)}")
        self.values: Mapping[str, Any] = values
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}"

    def fail(self, key: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{self.name(key)} must be {expected}; got {got!r}")

    def required(self, key: str, expected: str) -> Any:
        if key not in self.values:
            raise ConfigError(f"{self.name(key)} is required: set it to {expected}")
        return self.values[key]

    def reject_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.values) - allowed)
        if unknown:
            raise ConfigError(
                f"{self.path} has unknown field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )

    def section(self, key: str) -> _Fields:
        return _Fields(self.required(key, "a JSON object"), self.name(key))

    def string(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.required(key, expected)
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(key, expected, value)
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        expected = "one of " + ", ".join(allowed)
        value = self.required(key, expected)
        if value not in allowed:
            raise self.fail(key, expected, value)
        return value

    def names(self, key: str, expected: str, most: int) -> tuple[str, ...]:
        description = f"a list of 1 to {most} unique {expected}"
        value = self.required(key, description)
        if not isinstance(value, list) or not 1 <= len(value) <= most:
            raise self.fail(key, description, value)
        for index, item in enumerate(value):
            if not isinstance(item, str) or not _RESOURCE_NAME.match(item):
                raise self.fail(f"{key}[{index}]", f"one of the {expected}", item)
        if len(set(value)) != len(value):
            duplicates = sorted({item for item in value if value.count(item) > 1})
            raise self.fail(key, description, f"duplicates {duplicates}")
        return tuple(value)

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        expected = f"a whole number from {low} to {high}"
        if key not in self.values and default is not None:
            return default
        value = self.required(key, expected)
        # bool is an int in Python; `true` is never meant as a number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, expected, value)
        if not float(value).is_integer() or not low <= value <= high:
            raise self.fail(key, expected, value)
        return int(value)

    def number(self, key: str, high: float | None) -> float:
        expected = "a number >= 0" if high is None else f"a number from 0 to {high:g}"
        value = self.required(key, expected)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, expected, value)
        if value < 0 or (high is not None and value > high):
            raise self.fail(key, expected, value)
        return float(value)

    def date(self, key: str) -> dt.date:
        expected = "a date as YYYY-MM-DD"
        value = self.required(key, expected)
        if isinstance(value, str) and _DATE.match(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:  # 2026-02-30
                pass
        raise self.fail(key, expected, value)


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "null"}.get(type(value), repr(value))
