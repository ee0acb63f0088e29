"""The whole book as one PDF, printed offline by headless Chromium, and a check that every figure is in it.

``python -m deconvnet.book.pdf`` (what ``make pdf`` runs):

1. ``build_singlehtml`` renders the book as one HTML page (``jupyter-book build --builder singlehtml``, as
   strict as ``make render``) into ``_build/singlehtml``;
2. ``print_pdf`` serves that folder on 127.0.0.1, opens the page (``root_page``) in Chromium through
   Playwright with every request outside the machine refused, opens every hidden solution and dropdown,
   waits for the images and the mathematics, and prints it to ``_build/pdf/book.pdf`` (A4, written
   atomically). It returns the page's figures: every ``<img>`` of the book's text, with its size in pixels;
3. ``check_pdf`` opens the PDF with PyMuPDF, renders every page to a PNG in ``_build/pdf/pages/`` for people
   to look at, and checks that no page is blank and that every figure of the HTML page is drawn in the PDF:
   for each size of image, at least as many images of that size are placed on its pages.

Chromium embeds a picture at its own pixel size, which is what makes the sizes comparable. Notebook-facing
modules do not import this one; it needs the ``dev`` extra (Playwright, PyMuPDF) and Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deconvnet.files import atomic_path

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "_build" / "pdf" / "book.pdf"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
BLANK_SHARE = 0.001  # a page on which fewer pixels than this share differ from white shows nothing

# In the page: open what is hidden, then wait for every image and for MathJax.
# Paper has no scroll bar: long code lines wrap instead of being cut at the margin.
_PRINT_CSS = """@media print {
    pre, pre span { white-space: pre-wrap !important; overflow-wrap: anywhere; }
}"""
_EXPAND = """() => {
    document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });
}"""
_SETTLE = """async () => {
    await Promise.all(Array.from(document.images).map(i => i.complete ? null :
        new Promise(done => { i.addEventListener('load', done); i.addEventListener('error', done); })));
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
}"""
# The book's figures: every image of the text (the <article>), whether print shows it, and its pixel size.
_FIGURES = """() => Array.from(document.querySelectorAll('article img'))
    .map(img => ({src: img.getAttribute('src') || '', width: img.naturalWidth, height: img.naturalHeight,
                  shown: img.getClientRects().length > 0 && getComputedStyle(img).visibility !== 'hidden'}))"""


@dataclass(frozen=True)
class Figure:
    """An image of the HTML book: its source, its size in pixels, and whether the print media shows it."""

    src: str
    width: int
    height: int
    shown: bool


@dataclass
class PdfReport:
    """What ``check_pdf`` found; ``problems`` is empty when the PDF is complete."""

    pages: int
    figures: int  # images the HTML book has
    placed: int  # images placed on the PDF's pages
    page_pngs: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        state = "complete" if not self.problems else f"{len(self.problems)} problem(s)"
        return (f"{self.pages} pages, {self.placed} images placed for {self.figures} figures of the HTML book: "
                f"{state}")


def build_singlehtml(root: Path = ROOT, strict: bool = True) -> Path:
    """Render the book as one page into ``root/_build/singlehtml``; any Sphinx warning fails it if ``strict``."""
    jb = Path(sys.executable).parent / "jupyter-book"
    command = [str(jb if jb.exists() else "jupyter-book"), "build", str(root), "--builder", "singlehtml"]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    out = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"jupyter-book singlehtml build failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    index = root / "_build" / "singlehtml" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"the singlehtml build wrote no {index}")
    return index.parent


def root_page(folder: Path) -> str:
    """The single page, at the folder's top level, where its links (``_static/``, ``_images/``) resolve.

    With the book's root document in ``book/``, Sphinx writes the page as ``book/intro.html`` with links
    relative to the top level, and jupyter-book's ``index.html`` only redirects there. A copy of the page at
    the top level, ``book.html``, shows it as meant.
    """
    index = folder / "index.html"
    target = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', index.read_text(errors="replace"), re.I)
    if target is None:
        return "index.html"  # the page itself
    page = folder / target.group(1)
    if page.parent == folder:
        return page.name
    with atomic_path(folder / "book.html") as tmp:
        shutil.copyfile(page, tmp)
    return "book.html"


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for as long as the block runs; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise FileNotFoundError("chromium is not installed: `apt-get install chromium` (.ci/run does this)")
    return found


def print_pdf(folder: Path, out: Path = OUT, page: str | None = None) -> list[Figure]:
    """Print ``folder/page`` (default: ``root_page(folder)``) to ``out`` (A4) with every hidden part opened.

    Returns the page's figures.

    Requests outside 127.0.0.1 are refused, so the PDF shows only what the build itself holds.
    """
    from playwright.sync_api import sync_playwright

    page = page or root_page(folder)
    with serve(folder) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                (base, "data:", "blob:")) else route.abort())
            tab.goto(base + page, wait_until="networkidle")
            tab.add_style_tag(content=_PRINT_CSS)
            tab.evaluate(_EXPAND)
            tab.evaluate(_SETTLE)
            tab.emulate_media(media="print")
            figures = [Figure(**f) for f in tab.evaluate(_FIGURES)]
            with atomic_path(out) as tmp:
                tab.pdf(path=str(tmp), format="A4", print_background=True,
                        margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()
    return figures


def check_pdf(pdf: Path, figures: list[Figure], pages_dir: Path | None = None, dpi: int = 50) -> PdfReport:
    """Every figure placed, no blank page; each page rendered to ``pages_dir/page-NNN.png`` when given."""
    import numpy as np
    import pymupdf

    problems = [f"figure hidden in print: {f.src}" for f in figures if not f.shown]
    problems += [f"figure never loaded: {f.src}" for f in figures if f.width == 0 or f.height == 0]
    placed: Counter[tuple[int, int]] = Counter()
    pngs = []
    with pymupdf.open(pdf) as doc:
        for number, page in enumerate(doc, start=1):
            for info in page.get_image_info():
                x0, y0, x1, y1 = info["bbox"]
                if x1 - x0 > 1 and y1 - y0 > 1:  # drawn at a visible size
                    placed[(info["width"], info["height"])] += 1
            pix = page.get_pixmap(dpi=dpi)
            rgb = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, pix.n)[..., :3]
            if (rgb.min(-1) < 245).mean() < BLANK_SHARE:
                problems.append(f"page {number} is blank")
            if pages_dir is not None:
                path = pages_dir / f"page-{number:03d}.png"
                with atomic_path(path) as tmp:
                    pix.save(str(tmp))
                pngs.append(path)
        pages = doc.page_count
    # an SVG is drawn as vector paths, not as an image: it is checked for being shown, not counted
    wanted = Counter((f.width, f.height) for f in figures if f.width and f.height and not f.src.endswith(".svg"))
    for size, count in sorted(wanted.items()):
        if placed[size] < count:
            missing = [f.src for f in figures if (f.width, f.height) == size]
            problems.append(f"{count - placed[size]} of {count} figure(s) of {size[0]}x{size[1]} px missing from "
                            f"the PDF: {', '.join(missing[:3])}")
    return PdfReport(pages=pages, figures=len(figures), placed=sum(placed.values()), page_pngs=pngs,
                     problems=problems)


def make_pdf(root: Path = ROOT, out: Path | None = None, build: bool = True) -> PdfReport:
    """Build the single page, print it and check the PDF; the page PNGs go to ``pages/`` beside the PDF."""
    out = out or root / "_build" / "pdf" / "book.pdf"
    folder = build_singlehtml(root) if build else root / "_build" / "singlehtml"
    figures = print_pdf(folder, out)
    pages_dir = out.parent / "pages"
    if pages_dir.is_dir():
        shutil.rmtree(pages_dir)  # no page of an older, longer PDF stays behind
    return check_pdf(out, figures, pages_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deconvnet.book.pdf", description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="print the existing _build/singlehtml as it is")
    parser.add_argument("--out", type=Path, default=None, help="the PDF to write (default: _build/pdf/book.pdf)")
    args = parser.parse_args(argv)
    out = args.out or OUT
    try:
        report = make_pdf(ROOT, out, build=not args.no_build)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"deconvnet.book.pdf: error: {err}", file=sys.stderr)
        return 2
    print(f"{out}: {report}")
    print(f"page images for inspection: {out.parent / 'pages'}")
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
