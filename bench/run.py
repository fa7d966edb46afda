"""`python -m bench` (`make bench`): runs every case, prints the table, writes the JSON.

Cases run one after another (the timed ones must not share the CPU with each
other), each in a try block: a case that crashes is reported, the others still
run, and the exit status is 1. A missed target is not a crash: the table and
the JSON's "targets" say so, and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results
from bench.process import REPO_ROOT
from bench.progress import say

RESULTS_FILE = "bench/results/latest.json"
DEFAULT_OUTPUT = REPO_ROOT / RESULTS_FILE
DEFAULT_REPEATS = 5


@dataclass(frozen=True)
class Case:
    name: str  # the results section it fills
    module: str  # whose `measure` runs it
    timed: bool  # takes the number of repeats


# Artifacts first: it builds the layers the Pulumi program then only looks up.
CASES: tuple[Case, ...] = (
    Case("artifacts", "bench.artifacts", timed=False),
    Case("query", "bench.query", timed=False),
    Case("monitor", "bench.monitor", timed=False),
    Case("aggregator", "bench.aggregator", timed=False),
    Case("imports", "bench.imports", timed=True),
    Case("reports", "bench.reports", timed=True),
    Case("pulumi", "bench.pulumi_program", timed=True),
    Case("local_api", "bench.local_api", timed=False),
)
CASE_NAMES = tuple(case.name for case in CASES)


def run_case(case: Case, repeats: int) -> dict[str, Any]:
    # Imported only now: each case's imports (moto, handlers) cost only when it runs.
    measure = importlib.import_module(case.module).measure
    return measure(repeats) if case.timed else measure()


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "architecture": platform.machine(),
    }


def run(cases: Sequence[Case], repeats: int) -> dict[str, Any]:
    """Every case in order; the results document (meta, sections, targets)."""
    started = time.monotonic()
    sections: dict[str, Any] = {}
    errors: dict[str, str] = {}
    case_seconds: dict[str, float] = {}
    for number, case in enumerate(cases, start=1):
        say(f"[{number}/{len(cases)}] {case.name}")
        case_started = time.monotonic()
        try:
            sections[case.name] = run_case(case, repeats)
        except Exception as error:  # noqa: BLE001 - a crashed case must not stop the others
            errors[case.name] = f"{type(error).__name__}: {error}"
            say(traceback.format_exc())
        case_seconds[case.name] = round(time.monotonic() - case_started, 1)
        say(f"  ({case_seconds[case.name]} s)")
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "repeats": repeats,
        "cases": [case.name for case in cases],
        "case_seconds": case_seconds,
        "total_seconds": round(time.monotonic() - started, 1),
        "errors": errors,
    }
    targets = results.targets_section(results.checks(sections, figures_of(cases)))
    return {"meta": meta, **sections, "targets": targets}


def figures_of(cases: Sequence[Case]) -> tuple[results.Figure, ...]:
    """The figures these cases produce (a crashed case's show as missing)."""
    names = {case.name for case in cases}
    return tuple(figure for figure in results.FIGURES if figure.key.split(".")[0] in names)


def _case_list(raw: str) -> tuple[Case, ...]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"cases are a comma-separated list of {', '.join(CASE_NAMES)}; got {raw!r}"
        )
    return tuple(case for case in CASES if case.name in names)


def _repeats(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number; got {raw!r}")
    return int(raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=f"Measure the service (make bench) and write {RESULTS_FILE}.",
        epilog="Exit status: 0 when every case ran (targets may be missed: see the table), "
        "1 when a case crashed, 2 for a usage error.",
    )
    parser.add_argument(
        "--repeats",
        type=_repeats,
        default=DEFAULT_REPEATS,
        help=f"runs per timed case, medians reported (default {DEFAULT_REPEATS})",
    )
    parser.add_argument(
        "--only",
        type=_case_list,
        metavar="CASES",
        help=f"run only these cases ({','.join(CASE_NAMES)}); writes JSON only with --output",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the JSON (default {RESULTS_FILE})",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the table of an existing results file as Markdown and exit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.markdown:
        document = json.loads((args.output or DEFAULT_OUTPUT).read_text(encoding="utf-8"))
        print(results.markdown_table(results.checks(document)))
        return 0
    # The handlers log every run at INFO; the bench prints its own progress.
    os.environ["LOG_LEVEL"] = "WARNING"
    cases = args.only or CASES
    document = run(cases, args.repeats)
    say("")
    say(results.table(results.checks(document, figures_of(cases))))
    # A partial run never replaces the full results unless asked to.
    output = args.output or (None if args.only else DEFAULT_OUTPUT)
    if output is not None:
        results.write_atomically(output, document)
        say(f"\nwrote {output}")
    say(f"total {document['meta']['total_seconds']} s")
    if document["meta"]["errors"]:
        say("crashed: " + ", ".join(document["meta"]["errors"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
