"""The runner: atomic pages, a provenance note, a manifest, and failures that name notebook and cell."""

import json

import nbformat
import pytest

from deconvnet.book import extension, page, runner


def write_notebook(path, *sources):
    cells = [nbformat.v4.new_markdown_cell("# A chapter")]
    params = nbformat.v4.new_code_cell('preset = "quick"')
    params.metadata["tags"] = ["parameters"]
    cells += [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), path)


@pytest.fixture
def chapter(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    return runner.Chapter("09_test", tmp_path / "notebooks" / "09_test.ipynb", tmp_path / "book" / "09_test.ipynb")


def test_failing_cell_is_named_and_the_old_page_survives(chapter):
    write_notebook(chapter.source, "x = 1", "raise RuntimeError('boom')")
    chapter.target.write_text("old page")
    where = r"09_test.ipynb failed in code cell 3 of 3 \(cell 4, starting `raise RuntimeError.*RuntimeError: boom"
    with pytest.raises(runner.ChapterFailed, match=where):
        runner.execute_chapter(chapter, "quick", {}, progress=False)
    assert chapter.target.read_text() == "old page"
    assert [p.name for p in chapter.target.parent.iterdir()] == ["09_test.ipynb"], "no temporary file left"


def test_success_adds_provenance_under_the_title(chapter):
    write_notebook(chapter.source, "print(preset)")
    entry = runner.execute_chapter(chapter, "cpu", {}, progress=False)
    nb = nbformat.read(chapter.target, as_version=4)
    assert nb.cells[0].source == "# A chapter"
    assert "provenance" in nb.cells[1].metadata["tags"] and "preset **cpu**" in nb.cells[1].source
    assert "cpu" in nb.cells[-1].outputs[0]["text"]  # the preset reached the notebook
    assert {"preset", "device", "torch", "commit", "wall_time_s", "executed"} <= set(entry)


def test_manifest_and_provenance_page(tmp_path):
    entry = {"preset": "quick", "device": "cpu (x, 2 threads)", "torch": "2.14.1", "python": "3.11",
             "commit": "abc", "wall_time_s": 12.0, "executed": "now"}
    runner.update_manifest("01_architecture", entry, results=tmp_path / "results")
    runner.update_manifest("02_unpooling", {**entry, "wall_time_s": 3.0}, results=tmp_path / "results")
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert list(manifest) == ["01_architecture", "02_unpooling"]
    page = (tmp_path / "provenance.md").read_text()
    assert "| 01_architecture | quick |" in page and "Total execution time: 15 s." in page


def test_results_stay_out_of_the_book_outside_book_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(page.RESULTS_ENV, raising=False)
    assert page.results_dir() == page.SCRATCH_RESULTS
    monkeypatch.setenv(page.RESULTS_ENV, str(tmp_path))
    page.save_result("x", {"a": 1})
    assert page.load_result("x") == {"a": 1}
    with pytest.raises(FileNotFoundError, match="run its chapter first"):
        page.load_result("never_written")


def test_chapters_follow_the_toc():
    names = [c.name for c in runner.chapters()]
    assert names[0] == "01_architecture"
    assert all(c.source.is_file() for c in runner.chapters())


def test_an_empty_selection_is_refused_not_the_whole_book():
    all_chapters = runner.chapters()
    assert runner.select(all_chapters, None) == all_chapters
    with pytest.raises(ValueError, match=r"^--only names no chapter; give one or more \(e\.g\. --only 01\)"):
        runner.select(all_chapters, [])


def test_a_read_only_book_folder_is_refused_before_any_chapter_runs(chapter, monkeypatch):
    from test_files import deny_writes_to

    write_notebook(chapter.source, "print(preset)")
    monkeypatch.setattr(runner, "chapters", lambda: [chapter])
    monkeypatch.setattr(runner, "RESULTS", chapter.target.parent / "results")
    monkeypatch.setattr(runner, "execute_chapter", lambda *a, **k: pytest.fail("a chapter ran"))
    deny_writes_to(monkeypatch, chapter.target.parent)
    with pytest.raises(PermissionError, match=r"the book's folder .*book is not writable \(permission denied\); "
                                              r"the executed chapters .*make it writable \(chmod -R u\+w "):
        runner.run_chapters(preset="quick")


def _theme_options(url: str) -> dict:
    """What jupyter-book makes of ``_config.yml`` with ``repository.url`` set to ``url``, then the extension."""
    from types import SimpleNamespace

    import yaml
    from jupyter_book.config import yaml_to_sphinx

    config = yaml.safe_load((page.ROOT / "_config.yml").read_text())
    assert "deconvnet.book" in config["sphinx"]["extra_extensions"]
    config["repository"]["url"] = url
    options = yaml_to_sphinx(config)[0]["html_theme_options"]  # jupyter-book refuses use_*_button without a URL
    extension.repository_buttons(None, SimpleNamespace(html_theme_options=options))
    return options


def test_repository_and_launch_buttons_only_with_a_repository_url():
    assert yaml_config_url() == "", "no invented repository: the URL is the user's to set"
    off = _theme_options("")
    assert not any(off[k] for k in extension.REPOSITORY_BUTTONS) and "launch_buttons" not in off
    assert "repository_url" not in off
    on = _theme_options("https://github.com/someone/deconvnet")
    assert all(on[k] for k in extension.REPOSITORY_BUTTONS) and on["repository_url"] == "https://github.com/someone/deconvnet"
    assert on["launch_buttons"]["binderhub_url"] == "https://mybinder.org"


def yaml_config_url() -> str:
    import yaml

    return yaml.safe_load((page.ROOT / "_config.yml").read_text())["repository"]["url"]


def test_show_code_is_the_package_source_headed_by_its_file():
    import inspect

    from deconvnet.book import show_code
    from deconvnet.model.layers import pool, unpool

    shown = show_code(pool, unpool).data
    assert shown.startswith("# src/deconvnet/model/layers.py\ndef pool(")
    assert inspect.getsource(unpool).rstrip() in shown and shown.count("# src/deconvnet/model/layers.py") == 2


def test_shown_path_never_prints_a_machines_folder(tmp_path):
    from deconvnet.book.page import ROOT, shown_path

    assert shown_path(ROOT / "book" / "intro.md") == "book/intro.md"
    assert shown_path(tmp_path / "out" / "figure.png") == "figure.png"
