"""Report data in, file out: picks the renderer of a format (pure, no AWS).

Each format's module is imported only when that format is rendered, so the
API handlers never pay for ReportLab or openpyxl unless a PDF or XLSX is
requested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from handlers.shared.reports.model import CSV, JSON, PDF, XLSX, ReportData


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    format: str
    rows: int  # rows of the report's main table
    size_bytes: int


def render(data: ReportData, fmt: str, path: Path) -> RenderedFile:
    if fmt == CSV:
        from handlers.shared.reports import render_csv as renderer
    elif fmt == JSON:
        from handlers.shared.reports import render_json as renderer
    elif fmt == PDF:
        from handlers.shared.reports import render_pdf as renderer
    elif fmt == XLSX:
        from handlers.shared.reports import render_xlsx as renderer
    else:
        raise ValueError(f"unknown report format {fmt!r}")
    rows = renderer.render(data, path)
    return RenderedFile(path=path, format=fmt, rows=rows, size_bytes=path.stat().st_size)
