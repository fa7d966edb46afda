"""PDF rendering with ReportLab (pure; ReportLab imported on use).

Layout (A4 portrait): a title block with tenant, type, period and window; two
charts drawn with `reportlab.graphics` (daily cost trend and cost by
service); the summary table; then the data table, split into tables of exactly one
page each, every one starting with the header row. Every page carries a
running header with the tenant and period and its page number.

Rows have a fixed height, so the number of rows per page is known up front and
each page-sized table is created only when the layout engine reaches it: the
story is a list that pulls flowables from a generator, which keeps memory flat
for any number of rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from handlers.shared.reports.cells import display_number
from handlers.shared.reports.model import (
    SUMMARY_COLUMNS,
    Column,
    ReportData,
    SummaryLine,
    decimals_for,
    unit_column,
)

TITLE = "SecureBase analytics report"
FONT = "Helvetica"
BOLD_FONT = "Helvetica-Bold"
FONT_SIZE = 7.5
ROW_HEIGHT = 12.0
HEADER_HEIGHT = 14.0
MARGIN = 42.0  # 15 mm
FRAME_PADDING = 6.0  # ReportLab's default frame padding, on each side
CHART_HEIGHT = 190.0
TOP_SERVICES = 10
HEADER_COLOR = "#1F3864"
STRIPE_COLOR = "#EEF2F8"
GRID_COLOR = "#B7C3D7"


def _page_size() -> tuple[float, float]:
    from reportlab.lib.pagesizes import A4

    return A4


def rows_per_page(page_height: float) -> int:
    """Data rows that fit one frame under the header row."""
    usable = page_height - 2 * MARGIN - 2 * FRAME_PADDING - HEADER_HEIGHT
    return int(usable // ROW_HEIGHT) - 1  # one row of slack for rounding in the frame


class _StreamedStory(list):
    """A platypus story that takes its flowables from an iterator as they are needed.

    `BaseDocTemplate.build` loops `while len(story)`, takes `story[0]` and deletes
    it; keeping a couple of flowables buffered ahead is all it needs.
    """

    def __init__(self, flowables: Iterator[Any], ahead: int = 2):
        super().__init__()
        self._source = flowables
        self._ahead = ahead

    def __len__(self) -> int:
        while super().__len__() < self._ahead:
            upcoming = next(self._source, None)
            if upcoming is None:
                break
            self.append(upcoming)
        return super().__len__()


@lru_cache(maxsize=4096)
def _fit(text: str, width: float, font: str = FONT, size: float = FONT_SIZE) -> str:
    """`text`, cut with an ellipsis so that it fits `width` points."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "...", font, size) > width:
        text = text[:-1]
    return text + "..."


def _cells(
    columns: Sequence[Column],
    widths: Sequence[float],
    values: Sequence[Any],
    unit_index: int | None,
) -> list[str]:
    """A row as text; a number column without its own unit takes the row's `unit`."""
    unit = str(values[unit_index]) if unit_index is not None else ""
    cells = []
    for column, width, value in zip(columns, widths, values, strict=True):
        if value is None:
            cells.append("")
        elif column.kind == "number":
            cells.append(display_number(value, decimals_for(column.unit or unit)))
        elif column.kind == "date":
            cells.append(value.isoformat())
        else:
            cells.append(_fit(str(value), width - 6))
    return cells


# Relative column widths by column key; anything else gets the default.
_WIDTH_WEIGHTS = {"item": 3.6, "service": 3.6, "section": 1.5, "metric": 1.5, "unit": 0.7}
_DEFAULT_WEIGHT = 1.2


def _column_widths(columns: Sequence[Column], total: float) -> list[float]:
    weights = [_WIDTH_WEIGHTS.get(column.key, _DEFAULT_WEIGHT) for column in columns]
    scale = total / sum(weights)
    return [weight * scale for weight in weights]


