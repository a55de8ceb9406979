"""The HTML report printed to PDF by headless Chromium (Debian ``chromium``),
its pages read back with poppler's ``pdftotext``/``pdfinfo``: no page ends
with a heading, no violating flow's card is split across pages, the result
is on page one. Skips without those tools (scripts/test.sh installs them)."""

import html
import re
import subprocess
import sys

import pytest

from conftest import need_tool


def print_to_pdf(html_path, pdf_path, tmp_path):
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                           f"--user-data-dir={tmp_path / 'chromium'}", f"--print-to-pdf={pdf_path}",
                           f"file://{html_path}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and pdf_path.exists(), done.stderr[-2000:]


def pages(pdf_path):
    info = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True, check=True).stdout
    count = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    out = []
    for page in range(1, count + 1):
        text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(pdf_path), "-"],
                              capture_output=True, text=True, check=True).stdout
        out.append([line.strip() for line in text.splitlines() if line.strip()])
    return out


def headings(report):
    return [html.unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", report)]


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    for tool in ("chromium", "pdftotext", "pdfinfo"):
        need_tool(tool)
    d = tmp_path_factory.mktemp("pdf")
    done = subprocess.run([sys.executable, "-m", "verifier", "--data-dir", str(d / "data"), "audit", "--demo",
                           "--html", str(d / "report.html"), "--json", str(d / "report.json"), "-q"],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    print_to_pdf(d / "report.html", d / "report.pdf", d)
    return (d / "report.html").read_text(), pages(d / "report.pdf")


def test_the_result_site_and_period_open_page_one(printed):
    report, texts = printed
    first = " ".join(texts[0][:12])
    assert "Embassy of Examplestan (demo)" in first and "VIOLATION" in first and "audit period" in first


def test_no_page_ends_with_a_heading(printed):
    report, texts = printed
    titles = set(headings(report))
    assert "Violating flows" in titles and len(titles) >= 6
    for number, lines in enumerate(texts, 1):
        assert lines, f"page {number} is empty"
        assert lines[-1] not in titles, f"page {number} ends with the heading '{lines[-1]}'"


def test_no_violating_flow_is_split_across_pages(printed):
    """Every page inside the violating-flows section starts with a flow's
    first line (zone · rule), never with the rest of a card."""
    report, texts = printed
    titles = set(headings(report))
    inside = False
    flows_seen = 0
    for number, lines in enumerate(texts, 1):
        if inside and lines[0] not in titles:
            assert re.match(r"^\S+ · rule ", lines[0]), f"page {number} starts inside a flow: '{lines[0]}'"
        for line in lines:
            if line == "Violating flows":
                inside = True
            elif line in titles and inside and line != "Violating flows":
                inside = False
            flows_seen += bool(re.match(r"^\S+ · rule ", line))
    assert flows_seen == 7
    assert 3 <= len(texts) <= 9, f"{len(texts)} pages"
