"""Cell values as text, shared by the text-based renderers (pure)."""

from __future__ import annotations

from decimal import Decimal


def plain_number(value: Decimal | float | int) -> str:
    """Exact digits, no exponent or grouping: Decimal("1E+3") -> "1000", "52.50" stays."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" not in text and "inf" not in text and "nan" not in text:
            return text
        value = Decimal(text)
    return format(value, "f") if value.is_finite() else str(value)


def display_number(value: Decimal | float | int | None, decimals: int) -> str:
    """Grouped and rounded for reading: 12,345.68."""
    if value is None:
        return ""
    return f"{float(value):,.{decimals}f}"
