"""Evaluating `__main__.py` under Pulumi mocks, per stack: seconds and resources.

Each run is a fresh process (`python -m bench.pulumi_program <stack>`) that
runs the real program with `tests.pulumi_program.run_program`, the harness
the infrastructure tests use. The first evaluation in a process is what a
`pulumi preview` pays (it imports the components and pulumi_aws and looks up
the built artifacts); a second one in the same process shows the program's own
cost once everything is loaded.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from bench.process import worker
from bench.progress import Progress, say

STACKS = ("staging", "production")


def evaluate_twice(stack: str) -> dict[str, Any]:
    """What the worker prints: the first and a second evaluation in this process."""
    from tests.pulumi_program import run_program

    started = time.perf_counter()
    deployment = run_program(stack)
    first = time.perf_counter() - started
    started = time.perf_counter()
    run_program(stack)
    second = time.perf_counter() - started
    return {
        "first_seconds": first,
        "second_seconds": second,
        "resources": len(deployment.resources),
    }


def measure(repeats: int, progress: Progress = say) -> dict[str, Any]:
    """The `pulumi` section of the results."""
    results: dict[str, Any] = {
        "program_seconds": {},
        "program_seconds_loaded": {},
        "resources": {},
    }
    for stack in STACKS:
        runs = [worker("bench.pulumi_program", stack) for _ in range(repeats)]
        counts = {run["resources"] for run in runs}
        if len(counts) != 1:
            raise RuntimeError(f"{stack}: the program registered {sorted(counts)} resources")
        results["program_seconds"][stack] = round(
            statistics.median(run["first_seconds"] for run in runs), 3
        )
        results["program_seconds_loaded"][stack] = round(
            statistics.median(run["second_seconds"] for run in runs), 3
        )
        results["resources"][stack] = counts.pop()
        progress(
            f"  {stack}: {results['resources'][stack]} resources,"
            f" {results['program_seconds'][stack]} s"
            f" ({results['program_seconds_loaded'][stack]} s once loaded)"
        )
    return results


if __name__ == "__main__":
    print(json.dumps(evaluate_twice(sys.argv[1])))
