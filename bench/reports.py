"""Report rendering speed and peak memory: CSV and XLSX at 10,000 and 100,000 rows, PDF at 20,000.

Every run renders a detailed synthetic report (`synthetic_report`, whose rows
stream lazily like a real report's) with the real renderer, in a fresh
process of its own: `python -m bench.reports <format> <days> <services>`. The
process first renders a one-day report so the format's libraries are loaded,
then times the real one. Rows/s come from the median of the runs; peak RSS is
the highest high-water mark of those processes (everything the process ever
held: interpreter, libraries, data), which is what a Lambda's memory must fit.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process import worker
from bench.progress import Progress, say

DAYS = 250  # every case: the rows differ by the number of services billed
USAGE_ROWS_PER_DAY = 4  # one per usage metric


@dataclass(frozen=True)
class ReportCase:
    format: str
    rows: int

    @property
    def key(self) -> str:
        return f"{self.format}_{self.rows}"

    @property
    def services(self) -> int:
        """Services billed per day so that DAYS x (4 + services) == rows."""
        per_day, remainder = divmod(self.rows, DAYS)
        if remainder or per_day <= USAGE_ROWS_PER_DAY:
            raise ValueError(f"{self.rows} rows is not {DAYS} days of usage and service rows")
        return per_day - USAGE_ROWS_PER_DAY


CASES = (
    ReportCase("csv", 10_000),
    ReportCase("csv", 100_000),
    ReportCase("xlsx", 10_000),
    ReportCase("xlsx", 100_000),
    ReportCase("pdf", 20_000),
)


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    Linux carries `ru_maxrss` over fork and exec, so a worker started by the
    bench (hundreds of MB after the moto cases) would report the bench's size;
    VmHWM in /proc/self/status is the high-water mark of this program alone.
    Elsewhere `ru_maxrss` is all there is (bytes on macOS, KiB otherwise).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # reported in kB
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def render_once(fmt: str, days: int, services: int) -> dict[str, Any]:
    """One timed render in this process; what the worker prints."""
    from handlers.shared.reports.render import render
    from handlers.shared.reports.synthetic import synthetic_report

    with tempfile.TemporaryDirectory(prefix="bench-report-") as directory:
        warm_up = Path(directory) / f"warm-up.{fmt}"
        render(synthetic_report(days=1, services=1), fmt, warm_up)
        data = synthetic_report(days=days, services=services)
        target = Path(directory) / f"report.{fmt}"
        started = time.perf_counter()
        rendered = render(data, fmt, target)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": rendered.rows,
        "size_bytes": rendered.size_bytes,
        "peak_rss_mb": peak_rss_mb(),
    }


def summarise(case: ReportCase, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median time and the worst memory over the runs of one case."""
    rows = {run["rows"] for run in runs}
    if rows != {case.rows}:
        raise RuntimeError(f"{case.key}: the renderer wrote {sorted(rows)} rows")
    median = statistics.median(run["seconds"] for run in runs)
    return {
        "rows": case.rows,
        "days": DAYS,
        "services": case.services,
        "seconds_median": round(median, 3),
        "rows_per_s": round(case.rows / median),
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs), 1),
        "size_bytes": runs[0]["size_bytes"],
        "runs_seconds": [round(run["seconds"], 3) for run in runs],
    }


def measure(
    repeats: int, cases: tuple[ReportCase, ...] = CASES, progress: Progress = say
) -> dict[str, Any]:
    """The `reports` section of the results."""
    results = {}
    for case in cases:
        runs = [
            worker("bench.reports", case.format, str(DAYS), str(case.services))
            for _ in range(repeats)
        ]
        results[case.key] = summarise(case, runs)
        progress(
            f"  {case.key}: {results[case.key]['rows_per_s']:,} rows/s,"
            f" peak {results[case.key]['peak_rss_mb']} MB"
        )
    return results


if __name__ == "__main__":
    fmt, days, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(render_once(fmt, days, services)))
