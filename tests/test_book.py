"""The runner: atomic pages, a provenance note, a manifest, and failures that name notebook and cell."""

import json

import nbformat
import pytest

from deconvnet import book


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
    return book.Chapter("09_test", tmp_path / "notebooks" / "09_test.ipynb", tmp_path / "book" / "09_test.ipynb")


def test_failing_cell_is_named_and_the_old_page_survives(chapter):
    write_notebook(chapter.source, "x = 1", "raise RuntimeError('boom')")
    chapter.target.write_text("old page")
    where = r"09_test.ipynb failed in code cell 3 of 3 \(cell 4, starting `raise RuntimeError.*RuntimeError: boom"
    with pytest.raises(book.ChapterFailed, match=where):
        book.execute_chapter(chapter, "quick", {}, progress=False)
    assert chapter.target.read_text() == "old page"
    assert [p.name for p in chapter.target.parent.iterdir()] == ["09_test.ipynb"], "no temporary file left"


def test_success_adds_provenance_under_the_title(chapter):
    write_notebook(chapter.source, "print(preset)")
    entry = book.execute_chapter(chapter, "cpu", {}, progress=False)
    nb = nbformat.read(chapter.target, as_version=4)
    assert nb.cells[0].source == "# A chapter"
    assert "provenance" in nb.cells[1].metadata["tags"] and "preset **cpu**" in nb.cells[1].source
    assert "cpu" in nb.cells[-1].outputs[0]["text"]  # the preset reached the notebook
    assert {"preset", "device", "torch", "commit", "wall_time_s", "executed"} <= set(entry)


def test_manifest_and_provenance_page(tmp_path):
    entry = {"preset": "quick", "device": "cpu (x, 2 threads)", "torch": "2.14.1", "python": "3.11",
             "commit": "abc", "wall_time_s": 12.0, "executed": "now"}
    book.update_manifest("01_architecture", entry, results=tmp_path / "results")
    book.update_manifest("02_unpooling", {**entry, "wall_time_s": 3.0}, results=tmp_path / "results")
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert list(manifest) == ["01_architecture", "02_unpooling"]
    page = (tmp_path / "provenance.md").read_text()
    assert "| 01_architecture | quick |" in page and "Total execution time: 15 s." in page


def test_results_stay_out_of_the_book_outside_book_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(book.RESULTS_ENV, raising=False)
    assert book.results_dir() == book.SCRATCH_RESULTS
    monkeypatch.setenv(book.RESULTS_ENV, str(tmp_path))
    book.save_result("x", {"a": 1})
    assert book.load_result("x") == {"a": 1}
    with pytest.raises(FileNotFoundError, match="run its chapter first"):
        book.load_result("never_written")


def test_chapters_follow_the_toc():
    names = [c.name for c in book.chapters()]
    assert names[0] == "01_architecture"
    assert all(c.source.is_file() for c in book.chapters())
