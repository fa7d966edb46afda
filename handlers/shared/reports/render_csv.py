"""CSV rendering: UTF-8, a header row, safe to open in a spreadsheet (pure).

Spreadsheet programs evaluate a cell that starts with `=`, `+`, `-` or `@` (and,
in some, a tab or carriage return) as a formula. Every text cell that starts
with one of those gets a leading apostrophe, which spreadsheets show as text.
Text that already starts with an apostrophe gets one more, so the original is
always recovered by removing exactly one leading apostrophe (`restore`).
Numbers and dates are written by this service and are never prefixed.

Summary reports hold the summary table; detailed reports one row per day,
metric and service.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

from handlers.shared.reports.cells import plain_number
from handlers.shared.reports.model import DETAILED, SUMMARY_COLUMNS, ReportData

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def neutralise(text: str) -> str:
    if text.startswith((*FORMULA_PREFIXES, ESCAPE)):
        return ESCAPE + text
    return text


def restore(text: str) -> str:
    """The text `neutralise` was given."""
    return text[1:] if text.startswith(ESCAPE) else text


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal | float | int):
        return plain_number(value)
    return neutralise(str(value))


def render(data: ReportData, path: Path) -> int:
    """Writes the report to `path`; returns the number of data rows."""
    if data.report_type == DETAILED:
        columns, rows = data.data_columns(), data.data_rows()
    else:
        columns, rows = SUMMARY_COLUMNS, iter(data.summary_lines())
    written = 0
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([column.key for column in columns])
        for row in rows:
            writer.writerow([csv_cell(value) for value in row])
            written += 1
    return written
