"""Checks a deployed stack against what the program says it should be.

    python -m ops.validate_deployment --stack production [--outputs outputs.json | -]
        [--token TOKEN | --mint-token] [--json] [--region us-east-1] [--summary-file PATH]

(`python ops/validate_deployment.py ...` works the same.)

Reads the stack outputs (a file with the content of `pulumi stack output
--json`, `-` for stdin, or, with no `--outputs`, the Pulumi CLI itself), then
looks at every deployed resource with read-only AWS calls and calls each GET
route with and without a token (given, or minted with the stack's signing
key by `--mint-token`). Every check runs even when others fail.
Prints an aligned table and a summary (or JSON with `--json`).

Exit status: 0 when no check failed (warnings and skips allowed), 1 when any
check failed, 2 for a usage error (bad arguments, unreadable outputs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a script (`python ops/validate_deployment.py`): import from the
    # repository root, as `python -m ops.validate_deployment` does.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.settings import ENVIRONMENTS, ConfigError
from handlers.shared import telemetry
from ops.checks.api import api_checks
from ops.checks.aws import AwsView
from ops.checks.base import Check, run_checks
from ops.checks.compute import function_checks, layer_checks, log_group_checks
from ops.checks.data import bucket_checks, table_checks
from ops.checks.expectations import Expectations, load_expectations
from ops.checks.operations import (
    alarm_checks,
    dashboard_checks,
    queue_checks,
    schedule_checks,
    topic_checks,
)
from ops.checks.outputs import StackOutputs
from ops.checks.report import as_json, markdown, summarize, table
from ops.checks.smoke import smoke_checks
from ops.checks.smoke_token import SMOKE_TENANT, MintedToken

TOKEN_VARIABLE = "SMOKE_TEST_TOKEN"  # noqa: S105 - the variable's name, not a token
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The validator cannot start: the message says what to fix."""


def all_checks(
    outputs: StackOutputs,
    expect: Expectations,
    aws: AwsView,
    token: str | MintedToken | None,
    timeout_seconds: float,
) -> list[Check]:
    return [
        *table_checks(outputs, expect, aws),
        *bucket_checks(outputs, expect, aws),
        *function_checks(outputs, expect, aws),
        *layer_checks(outputs, expect, aws),
        *log_group_checks(outputs, expect, aws),
        *api_checks(outputs, expect, aws),
        *schedule_checks(outputs, expect, aws),
        *alarm_checks(outputs, expect, aws),
        *topic_checks(outputs, expect, aws),
        *queue_checks(outputs, expect, aws),
        *dashboard_checks(outputs, expect, aws),
        *smoke_checks(outputs, expect, token, timeout_seconds),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.validate_deployment",
        description="Validate a deployed SecureBase Analytics stack.",
    )
    parser.add_argument("--stack", required=True, choices=ENVIRONMENTS)
    parser.add_argument(
        "--outputs",
        help="file with `pulumi stack output --json` content, or - for stdin "
        "(default: run the Pulumi CLI)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE),
        help=f"bearer token for the smoke test (default: ${TOKEN_VARIABLE}); "
        "without one the 200 checks are skipped",
    )
    parser.add_argument(
        "--mint-token",
        action="store_true",
        help=f"when no token is given, sign a 15-minute token for tenant {SMOKE_TENANT} with "
        "the stack's HS256 key (jwtSecretName; needs secretsmanager:GetSecretValue on it)",
    )
    parser.add_argument("--region", help="AWS region (default: the stack's aws:region)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--summary-file", type=Path, help="also append a Markdown report here (CI job summary)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per smoke request (default: 30)"
    )
    return parser.parse_args(argv)


def read_outputs(source: str | None, stack: str) -> StackOutputs:
    if source == "-":
        text = sys.stdin.read()
    elif source is not None:
        try:
            text = Path(source).read_text()
        except OSError as error:
            raise UsageError(f"cannot read --outputs {source}: {error.strerror}") from None
    else:
        text = _outputs_from_pulumi(stack)
    try:
        values: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"the stack outputs are not JSON: {error}") from None
    if not isinstance(values, dict):
        raise UsageError("the stack outputs must be a JSON object of output name -> value")
    return StackOutputs(values)


def _outputs_from_pulumi(stack: str) -> str:
    command = ["pulumi", "stack", "output", "--json", "--show-secrets=false", "--stack", stack]
    try:
        # A fixed argument list, no shell.
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    except FileNotFoundError:
        raise UsageError("the Pulumi CLI is not installed; pass --outputs FILE instead") from None
    if done.returncode != 0:
        raise UsageError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def smoke_token(
    args: argparse.Namespace,
    expect: Expectations,
    aws: AwsView,
    clock: Callable[[], dt.datetime],
) -> str | MintedToken | None:
    """The token the smoke test uses: the one given wins over minting one."""
    if args.token or not args.mint_token:
        return args.token
    if expect.settings.jwt.secret_name is None:
        raise UsageError(
            f"--mint-token needs an HS256 stack (jwtSecretName); {args.stack} checks tokens "
            "with jwtJwksUrl: pass --token instead"
        )
    return MintedToken(expect.settings.jwt, aws, clock)


def main(
    argv: Sequence[str] | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    # stdout carries only the table or the JSON; logs (quiet unless LOG_LEVEL) go to stderr.
    telemetry.configure_logging(stream="stderr", default_level="WARNING")
    args = parse_args(argv)
    try:
        expect = load_expectations(args.stack, now=clock())
        outputs = read_outputs(args.outputs, args.stack)
    except (UsageError, ConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    aws = AwsView(region=args.region or expect.settings.region)
    try:
        token = smoke_token(args, expect, aws, clock)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    results = run_checks(all_checks(outputs, expect, aws, token, args.timeout))
    summary = summarize(args.stack, results)

    if args.json:
        print(as_json(summary, results))
    else:
        print(table(results))
        print()
        print(summary.line())
    if args.summary_file is not None:
        with args.summary_file.open("a") as report:
            report.write(markdown(summary, results))
    return EXIT_OK if summary.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
