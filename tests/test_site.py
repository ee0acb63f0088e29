"""The rendered book: a strict build (-W -n), then headless Chromium opens every page.

Each page must load the theme's CSS, show every figure, make no request outside this machine, have no
broken internal link and log no error to the console. A screenshot of each page is kept in
``_build/screenshots/`` for people to look at.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest

from deconvnet.book.pdf import serve

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def built():
    """Build the book exactly as `make render` does; any Sphinx warning fails the build."""
    shutil.rmtree(HTML, ignore_errors=True)  # no stale page from an earlier build can hide or cause a failure
    jb = Path(sys.executable).parent / "jupyter-book"
    out = subprocess.run([str(jb), "build", ".", "-W", "-n", "--keep-going"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return HTML


def pages(html: Path) -> list[str]:
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html") if "_static" not in p.parts)


@pytest.fixture(scope="module")
def server(built):
    with serve(built) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_build_has_every_toc_page(built):
    found = pages(built)
    for name in ("book/intro.html", "book/01_architecture.html", "book/references.html", "book/provenance.html"):
        assert name in found


def visit(browser, url: str, shot: Path) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, failed, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url, wait_until="networkidle")
    info = page.evaluate("""() => ({
        images: Array.from(document.images).map(i => ({
            src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
        sheets: Array.from(document.styleSheets).map(s => s.href || ''),
        links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
        themed: getComputedStyle(document.body).getPropertyValue('--pst-color-primary').trim() !== '',
    })""")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    return {**info, "requests": requests, "failed": failed, "errors": errors}


def ids_of(path: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', path.read_text(errors="replace")))


def test_every_page_in_a_browser(built, server, browser):
    problems = []
    for name in pages(built):
        seen = visit(browser, urljoin(server, name), SHOTS / (name.replace("/", "__").removesuffix(".html") + ".png"))
        local = [u for u in seen["requests"] if u.startswith(server) or u.startswith(("data:", "blob:", "about:"))]
        problems += [f"{name}: external request {u}" for u in seen["requests"] if u not in local]
        problems += [f"{name}: failed request {u}" for u in seen["failed"]]
        problems += [f"{name}: broken image {i['src']}" for i in seen["images"] if not i["ok"]]
        problems += [f"{name}: console error {e}" for e in seen["errors"]]
        if not seen["themed"] or not any("sphinx-book-theme" in s or "pydata" in s for s in seen["sheets"]):
            problems.append(f"{name}: the theme's CSS did not load ({seen['sheets']})")
        for link in seen["links"]:
            if not link.startswith(server):
                continue
            target, anchor = urldefrag(link)
            path = built / unquote(urlparse(target).path.removeprefix("/"))
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                problems.append(f"{name}: broken link {link}")
            elif anchor and path.suffix == ".html" and unquote(anchor) not in ids_of(path):
                problems.append(f"{name}: link to a missing anchor {link}")
    assert not problems, "\n".join(problems)


def test_chapter_pages_show_figures_and_provenance(built):
    for chapter in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"):
        html = (built / "book" / f"{chapter.stem}.html").read_text()
        assert "Provenance" in html, f"{chapter.stem}: no provenance note"
        assert "<img" in html, f"{chapter.stem}: no figure"
        assert "Traceback (most recent call last)" not in html, f"{chapter.stem}: an error was rendered"
