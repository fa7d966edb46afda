"""The graph difference of a change, per stack, as Markdown: the pull request comment.

    python -m graphs.diff [--against origin/main] [--output diff.md]
    python -m graphs.diff --base-dir old/ --head-dir new/

By default the new graphs come from running the program under mocks (no cloud
credentials) and the old ones from the merge base (graphs.base). A directory
holds <stack>.json files and, optionally, acknowledged-replacements.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graphs import ACKNOWLEDGEMENTS, STACKS, graph_path
from graphs.base import Base, acknowledgements, find_base, read_acknowledgements
from graphs.compare import Change, GraphDiff, Violation, compare, urn_name

# Identifies the one comment per pull request that graphs.comment updates.
MARKER = "<!-- securebase-analytics:resource-graph -->"
MAX_ROWS = 100  # per stack
MAX_CHARACTERS = 60_000  # GitHub refuses comments over 65,536 characters
FIX = (
    "If it is meant, add the old URN and the reason (the migration, backup or restore"
    " plan) to `graphs/acknowledged-replacements.yaml`; otherwise add an alias or undo"
    " the change."
)


def code(text: str) -> str:
    """Inline code that no value can break out of (backticks, pipes, newlines)."""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def violation_lines(violations: Iterable[Violation]) -> list[str]:
    return [
        f"- {code(v.type)} {code(urn_name(v.urn))} would be **{v.what}**: {v.why}."
        f" It holds {v.loses}. URN: {code(v.urn)}"
        for v in violations
    ]


Row = tuple[str, str, str, str]  # sign, name, type, what


def _row(change: Change) -> Row:
    if change.forced:
        sign, what = "±", "**replace**: " + ", ".join(code(f.name) for f in change.forced)
    else:
        parts = [code(name) for name in (*change.inputs, *change.options)]
        sign, what = "~", "update: " + ", ".join(parts) if parts else ""
    if change.renamed:
        renamed = f"renamed from {code(urn_name(change.old['urn']))} (alias)"
        what = f"{renamed}; {what}" if what else renamed
    return (sign, change.new["name"], change.new["type"], what)


def stack_section(stack: str, diff: GraphDiff | None) -> list[str]:
    if diff is None:
        return [f"### {stack}", "", "No graph at the base to compare with.", ""]
    replaced = sum(1 for c in diff.changed if c.forced)
    summary = (
        f"{len(diff.added)} to create, {len(diff.changed)} to change"
        f" ({replaced} replaced), {len(diff.removed)} to delete"
    )
    lines = [f"### {stack}: {summary if not diff.empty else 'no changes'}", ""]
    if diff.unacknowledged:
        lines += [
            "> [!CAUTION]",
            "> **Stateful data would be lost.** `make test` fails until this is undone or"
            " acknowledged.",
            *(f"> {line}" for line in violation_lines(diff.unacknowledged)),
            f"> {FIX}",
            "",
        ]
    acknowledged = [v for v in diff.violations if v.acknowledged]
    if acknowledged:
        lines += ["Acknowledged:", ""]
        lines += [f"- {code(urn_name(v.urn))} {v.what}: {v.acknowledged}" for v in acknowledged]
        lines.append("")
    rows: list[Row] = [("+", r["name"], r["type"], "create") for r in diff.added]
    rows += [_row(c) for c in diff.changed]
    rows += [("-", r["name"], r["type"], "**delete**") for r in diff.removed]
    if rows:
        lines += ["| | resource | type | change |", "|---|---|---|---|"]
        lines += [
            f"| {sign} | {code(name)} | {code(type_)} | {what} |"
            for sign, name, type_, what in sorted(rows, key=lambda row: (row[1], row[0]))[:MAX_ROWS]
        ]
        if len(rows) > MAX_ROWS:
            lines.append(
                f"\n... and {len(rows) - MAX_ROWS} more (run `make graph` and read the diff)."
            )
        lines.append("")
    return lines


PROGRAM = "the program run under Pulumi's mocks (no cloud credentials)"


def render(diffs: dict[str, GraphDiff | None], old: str, new: str = PROGRAM) -> str:
    lines = [
        MARKER,
        "## Resource graph",
        "",
        f"What this change does to each stack's resources: {new}, compared with {old}."
        " Replacements are flagged for the inputs in `graphs/replacements.py`; the"
        " `pulumi preview` comments, where credentials exist, show what the cloud itself"
        " would do.",
        "",
    ]
    for stack, diff in diffs.items():
        lines += stack_section(stack, diff)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > MAX_CHARACTERS:
        text = (
            text[:MAX_CHARACTERS]
            + "\n\n... cut at GitHub's size limit: run `make graph` and read the diff.\n"
        )
    return text


def diff_stacks(
    base: Base, heads: dict[str, dict[str, Any]], acknowledged: dict[str, str]
) -> dict[str, GraphDiff | None]:
    return {
        stack: compare(base.graphs[stack], head, acknowledged) if base.graphs.get(stack) else None
        for stack, head in heads.items()
    }


def _directory_base(directory: Path, stacks: tuple[str, ...], label: str | None) -> Base:
    paths = {stack: graph_path(stack, directory) for stack in stacks}
    acks = directory / ACKNOWLEDGEMENTS.name
    acknowledged = read_acknowledgements(acks.read_text(), str(acks)) if acks.is_file() else {}
    return Base(
        where=label or f"the graphs in {directory}",
        graphs={s: json.loads(p.read_text()) if p.is_file() else None for s, p in paths.items()},
        acknowledged=frozenset(acknowledged.items()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graphs.diff", description=__doc__.split("\n\n")[0]
    )
    old = parser.add_mutually_exclusive_group()
    old.add_argument("--against", metavar="BRANCH", help="compare with the merge base with BRANCH")
    old.add_argument("--base-dir", type=Path, help="old graphs from this directory")
    parser.add_argument("--head-dir", type=Path, help="new graphs from this directory")
    parser.add_argument("--base-label", help="what the old graphs are, for the text")
    parser.add_argument("--head-label", help="what the new graphs are, for the text")
    parser.add_argument("--stack", choices=STACKS, action="append", help="default: every stack")
    parser.add_argument("--output", type=Path, help="write the Markdown here (default: stdout)")
    args = parser.parse_args(argv)
    stacks = tuple(args.stack or STACKS)

    if args.base_dir:
        base = _directory_base(args.base_dir, stacks, args.base_label)
    else:
        base = find_base(stacks, args.against)
    if args.head_dir:
        heads = {s: json.loads(graph_path(s, args.head_dir).read_text()) for s in stacks}
        acknowledged = acknowledgements(base, args.head_dir / ACKNOWLEDGEMENTS.name)
        new = args.head_label or f"the graphs in {args.head_dir}"
    else:
        from graphs.build import program_graph  # runs the program: only when asked to

        heads = {s: program_graph(s) for s in stacks}
        acknowledged = acknowledgements(base)
        new = args.head_label or PROGRAM
    old_label = args.base_label or base.where
    markdown = render(diff_stacks(base, heads, acknowledged), old_label, new)
    if args.output:
        args.output.write_text(markdown)
    else:
        sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
