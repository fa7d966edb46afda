"""The results as an aligned table, a summary line, JSON and Markdown."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ops.checks.base import CheckResult, Status

HEADERS = ("STATUS", "CHECK", "DETAIL")


@dataclass(frozen=True)
class Summary:
    stack: str
    counts: dict[Status, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.counts[Status.FAIL] == 0

    def line(self) -> str:
        parts = ", ".join(
            f"{self.counts[status]} {label}"
            for status, label in (
                (Status.PASS, "passed"),
                (Status.FAIL, "failed"),
                (Status.WARN, "warnings"),
                (Status.SKIP, "skipped"),
            )
        )
        verdict = "OK" if self.ok else "FAILED"
        return f"{verdict}: {self.stack}: {self.total} checks: {parts}"


def summarize(stack: str, results: Sequence[CheckResult]) -> Summary:
    counted = Counter(result.status for result in results)
    return Summary(stack, {status: counted.get(status, 0) for status in Status})


def table(results: Sequence[CheckResult]) -> str:
    rows = [HEADERS, *((r.status.value, r.name, r.detail) for r in results)]
    status_width = max(len(row[0]) for row in rows)
    check_width = max(len(row[1]) for row in rows)
    return "\n".join(
        f"{status:<{status_width}}  {check:<{check_width}}  {detail}".rstrip()
        for status, check, detail in rows
    )


def as_json(summary: Summary, results: Sequence[CheckResult]) -> str:
    return json.dumps(
        {
            "stack": summary.stack,
            "ok": summary.ok,
            "counts": {status.value: count for status, count in summary.counts.items()},
            "checks": [result.as_dict() for result in results],
        },
        indent=2,
    )


def markdown(summary: Summary, results: Sequence[CheckResult]) -> str:
    """For a CI job summary: what needs attention first, everything in a fold."""
    attention = [r for r in results if r.status in (Status.FAIL, Status.WARN)]
    lines = [f"### Deployment validation: {summary.stack}", "", f"**{summary.line()}**", ""]
    if attention:
        lines += [*_markdown_table(attention), ""]
    lines += [
        "<details><summary>All checks</summary>",
        "",
        *_markdown_table(results),
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def _markdown_table(results: Sequence[CheckResult]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    return [
        "| status | check | detail |",
        "|---|---|---|",
        *(f"| {r.status.value} | {cell(r.name)} | {cell(r.detail)} |" for r in results),
    ]
