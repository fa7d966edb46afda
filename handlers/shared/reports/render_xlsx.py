"""XLSX rendering with openpyxl in write-only mode (pure; openpyxl imported on use).

Two sheets: *Summary* (title block, the summary table with readers' labels,
the daily cost table and a line chart of it) and *Data* (the data table, raw
metric keys kept, under a styled, frozen header with an autofilter). Today's
day, still being aggregated, is marked `partial` in every daily table. Numbers are numeric cells with a number format per unit, dates are
date cells. Write-only mode streams rows to the file, so memory stays flat
however many rows a report has.

openpyxl turns any string starting with `=` into a formula; text cells are
written as explicit strings instead, so tenant data is never evaluated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from handlers.shared.reports.model import (
    SUMMARY_COLUMNS,
    Column,
    ReportData,
    decimals_for,
    item_label,
    section_label,
    unit_column,
)

TITLE = "SecureBase analytics report"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
HEADER_FILL = "1F3864"
COLUMN_WIDTHS = {"date": 12, "text": 34, "number": 16}


def number_format(decimals: int) -> str:
    return "#,##0" if decimals == 0 else "#,##0." + "0" * decimals


def render(data: ReportData, path: Path) -> int:
    """Writes the report to `path`; returns the number of data rows."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    writer = _SheetWriter(workbook)
    writer.summary_sheet(data)
    written = writer.data_sheet(data)
    workbook.save(path)
    return written


class _SheetWriter:
    def __init__(self, workbook: Any):
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

        self.workbook = workbook
        self._cell_type = WriteOnlyCell
        self._illegal = ILLEGAL_CHARACTERS_RE
        self._header_font = Font(bold=True, color="FFFFFF")
        self._header_fill = PatternFill("solid", fgColor=HEADER_FILL)
        self._header_border = Border(bottom=Side(style="thin", color="000000"))
        self._header_alignment = Alignment(horizontal="center", vertical="center")
        self._bold = Font(bold=True)
        self._title_font = Font(bold=True, size=14)

    # Cells

    def text(self, sheet: Any, value: str, font: Any = None) -> Any:
        cell = self._cell_type(sheet, self._illegal.sub("", value))
        cell.data_type = "s"  # never a formula, whatever the text starts with
        if font is not None:
            cell.font = font
        return cell

    def number(self, sheet: Any, value: Any, decimals: int) -> Any:
        cell = self._cell_type(sheet, value)
        cell.number_format = number_format(decimals)
        return cell

    def header(self, sheet: Any, titles: Iterable[str]) -> list[Any]:
        cells = []
        for title in titles:
            cell = self.text(sheet, title, self._header_font)
            cell.fill = self._header_fill
            cell.border = self._header_border
            cell.alignment = self._header_alignment
            cells.append(cell)
        return cells

    def row(
        self,
        sheet: Any,
        columns: Sequence[Column],
        values: Sequence[Any],
        unit_index: int | None,
    ) -> list[Any]:
        """A table row; a number column without its own unit takes the row's `unit`."""
        unit = str(values[unit_index]) if unit_index is not None else ""
        cells: list[Any] = []
        for column, value in zip(columns, values, strict=True):
            if value is None:
                cells.append(None)
            elif column.kind == "number":
                cells.append(self.number(sheet, value, decimals_for(column.unit or unit)))
            elif column.kind == "text":
                cells.append(self.text(sheet, str(value)))
            else:
                cells.append(value)  # dates: openpyxl applies the date format itself
        return cells

    # Sheets

    def summary_sheet(self, data: ReportData) -> None:
        from openpyxl.chart import LineChart, Reference

        sheet = self.workbook.create_sheet("Summary")
        for letter, width in zip("ABCDEF", (22, 46, 16, 10, 10, 14), strict=True):
            sheet.column_dimensions[letter].width = width
        generated = self._cell_type(
            sheet, data.generated_at.astimezone(dt.UTC).replace(tzinfo=None)
        )
        generated.number_format = DATETIME_FORMAT
        block: list[list[Any]] = [
            [self.text(sheet, TITLE, self._title_font)],
            [self.text(sheet, "Tenant", self._bold), self.text(sheet, data.customer_id)],
            [self.text(sheet, "Report type", self._bold), self.text(sheet, data.report_type)],
            [self.text(sheet, "Period", self._bold), self.text(sheet, data.period)],
            [self.text(sheet, "From", self._bold), data.first_day],
            [self.text(sheet, "To", self._bold), data.last_day],
            [self.text(sheet, "Generated (UTC)", self._bold), generated],
            [],
            self.header(sheet, (column.title for column in SUMMARY_COLUMNS)),
        ]
        unit_index = unit_column(SUMMARY_COLUMNS)
        block.extend(
            self.row(
                sheet,
                SUMMARY_COLUMNS,
                line._replace(section=section_label(line.section), item=item_label(line)),
                unit_index,
            )
            for line in data.summary_lines()
        )
        block.append([])
        for row in block:
            sheet.append(row)
        # The daily cost table below the summary feeds the chart.
        cost_header_row = len(block) + 1
        sheet.append(self.header(sheet, ("Date", f"Daily cost ({data.currency})", "Coverage")))
        cost_decimals = decimals_for(data.currency)
        for totals in data.daily:
            sheet.append(
                [
                    totals.day,
                    self.number(sheet, totals.cost, cost_decimals),
                    self.text(sheet, data.coverage(totals.day)),
                ]
            )
        if data.daily:
            last_row = cost_header_row + len(data.daily)
            chart = LineChart()
            chart.title = f"Daily cost ({data.currency})"
            chart.y_axis.title = data.currency
            chart.x_axis.number_format = DATE_FORMAT
            chart.height, chart.width = 8, 18
            chart.add_data(
                Reference(sheet, min_col=2, min_row=cost_header_row, max_row=last_row),
                titles_from_data=True,
            )
            chart.set_categories(
                Reference(sheet, min_col=1, min_row=cost_header_row + 1, max_row=last_row)
            )
            sheet.add_chart(chart, "H2")

    def data_sheet(self, data: ReportData) -> int:
        sheet = self.workbook.create_sheet("Data")
        columns = data.data_columns()
        for index, column in enumerate(columns):
            letter = chr(ord("A") + index)
            sheet.column_dimensions[letter].width = COLUMN_WIDTHS[column.kind]
        # Sheet view and column widths go out with the first row, so they come first.
        sheet.freeze_panes = "A2"
        sheet.append(self.header(sheet, (column.title for column in columns)))
        unit_index = unit_column(columns)
        written = 0
        for values in data.data_rows():
            sheet.append(self.row(sheet, columns, values, unit_index))
            written += 1
        # Written after the rows (its range is known only now): the filter
        # goes in the sheet's tail, which write-only mode writes on save.
        last_letter = chr(ord("A") + len(columns) - 1)
        sheet.auto_filter.ref = f"A1:{last_letter}{written + 1}"
        return written
