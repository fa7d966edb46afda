"""Import time of each handler module against `import boto3` alone, in fresh processes.

Every sample is a new interpreter (`python -c`) timing one `import`, so
nothing is already loaded. Rounds interleave the modules (in a rotating order)
so that a busy moment of the machine hits all of them alike; a first, untimed
round writes the byte-code caches a fresh clone lacks.

The ratio uses the CPU time of the import (`process_time`): an import is all
CPU once the files are in the page cache, and unlike wall time it does not
grow while other processes hold the machine's cores. On a Lambda, which has
its CPU to itself, the two are the same. Wall-time medians are reported too.
Ratio: in every round, the handler's import against boto3's in the same
round (measured back to back), and the median of those paired ratios. Fresh
interpreters on a shared VM vary by tens of percent from one minute to the
next; pairing cancels the drift that a ratio of two separate medians keeps
(it once put every handler below boto3, which imports boto3 itself). Import
timing is cheap and noisy, so it takes at least `MIN_ROUNDS` rounds.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.aws import offline_environment
from bench.process import python
from bench.progress import Progress, say

BASELINE = "boto3"
MIN_ROUNDS = 11
API_HANDLERS = ("authorizer", "query", "reporter", "report_engine")
HANDLERS = (*API_HANDLERS, "aggregator", "phase2_monitor")
_TIMED_IMPORT = (
    "import time; cpu, wall = time.process_time(), time.perf_counter(); import {module}; "
    "print(time.process_time() - cpu, time.perf_counter() - wall)"
)


def module_name(key: str) -> str:
    return BASELINE if key == BASELINE else f"handlers.{key}"


def rotated(items: tuple[str, ...], round_index: int) -> tuple[str, ...]:
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def import_seconds(module: str, environment: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of importing `module` in a fresh interpreter."""
    cpu, wall = python("-c", _TIMED_IMPORT.format(module=module), env=environment).split()
    return float(cpu), float(wall)


def measure(repeats: int, progress: Progress = say) -> dict[str, Any]:
    """The `imports` section of the results."""
    environment = offline_environment()
    keys = (BASELINE, *HANDLERS)
    samples: dict[str, list[tuple[float, float]]] = {key: [] for key in keys}
    for key in keys:  # untimed: writes the byte-code caches
        import_seconds(module_name(key), environment)
    rounds = max(repeats, MIN_ROUNDS)
    for round_index in range(rounds):
        for key in rotated(keys, round_index):
            samples[key].append(import_seconds(module_name(key), environment))
    medians = {key: statistics.median(cpu for cpu, _ in runs) for key, runs in samples.items()}
    results: dict[str, Any] = {
        key: {
            "module": module_name(key),
            "cpu_ms_median": round(medians[key] * 1000, 1),
            "wall_ms_median": round(statistics.median(wall for _, wall in runs) * 1000, 1),
            "runs_cpu_ms": [round(cpu * 1000, 1) for cpu, _ in runs],
        }
        for key, runs in samples.items()
    }
    baseline = [cpu for cpu, _ in samples[BASELINE]]
    for key in HANDLERS:
        paired = [cpu / base for (cpu, _), base in zip(samples[key], baseline, strict=True)]
        results[key]["ratio_to_boto3"] = round(statistics.median(paired), 3)
    progress(
        "  "
        + ", ".join(f"{key} {results[key]['ratio_to_boto3']}x" for key in HANDLERS)
        + f" (boto3 {results[BASELINE]['cpu_ms_median']} ms CPU)"
    )
    return results
