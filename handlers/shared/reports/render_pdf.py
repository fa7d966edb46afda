"""PDF rendering with ReportLab (pure; ReportLab imported on use).

Layout (A4 portrait): a title block with tenant, type, period and window; two
charts drawn with `reportlab.graphics` (daily cost trend, with today's partial
day called out, and cost by service); the summary table with readers' labels
("API calls", "Storage (GB)") and wrapped text (full top-issue titles); the
compliance section with a findings-by-severity chart; then the data table,
split into tables of exactly one page each, every one starting with the
header row. Every page carries a running header with the tenant and period
and "Page N of M".

Columns are never narrower than their heading, and text cells wrap instead of
running into the next column. M is known before the data pages are laid out:
the pages before them are laid out once on their own (they are small), and
each data page holds a fixed number of rows.

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

from handlers.shared.metrics_layout import SEVERITIES
from handlers.shared.reports.cells import display_number
from handlers.shared.reports.model import (
    DETAILED,
    SUMMARY_COLUMNS,
    Column,
    ReportData,
    SummaryLine,
    decimals_for,
    item_label,
    metric_label,
    section_label,
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
SEVERITY_CHART_HEIGHT = 150.0
CELL_PADDING = 6.0  # ReportLab's default cell padding, left plus right
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
        elif column.key == "metric":
            cells.append(_fit(metric_label(str(value)), width - CELL_PADDING))
        else:
            cells.append(_fit(str(value), width - CELL_PADDING))
    return cells


# Relative column widths by column key; anything else gets the default.
_WIDTH_WEIGHTS = {"item": 3.6, "service": 3.6, "section": 1.5, "metric": 1.8, "unit": 1.0}
_DEFAULT_WEIGHT = 1.2


def heading_width(column: Column) -> float:
    """Points a column needs to show its heading on one line, padding included."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return stringWidth(column.title, BOLD_FONT, FONT_SIZE) + CELL_PADDING + 2


