"""`make pdf`'s printer and checker (deconvnet.book.pdf) on a small page that Chromium prints here.

The whole book's PDF is made and checked by `make pdf` itself; these tests make sure the check can fail:
a figure that a solution's dropdown hides must still be printed, and a missing figure, a figure hidden
from print and a blank page are each reported.
"""

import numpy as np
import pytest
from PIL import Image

from deconvnet.book.pdf import Figure, check_pdf, print_pdf

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
  .admonition.toggle-hidden .body {{ display: none; }}
  @media print {{ .noprint {{ display: none; }} }}
</style></head><body><article>
  <h1>A small book</h1>
  <p>A figure in the text:</p><img src="red.png" alt="red">
  <div class="admonition dropdown toggle-hidden"><p class="admonition-title">Solution</p>
    <div class="body"><img src="green.png" alt="hidden until opened"></div></div>
  <details><summary>More</summary><img src="blue.jpg" alt="in a closed details"></details>
  {extra}
</article></body></html>"""


@pytest.fixture
def site(tmp_path):
    for name, size, colour in (("red.png", (40, 30), (200, 30, 30)), ("green.png", (50, 20), (30, 160, 60)),
                               ("blue.jpg", (64, 48), (40, 60, 200)), ("grey.png", (33, 33), (90, 90, 90))):
        Image.new("RGB", size, colour).save(tmp_path / name)

    def write(extra: str = ""):
        (tmp_path / "index.html").write_text(PAGE.format(extra=extra))
        return tmp_path

    return write


def test_every_figure_is_printed_even_in_closed_dropdowns(site, tmp_path):
    folder = site()
    pdf = tmp_path / "out" / "book.pdf"
    figures = print_pdf(folder, pdf)
    assert sorted((f.width, f.height) for f in figures) == [(40, 30), (50, 20), (64, 48)]
    assert all(f.shown for f in figures)
    report = check_pdf(pdf, figures, tmp_path / "pages")
    assert report.problems == [], report.problems
    assert report.pages == 1 and report.placed == 3 and report.figures == 3
    png = np.asarray(Image.open(report.page_pngs[0]).convert("RGB"))
    assert (np.abs(png.astype(int) - (30, 160, 60)).sum(-1) < 60).any(), "the dropdown's figure is on the page"


def test_missing_hidden_and_blank_are_reported(site, tmp_path):
    blank_page = ('<img class="noprint" src="grey.png" alt="screen only">'
                  '<div style="break-before: page; height: 150mm"></div><p style="break-before: page">the end</p>')
    folder = site(blank_page)
    pdf = tmp_path / "book.pdf"
    figures = print_pdf(folder, pdf)
    assert any(not f.shown for f in figures)
    report = check_pdf(pdf, [*figures, Figure("lost.png", 77, 55, True)])
    problems = "\n".join(report.problems)
    assert "figure hidden in print: grey.png" in problems
    assert "1 of 1 figure(s) of 77x55 px missing from the PDF: lost.png" in problems
    assert "page 2 is blank" in problems and report.pages == 3
