import dataclasses
import subprocess
import sys
import textwrap

import pytest
from pypdf import PdfReader

from handlers.shared.reports.cells import display_number
from handlers.shared.reports.model import SUMMARY, Issue
from handlers.shared.reports.render import render
from handlers.shared.reports.render_pdf import rows_per_page
from handlers.shared.reports.synthetic import synthetic_report
from tests.conftest import ROOT
from tests.pdf_layout import overlaps, text_boxes

A4_HEIGHT = 841.89


def page_texts(path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def test_first_page_shows_tenant_period_and_totals(tmp_path):
    data = synthetic_report(customer_id="globex", days=30, services=4, report_type=SUMMARY)
    render(data, "pdf", tmp_path / "r.pdf")

    pages = page_texts(tmp_path / "r.pdf")
    first = pages[0]
    assert "SecureBase analytics report" in first
    assert "globex" in first
    assert "30d (2026-10-25 to 2026-11-23)" in first
    assert display_number(data.costs.total, 2) in first  # the cost total, e.g. 1,523.17
    api_calls = next(figure for figure in data.usage if figure.metric == "api_calls")
    assert display_number(api_calls.total, 0) in first
    assert "92.5" in first  # compliance score
    assert "Daily cost (USD)" in first  # the charts' titles
    assert "Cost by service, top 10 (USD)" in "".join(pages)


def test_data_tables_fill_pages_with_a_repeated_header_and_page_numbers(tmp_path):
    per_page = rows_per_page(A4_HEIGHT)
    data = synthetic_report(days=50, services=6)  # 500 rows
    rendered = render(data, "pdf", tmp_path / "r.pdf")

    pages = page_texts(tmp_path / "r.pdf")
    data_pages = [text for text in pages if "Date\nMetric\nService\nValue\nUnit" in text]
    assert rendered.rows == 500
    assert len(data_pages) == -(-500 // per_page)  # every table fits exactly one page
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
        assert "acme - detailed - 50d" in text  # running header
    # Every data row is on some page, in order: first and last day present.
    assert "2026-10-05\nAPI calls\nplatform" in data_pages[0]
    assert "2026-11-23\nCost\n" in data_pages[-1]


def test_format_libraries_are_imported_only_when_their_format_is_rendered(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import handlers.reporter, handlers.report_engine
        from handlers.shared.reports.render import render
        from handlers.shared.reports.synthetic import synthetic_report
        render(synthetic_report(days=2, services=1), "csv", Path({str(tmp_path / "r.csv")!r}))
        render(synthetic_report(days=2, services=1), "json", Path({str(tmp_path / "r.json")!r}))
        before = sorted(name for name in ("reportlab", "openpyxl") if name in sys.modules)
        render(synthetic_report(days=2, services=1), "xlsx", Path({str(tmp_path / "r.xlsx")!r}))
        print(before, "openpyxl" in sys.modules, "reportlab" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["[]", "True", "False"]


LONG_TITLE = (
    "Security groups should not allow unrestricted access to ports with high risk,"
    " including SSH on port 22 and RDP on port 3389, from 0.0.0.0/0 or ::/0"
)


def forwardable_report(report_type: str, days: int = 20):
    """A report with what used to break the layout: long titles and service names."""
    data = synthetic_report(days=days, services=12, report_type=report_type)
    compliance = dataclasses.replace(
        data.compliance,
        top_issues=(Issue("EC2.19", LONG_TITLE, "critical", 14), *data.compliance.top_issues),
    )
    usage = tuple(
        dataclasses.replace(figure, basis="incomplete", change_percent=None)
        for figure in data.usage
    )
    return dataclasses.replace(data, compliance=compliance, usage=usage)


@pytest.mark.parametrize("report_type", ["summary", "detailed"])
def test_no_two_texts_on_a_line_overlap(tmp_path, report_type):
    render(forwardable_report(report_type), "pdf", tmp_path / "r.pdf")

    boxes = text_boxes(tmp_path / "r.pdf")
    assert (
        {box.text for box in boxes} >= {"Storage (GB)", "Compute hours", "Data transfer (GB)"}
        if (report_type == "summary")
        else {"Metric", "Coverage"}
    )
    assert overlaps(boxes) == []


@pytest.mark.parametrize("report_type", ["summary", "detailed"])
def test_a_report_reads_as_finished(tmp_path, report_type):
    data = forwardable_report(report_type)
    render(data, "pdf", tmp_path / "r.pdf")

    pages = page_texts(tmp_path / "r.pdf")
    text = "\n".join(pages)
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
    # Readers' labels, not storage keys.
    for label in ("API calls", "Storage (GB)", "Compute hours", "Data transfer (GB)"):
        assert label in text
    for key in ("api_calls", "storage_gb", "compute_hours", "data_transfer_gb"):
        assert key not in text
    # The full title, wrapped over lines, never cut.
    assert " ".join(LONG_TITLE.split()) in " ".join(text.split())
    assert "..." not in text and "\u2026" not in text
    # No change against incomplete data, and why.
    assert text.count("incomplete") == len(data.usage)
    # Compliance has its chart; today's day is marked partial.
    assert "Findings by severity" in text
    assert "Critical (0)" in text and "Low (7)" in text
    assert "2026-11-23 is partial (today, still being aggregated)" in text
    boxes = text_boxes(tmp_path / "r.pdf")
    lines: dict[tuple[int, int], set[str]] = {}
    for box in boxes:
        lines.setdefault((box.page, round(box.y)), set()).add(box.text)
    rows = [cells for cells in lines.values() if {"complete", "partial"} & cells]
    assert rows
    for cells in rows:
        assert ("partial" in cells) == ("2026-11-23" in cells), cells