def column_widths(columns: Sequence[Column], total: float) -> list[float]:
    """Widths by weight, every column at least as wide as its heading."""
    minimum = [heading_width(column) for column in columns]
    weights = [_WIDTH_WEIGHTS.get(column.key, _DEFAULT_WEIGHT) for column in columns]
    widths = [total * weight / sum(weights) for weight in weights]
    # Columns short of their heading take it; the rest share what is left by weight.
    fixed = {index for index, width in enumerate(widths) if width < minimum[index]}
    while True:
        spare = total - sum(minimum[index] for index in fixed)
        free_weight = sum(w for index, w in enumerate(weights) if index not in fixed)
        widths = [
            minimum[index] if index in fixed else spare * weights[index] / free_weight
            for index in range(len(columns))
        ]
        short = {index for index, width in enumerate(widths) if width < minimum[index]}
        if not short - fixed:
            return widths
        fixed |= short


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
        self.page_count = 0  # set by `count_pages` before the document is built

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
        rows: list[list[Any]],
        fixed_height: bool = True,
    ) -> Any:
        from reportlab.platypus import Table

        return Table(
            [[column.title for column in columns], *rows],
            colWidths=list(widths),
            # Data pages hold a known number of fixed-height rows; the summary's
            # rows grow with wrapped text.
            rowHeights=[HEADER_HEIGHT] + [ROW_HEIGHT] * len(rows) if fixed_height else None,
            style=style,
            repeatRows=1,
            hAlign="LEFT",
        )

    def wrapped(self, text: str) -> Any:
        """A text cell that wraps within its column instead of running on."""
        from xml.sax.saxutils import escape

        from reportlab.lib.styles import ParagraphStyle
        from reportlab.platypus import Paragraph

        style = ParagraphStyle("cell", fontName=FONT, fontSize=FONT_SIZE, leading=FONT_SIZE + 1.5)
        return Paragraph(escape(text), style)

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
        widths = column_widths(SUMMARY_COLUMNS, self.frame_width)
        unit_index = unit_column(SUMMARY_COLUMNS)
        item_index = [column.key for column in SUMMARY_COLUMNS].index("item")
        rows: list[list[Any]] = []
        for line in lines:
            shown = line._replace(section=section_label(line.section), item=item_label(line))
            cells: list[Any] = _cells(SUMMARY_COLUMNS, widths, shown, unit_index)
            cells[item_index] = self.wrapped(shown.item)
            rows.append(cells)
        return self.table(
            SUMMARY_COLUMNS, widths, self.table_style(SUMMARY_COLUMNS), rows, fixed_height=False
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
        partial_day = data.partial_day
        if partial_day is not None:
            drawing.add(
                String(
                    self.frame_width,
                    CHART_HEIGHT - 12,
                    f"{partial_day.isoformat()} is partial (today, still being aggregated)",
                    fontName=FONT,
                    fontSize=7,
                    textAnchor="end",
                )
            )
        return drawing

    def severity_chart(self) -> Any:
        """Active findings by severity, most severe first."""
        from reportlab.graphics.charts.barcharts import VerticalBarChart
        from reportlab.graphics.shapes import Drawing, String

        findings = self.data.compliance.findings
        drawing = Drawing(self.frame_width, SEVERITY_CHART_HEIGHT)
        drawing.add(
            String(0, SEVERITY_CHART_HEIGHT - 12, "Findings by severity", fontName=BOLD_FONT)
        )
        chart = VerticalBarChart()
        chart.x, chart.y = 45, 25
        chart.width, chart.height = self.frame_width - 60, SEVERITY_CHART_HEIGHT - 50
        counts = [int(findings.get(severity, 0)) for severity in SEVERITIES]
        chart.data = [counts]
        chart.categoryAxis.categoryNames = [
            f"{severity.capitalize()} ({count})"
            for severity, count in zip(SEVERITIES, counts, strict=True)
        ]
        chart.categoryAxis.labels.fontSize = 7
        chart.valueAxis.valueMin = 0
        chart.valueAxis.valueMax = max(max(counts), 1)
        chart.valueAxis.valueStep = max(1, -(-max(counts) // 5))
        chart.valueAxis.labels.fontSize = 7
        chart.bars[0].fillColor = self.colors.HexColor(HEADER_COLOR)
        for index, color in enumerate(("#8B0000", "#D9534F", "#F0AD4E", "#5BC0DE")):
            chart.bars[(0, index)].fillColor = self.colors.HexColor(color)
        drawing.add(chart)
        return drawing

    def compliance_section(self) -> list[Any]:
        from reportlab.platypus import KeepTogether, Paragraph, Spacer

        compliance = self.data.compliance
        trend = (
            f" (a week earlier: {display_number(compliance.previous_score, 1)})"
            if compliance.previous_score is not None
            else ""
        )
        return [
            Spacer(1, 12),
            KeepTogether(
                [
                    Paragraph("Compliance", self.styles["Heading2"]),
                    Paragraph(
                        f"Score {display_number(compliance.score, 1)}{trend}",
                        self.styles["Normal"],
                    ),
                    self.severity_chart(),
                ]
            ),
        ]

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
        widths = column_widths(columns, self.frame_width)
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

    def front(self) -> list[Any]:
        """Everything before the data pages."""
        from reportlab.platypus import Spacer

        return [
            *self.title_block(),
            self.cost_trend_chart(),
            Spacer(1, 8),
            self.services_chart(),
            Spacer(1, 12),
            self.summary_table(self.data.summary_lines()),
            *self.compliance_section(),
        ]

    def data_row_count(self) -> int:
        return self.data.row_count if self.data.report_type == DETAILED else len(self.data.daily)

    def story(self) -> Iterator[Any]:
        from reportlab.platypus import PageBreak

        yield from self.front()
        if self.data_row_count():
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
            self.page_width - MARGIN,
            MARGIN / 2,
            f"Page {canvas.getPageNumber()} of {self.page_count}",
        )
        canvas.restoreState()


def _day_label(first_day: dt.date) -> Callable[[float], str]:
    def label(offset: float) -> str:
        return (first_day + dt.timedelta(days=round(offset))).strftime("%m-%d")

    return label


def _document(target: Any, builder: _Builder, data: ReportData) -> Any:
    from reportlab.platypus import SimpleDocTemplate

    return SimpleDocTemplate(
        target,
        pagesize=(builder.page_width, builder.page_height),
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{TITLE}: {data.customer_id} {data.period}",
        author="SecureBase",
    )


def count_pages(builder: _Builder) -> int:
    """Pages of the whole report: the front laid out once on its own, then the data pages."""
    import io

    front = _document(io.BytesIO(), builder, builder.data)
    front.build(builder.front())
    data_rows = builder.data_row_count()
    return front.page + -(-data_rows // rows_per_page(builder.page_height))


def render(data: ReportData, path: Path) -> int:
    """Writes the report to `path`; returns the number of data rows."""
    builder = _Builder(data)
    builder.page_count = count_pages(builder)
    document = _document(str(path), builder, data)
    document.build(
        _StreamedStory(builder.story()),
        onFirstPage=builder.decorate_page,
        onLaterPages=builder.decorate_page,
    )
    return builder.rows_written