class _Builder:
    def __init__(self, data: ReportData):
        from reportlab.lib import colors
        from reportlab.lib.styles import getSampleStyleSheet

        self.data = data
        self.page_width, self.page_height = _page_size()
        self.frame_width = self.page_width - 2 * MARGIN - 2 * FRAME_PADDING
        self.colors = colors
        self.styles = getSampleStyleSheet()
        self.rows_written = 0

    def table_style(self, columns: Sequence[Column]) -> Any:
        from reportlab.platypus import TableStyle

        colors = self.colors
        commands: list[tuple[Any, ...]] = [
            ("FONT", (0, 0), (-1, -1), FONT, FONT_SIZE),
            ("FONT", (0, 0), (-1, 0), BOLD_FONT, FONT_SIZE),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEADER_COLOR)),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor(STRIPE_COLOR)]),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor(GRID_COLOR)),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 1),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ]
        commands.extend(
            ("ALIGN", (index, 0), (index, -1), "RIGHT")
            for index, column in enumerate(columns)
            if column.kind == "number"
        )
        return TableStyle(commands)

    def table(
        self,
        columns: Sequence[Column],
        widths: Sequence[float],
        style: Any,
        rows: list[list[str]],
    ) -> Any:
        from reportlab.platypus import Table

        return Table(
            [[column.title for column in columns], *rows],
            colWidths=list(widths),
            rowHeights=[HEADER_HEIGHT] + [ROW_HEIGHT] * len(rows),
            style=style,
            repeatRows=1,
            hAlign="LEFT",
        )

    def title_block(self) -> list[Any]:
        from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

        data = self.data
        facts = [
            ["Tenant", data.customer_id],
            ["Report type", data.report_type],
            ["Period", f"{data.period} ({data.window_label})"],
            ["Generated (UTC)", data.generated_at_label],
        ]
        facts_table = Table(
            [[label, _fit(value, self.frame_width * 0.7, FONT, 10)] for label, value in facts],
            colWidths=[self.frame_width * 0.25, self.frame_width * 0.75],
            hAlign="LEFT",
            style=TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), FONT, 10),
                    ("FONT", (0, 0), (0, -1), BOLD_FONT, 10),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            ),
        )
        return [Paragraph(TITLE, self.styles["Title"]), facts_table, Spacer(1, 10)]

    def summary_table(self, lines: Sequence[SummaryLine]) -> Any:
        widths = _column_widths(SUMMARY_COLUMNS, self.frame_width)
        return self.table(
            SUMMARY_COLUMNS,
            widths,
            self.table_style(SUMMARY_COLUMNS),
            [_cells(SUMMARY_COLUMNS, widths, line, unit_column(SUMMARY_COLUMNS)) for line in lines],
        )

    def cost_trend_chart(self) -> Any:
        from reportlab.graphics.charts.lineplots import LinePlot
        from reportlab.graphics.shapes import Drawing, String

        data = self.data
        drawing = Drawing(self.frame_width, CHART_HEIGHT)
        drawing.add(
            String(0, CHART_HEIGHT - 12, f"Daily cost ({data.currency})", fontName=BOLD_FONT)
        )
        plot = LinePlot()
        plot.x, plot.y = 45, 25
        plot.width, plot.height = self.frame_width - 60, CHART_HEIGHT - 50
        points = [(index, float(totals.cost)) for index, totals in enumerate(data.daily)]
        plot.data = [points or [(0, 0.0)]]
        plot.lines[0].strokeColor = self.colors.HexColor(HEADER_COLOR)
        plot.lines[0].strokeWidth = 1.2
        plot.xValueAxis.valueMin = 0
        plot.xValueAxis.valueMax = max(len(points) - 1, 1)
        plot.xValueAxis.labelTextFormat = _day_label(data.first_day)
        plot.xValueAxis.labels.fontSize = 7
        plot.yValueAxis.valueMin = 0
        plot.yValueAxis.labels.fontSize = 7
        drawing.add(plot)
        return drawing

    def services_chart(self) -> Any:
        from reportlab.graphics.charts.barcharts import HorizontalBarChart
        from reportlab.graphics.shapes import Drawing, String

        data = self.data
        top = list(data.costs.by_service.items())[:TOP_SERVICES]
        drawing = Drawing(self.frame_width, CHART_HEIGHT)
        drawing.add(
            String(
                0,
                CHART_HEIGHT - 12,
                f"Cost by service, top {TOP_SERVICES} ({data.currency})",
                fontName=BOLD_FONT,
            )
        )
        chart = HorizontalBarChart()
        chart.x, chart.y = 190, 10
        chart.width, chart.height = self.frame_width - 200, CHART_HEIGHT - 35
        # Bars run top to bottom in descending order.
        chart.data = [[float(amount) for _, amount in reversed(top)] or [0.0]]
        chart.categoryAxis.categoryNames = [_fit(name, 180, FONT, 7) for name, _ in reversed(top)]
        chart.categoryAxis.labels.fontSize = 7
        chart.valueAxis.valueMin = 0
        chart.valueAxis.labels.fontSize = 7
        chart.bars[0].fillColor = self.colors.HexColor(HEADER_COLOR)
        drawing.add(chart)
        return drawing

    def data_tables(self) -> Iterator[Any]:
        columns = self.data.data_columns()
        widths = _column_widths(columns, self.frame_width)
        style = self.table_style(columns)
        per_page = rows_per_page(self.page_height)
        unit_index = unit_column(columns)
        chunk: list[list[str]] = []
        for values in self.data.data_rows():
            chunk.append(_cells(columns, widths, values, unit_index))
            self.rows_written += 1
            if len(chunk) == per_page:
                yield self.table(columns, widths, style, chunk)
                chunk = []
        if chunk:
            yield self.table(columns, widths, style, chunk)

    def story(self) -> Iterator[Any]:
        from reportlab.platypus import PageBreak, Spacer

        yield from self.title_block()
        yield self.cost_trend_chart()
        yield Spacer(1, 8)
        yield self.services_chart()
        yield Spacer(1, 12)
        yield self.summary_table(self.data.summary_lines())
        # Data pages start on a fresh page so that every table fills exactly one.
        yield PageBreak()
        yield from self.data_tables()

    def decorate_page(self, canvas: Any, _document: Any) -> None:
        data = self.data
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.setFillColor(self.colors.HexColor("#555555"))
        canvas.drawString(
            MARGIN,
            self.page_height - MARGIN / 2,
            f"{TITLE} - {data.customer_id} - {data.report_type} - {data.period} "
            f"({data.window_label})",
        )
        canvas.drawRightString(
            self.page_width - MARGIN, MARGIN / 2, f"Page {canvas.getPageNumber()}"
        )
        canvas.restoreState()


def _day_label(first_day: dt.date) -> Callable[[float], str]:
    def label(offset: float) -> str:
        return (first_day + dt.timedelta(days=round(offset))).strftime("%m-%d")

    return label


def render(data: ReportData, path: Path) -> int:
    """Writes the report to `path`; returns the number of data rows."""
    from reportlab.platypus import SimpleDocTemplate

    builder = _Builder(data)
    document = SimpleDocTemplate(
        str(path),
        pagesize=(builder.page_width, builder.page_height),
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{TITLE}: {data.customer_id} {data.period}",
        author="SecureBase",
    )
    document.build(
        _StreamedStory(builder.story()),
        onFirstPage=builder.decorate_page,
        onLaterPages=builder.decorate_page,
    )
    return builder.rows_written
