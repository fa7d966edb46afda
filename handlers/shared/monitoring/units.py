"""How the monitor shows a value: one place, so the report, the violation
messages and the alert read the same (pure)."""

from __future__ import annotations

NO_DATA = "no data"  # CloudWatch returned no datapoints
NOT_APPLICABLE = "n/a"  # a rate with nothing to divide by (no requests, no invocations)


def format_value(value: float | None, unit: str, missing: str = NO_DATA) -> str:
    if value is None:
        return missing
    if unit == "percent":
        return f"{value:.2f}%"
    if unit == "ms":
        return f"{value:,.1f} ms"
    # Counts and sums are whole numbers; averages (connections, sessions) are not.
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
