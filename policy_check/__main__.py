"""`make policy`: the CrossGuard pack over both stacks' programs, without the Pulumi CLI.

    python -m policy_check [--stack STACK ...] [--config-dir DIR] [--output-dir DIR]

Runs `__main__.py` for each stack under Pulumi mocks, feeds every resource and
then the whole stack through the pack as the engine does, with the stack's own
policy config (`<config-dir>/<stack>.json`), prints the findings as a table and
writes `<output-dir>/<stack>.sarif` (SARIF 2.1.0, for GitHub code scanning).

Exit status: 0 when no mandatory policy is violated (advisory findings are
allowed), 1 when one is, 2 when a policy config file is missing or invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import jsonschema

from policies.rules import ALL_POLICIES
from policy_check import sarif
from policy_check.engine import CONFIG_DIR, ROOT, reconcile, stack_config_file
from policy_check.findings import StackVerdict, evaluate
from tests.pulumi_program import STACKS, Deployment, run_program

OUTPUT_DIR = ROOT / ".build" / "policy"
EXIT_OK, EXIT_MANDATORY, EXIT_USAGE = 0, 1, 2
HEADERS = ("POLICY", "SEVERITY", "ENFORCEMENT", "RESOURCE", "DECLARED AT", "MESSAGE")


class ConfigFileError(Exception):
    """A policy config file the CLI would refuse too."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m policy_check",
        description="Run the policy pack over each stack's program under mocks, "
        "print the findings and write SARIF.",
        epilog="Exit status: 0 no mandatory violation, 1 a mandatory violation, "
        "2 a missing or invalid policy config.",
    )
    parser.add_argument(
        "--stack",
        action="append",
        choices=STACKS,
        help="a stack to check; repeat for more (default: all)",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=CONFIG_DIR,
        help="where <stack>.json policy configs are (default: policies/config)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=OUTPUT_DIR,
        help="where to write <stack>.sarif (default: .build/policy)",
    )
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    program: Callable[[str], Deployment] = run_program,
    out: TextIO | None = None,
) -> int:
    """`program(stack)` runs the stack's program under mocks (tests hand in another one)."""
    out = out or sys.stdout
    args = parse_args(argv)
    stacks = list(dict.fromkeys(args.stack or STACKS))
    started = time.perf_counter()
    try:
        configs = {stack: _policy_config(args.config_dir, stack) for stack in stacks}
    except ConfigFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    verdicts = []
    for stack in stacks:
        verdict = evaluate(program(stack), configs[stack])
        path = args.output_dir / f"{stack}.sarif"
        sarif.write(path, sarif.sarif_log(stack, verdict.policies, verdict.findings))
        _print_verdict(verdict, args.config_dir / f"{stack}.json", path, out)
        verdicts.append(verdict)

    seconds = time.perf_counter() - started
    failed = [verdict for verdict in verdicts if verdict.mandatory]
    if failed:
        counts = ", ".join(f"{v.stack}: {len(v.mandatory)}" for v in failed)
        print(f"FAILED: mandatory policy violations ({counts}) in {seconds:.1f} s", file=out)
        return EXIT_MANDATORY
    print(f"OK: no mandatory violation in {', '.join(stacks)} ({seconds:.1f} s)", file=out)
    return EXIT_OK


def _policy_config(config_dir: Path, stack: str) -> dict[str, Any]:
    path = config_dir / f"{stack}.json"
    try:
        config = stack_config_file(stack, config_dir)
        if not isinstance(config, dict):
            raise ValueError("a policy config is a JSON object of policy name -> settings")
        reconcile(ALL_POLICIES, config)
    except OSError as error:
        raise ConfigFileError(f"cannot read {_shown(path)}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigFileError(f"{_shown(path)} is not JSON: {error}") from None
    except (ValueError, jsonschema.ValidationError) as error:
        message = error.message if isinstance(error, jsonschema.ValidationError) else error
        raise ConfigFileError(f"{_shown(path)}: {message}") from None
    return config


def _print_verdict(verdict: StackVerdict, config: Path, sarif_path: Path, out: TextIO) -> None:
    print(
        f"{verdict.stack}: {verdict.resources} resources, {len(verdict.policies)} policies"
        f" ({_shown(config)})",
        file=out,
    )
    if verdict.findings:
        print(_table(verdict), file=out)
        advisory = len(verdict.findings) - len(verdict.mandatory)
        summary = (
            f"{len(verdict.findings)} findings: {len(verdict.mandatory)} mandatory,"
            f" {advisory} advisory"
        )
    else:
        summary = "no findings"
    print(f"{verdict.stack}: {summary}; SARIF: {_shown(sarif_path)}", file=out)
    print(file=out)


def _table(verdict: StackVerdict) -> str:
    rows = [HEADERS] + [
        (
            finding.policy.name,
            finding.policy.severity or "-",
            finding.level,
            f"{finding.resource_name} ({finding.resource_type.rsplit(':', 1)[-1]})",
            str(finding.source) if finding.source else "-",
            finding.problem,
        )
        for finding in verdict.findings
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
