"""Where text sits on a PDF's pages, to test layout (no tests here).

`text_boxes` extracts every text fragment pypdf meets with its position,
font and size; its width is measured with ReportLab's metrics of the same
standard font. `overlaps` finds fragments on one line whose boxes run into
each other: two table headings printed as one ("storage_gb (GB)compute_hours
(hours)"), or a cell spilling into the next column.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader
from reportlab.pdfbase.pdfmetrics import stringWidth


@dataclass(frozen=True)
class TextBox:
    page: int  # 1-based
    text: str
    x: float
    y: float  # baseline
    width: float
    font: str
    size: float

    @property
    def right(self) -> float:
        return self.x + self.width


def text_boxes(path: Path) -> list[TextBox]:
    boxes: list[TextBox] = []
    for number, page in enumerate(PdfReader(path).pages, start=1):

        def visit(text, cm, tm, font, size, number=number):
            if not text.strip() or font is None:
                return
            # Text space to page space: the text matrix, then the current matrix.
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            scale = (tm[0] * cm[0] + tm[1] * cm[2]) or 1
            font_name = str(font.get("/BaseFont", "/Helvetica")).lstrip("/")
            points = size * abs(scale)
            for line in text.splitlines():
                if line.strip():
                    width = stringWidth(line, font_name, points)
                    boxes.append(TextBox(number, line, x, y, width, font_name, points))

        page.extract_text(visitor_text=visit)
    return boxes


def overlaps(boxes: list[TextBox], tolerance: float = 0.5) -> list[tuple[TextBox, TextBox]]:
    """Pairs of fragments on the same page and baseline whose extents overlap."""
    found = []
    by_line: dict[tuple[int, int], list[TextBox]] = {}
    for box in boxes:
        by_line.setdefault((box.page, round(box.y)), []).append(box)
    for line in by_line.values():
        ordered = sorted(line, key=lambda box: box.x)
        for left, right in itertools.pairwise(ordered):
            if left.right - tolerance > right.x:
                found.append((left, right))
    return found
