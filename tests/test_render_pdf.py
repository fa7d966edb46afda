import subprocess
import sys
import textwrap

from pypdf import PdfReader

from handlers.shared.reports.cells import display_number
from handlers.shared.reports.model import SUMMARY
from handlers.shared.reports.render import render
from handlers.shared.reports.render_pdf import rows_per_page
from handlers.shared.reports.synthetic import synthetic_report
from tests.conftest import ROOT

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
        assert f"Page {number}" in text
        assert "acme - detailed - 50d" in text  # running header
    # Every data row is on some page, in order: first and last day present.
    assert "2026-10-05\napi_calls\nplatform" in data_pages[0]
    assert "2026-11-23\ncost\n" in data_pages[-1]


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
