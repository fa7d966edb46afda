"""The figures `make bench` reports, their targets, the printed table and the JSON file (pure)."""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.imports import API_HANDLERS, HANDLERS
from bench.pulumi_program import STACKS
from bench.reports import CASES as REPORT_CASES
from components.functions import ALL_FUNCTIONS

MISSING = "missing"

_COMPARISONS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    "==": operator.eq,
}
_SYMBOLS = {"<=": "≤", "<": "<", ">=": "≥", "==": "="}


@dataclass(frozen=True)
class Target:
    comparison: str  # one of _COMPARISONS
    value: float

    def met(self, measured: Any) -> bool:
        return isinstance(measured, int | float) and _COMPARISONS[self.comparison](
            measured, self.value
        )

    def __str__(self) -> str:
        return f"{_SYMBOLS[self.comparison]} {format_value(self.value)}"


@dataclass(frozen=True)
class Figure:
    """A dotted key into the results, and its target if the issue sets one."""

    key: str
    target: Target | None = None


AGGREGATOR_SIZES = (1_000, 10_000, 100_000)
AGGREGATOR_CALLS_LIMIT = 1.02
# A whole aggregator run at the largest size, and any invocation's share of its timeout.
WALL_TIME_TARGET_SECONDS = 300
TIMEOUT_SHARE_LIMIT = 1 / 3
PEAK_RSS_LIMIT_MB = 256
XLSX_MIN_ROWS_PER_S = 3000
IMPORT_RATIO_LIMIT = 1.5
LAYER_LIMIT_BYTES = 8_300_000
# 20 clients, 500 requests, an idle 2-core machine.
LOCAL_KEEP_ALIVE_P95_MS = 100
LOCAL_NEW_CONNECTION_P95_MS = 150


def function_key(key: str) -> str:
    """A function key as an identifier (report-engine -> report_engine), like every result key."""
    return key.replace("-", "_")


# Every figure the issue asks for, in the order of the printed table.
FIGURES: tuple[Figure, ...] = (
    Figure("aggregator.calls_vs_minimum", Target("<=", AGGREGATOR_CALLS_LIMIT)),
    Figure("aggregator.ce_calls_when_not_due", Target("==", 0)),
    *(
        figure
        for size in AGGREGATOR_SIZES
        for figure in (
            Figure(f"aggregator.t{size}.calls_vs_minimum", Target("<=", AGGREGATOR_CALLS_LIMIT)),
            Figure(f"aggregator.t{size}.shards"),
            Figure(
                f"aggregator.t{size}.modeled_wall_seconds",
                Target("<", WALL_TIME_TARGET_SECONDS) if size == max(AGGREGATOR_SIZES) else None,
            ),
            Figure(f"aggregator.t{size}.modeled_wall_seconds_costs_not_due"),
            Figure(
                f"aggregator.t{size}.largest_timeout_share",
                Target("<=", round(TIMEOUT_SHARE_LIMIT, 3)),
            ),
        )
    ),
    Figure("query.dynamodb_requests_cold_365d", Target("<=", 4)),
    Figure("query.dynamodb_requests_warm", Target("==", 1)),
    *(
        figure
        for case in REPORT_CASES
        for figure in (
            Figure(
                f"reports.{case.key}.rows_per_s",
                Target(">=", XLSX_MIN_ROWS_PER_S) if case.format == "xlsx" else None,
            ),
            Figure(f"reports.{case.key}.peak_rss_mb", Target("<", PEAK_RSS_LIMIT_MB)),
        )
    ),
    *(
        Figure(
            f"imports.{handler}.ratio_to_boto3",
            Target("<=", IMPORT_RATIO_LIMIT) if handler in API_HANDLERS else None,
        )
        for handler in HANDLERS
    ),
    *(Figure(f"artifacts.{function_key(spec.key)}_bytes") for spec in ALL_FUNCTIONS),
    Figure("artifacts.layer_bytes", Target("<", LAYER_LIMIT_BYTES)),
    Figure("artifacts.auth_layer_bytes"),
    Figure("local_api.keep_alive.p50_ms"),
    Figure("local_api.keep_alive.p95_ms", Target("<", LOCAL_KEEP_ALIVE_P95_MS)),
    Figure("local_api.keep_alive.errors", Target("==", 0)),
    Figure("local_api.new_connection.p50_ms"),
    Figure("local_api.new_connection.p95_ms", Target("<", LOCAL_NEW_CONNECTION_P95_MS)),
    Figure("local_api.new_connection.errors", Target("==", 0)),
    Figure("monitor.get_metric_data_calls", Target("==", 1)),
    *(Figure(f"pulumi.program_seconds.{stack}") for stack in STACKS),
    *(Figure(f"pulumi.resources.{stack}") for stack in STACKS),
)


def lookup(results: Mapping[str, Any], key: str) -> Any:
    """`results["a"]["b"]` for "a.b"; MISSING when any level is absent."""
    node: Any = results
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0")


@dataclass(frozen=True)
class Check:
    key: str
    value: Any
    target: Target | None

    @property
    def met(self) -> bool | None:
        """None when the issue sets no target for the figure."""
        return None if self.target is None else self.target.met(self.value)


def checks(results: Mapping[str, Any], figures: tuple[Figure, ...] = FIGURES) -> list[Check]:
    return [Check(figure.key, lookup(results, figure.key), figure.target) for figure in figures]


def targets_section(all_checks: list[Check]) -> dict[str, dict[str, Any]]:
    """What goes under "targets" in the JSON: each targeted figure, its target and verdict."""
    return {
        check.key: {"target": str(check.target), "met": check.met}
        for check in all_checks
        if check.target is not None
    }


def table(all_checks: list[Check]) -> str:
    """The printed table: key, value, target, met?"""
    header = ("key", "value", "target", "met")
    rows = [
        (
            check.key,
            format_value(check.value),
            "" if check.target is None else str(check.target),
            "" if check.met is None else ("yes" if check.met else "NO"),
        )
        for check in all_checks
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if column == 1 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def markdown_table(all_checks: list[Check]) -> str:
    """The same table as Markdown, as in docs/performance.md."""
    lines = ["| figure | value | target | met |", "|---|---:|---|---|"]
    for check in all_checks:
        target = "" if check.target is None else str(check.target)
        met = "" if check.met is None else ("yes" if check.met else "**no**")
        lines.append(f"| `{check.key}` | {format_value(check.value)} | {target} | {met} |")
    return "\n".join(lines)


def write_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """The JSON appears whole or not at all: written beside the target, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
