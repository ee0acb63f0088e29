"""The command line: summary prints the table; bad input gives one clear line and exit status 2."""

import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "deconvnet", *args], capture_output=True, text=True, timeout=300)


def test_summary_prints_the_paper_total():
    out = run("summary", "--preset", "paper")
    assert out.returncode == 0, out.stderr
    assert "251,805,653" in out.stdout and "fc6_deconv" in out.stdout


def test_bad_preset_is_one_clear_line():
    out = run("summary", "--preset", "huge")
    assert out.returncode == 2
    assert "unknown preset 'huge'; valid presets are: cpu, paper, quick" in out.stderr
    assert "Traceback" not in out.stderr


def test_book_refuses_before_running_anything():
    out = run("book", "--preset", "huge")
    assert out.returncode == 2 and "valid presets are" in out.stderr and "executing" not in out.stdout
    out = run("book", "--preset", "quick", "-p", "epochs", "3")
    assert out.returncode == 2 and "has no parameter(s) epochs" in out.stderr
    out = run("book", "--preset", "quick", "--only", "99_nothing")
    assert out.returncode == 2 and "unknown chapter '99_nothing'; valid chapters are: 01_architecture" in out.stderr


def test_book_lists_chapters_in_toc_order():
    out = run("book", "--list")
    assert out.returncode == 0 and out.stdout.split()[0] == "01_architecture"


def test_stage0_exists_only_where_imagenet_does_not_fit():
    out = run("train", "--preset", "paper", "--stage", "0")
    assert out.returncode == 2 and "preset 'paper' has no stage 0" in out.stderr
    assert "Traceback" not in out.stderr


def test_book_refuses_an_empty_only(capsys):
    from deconvnet.__main__ import main

    assert main(["book", "--preset", "quick", "--only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deconvnet book: error: --only names no chapter; give one or more (e.g. --only 01), or "
                          "leave --only out to run them all. Chapters: 01_architecture")
    assert err.count("\n") == 1


def test_book_with_a_read_only_book_folder_is_one_line(tmp_path, monkeypatch, capsys):
    from test_files import deny_writes_to

    from deconvnet.__main__ import main
    from deconvnet.book import page, runner

    monkeypatch.setattr(runner, "RESULTS", tmp_path / "book" / "results")
    chapter = runner.Chapter("01_architecture", page.ROOT / "notebooks" / "01_architecture.ipynb",
                             tmp_path / "book" / "01_architecture.ipynb")
    monkeypatch.setattr(runner, "chapters", lambda: [chapter])
    monkeypatch.setattr(runner, "execute_chapter", lambda *a, **k: pytest.fail("a chapter ran"))
    (tmp_path / "book").mkdir()
    deny_writes_to(monkeypatch, tmp_path / "book")
    assert main(["book", "--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deconvnet book: error: the book's folder {tmp_path}/book is not writable (permission "
                          f"denied); the executed chapters and their results are written there: make it writable")
    assert err.count("\n") == 1


@pytest.mark.parametrize("under", [False, True])
def test_make_data_root_that_is_a_file_is_one_line(tmp_path, capsys, under):
    from deconvnet.__main__ import main

    file = tmp_path / "notes.txt"
    file.write_text("x")
    root = file / "sub" if under else file
    assert main(["make-data", "--root", str(root), "--no-proposals"]) == 2
    err = capsys.readouterr().err
    where = f"cannot be made: {file} is a file" if under else "is a file"
    assert err == (f"deconvnet make-data: error: --root {root} {where}, not a folder; give a folder to hold "
                   f"VOCdevkit/ (it is made if missing)\n")
    assert file.read_text() == "x"


def test_os_and_pil_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from PIL import Image

    from deconvnet import __main__ as cli
    from deconvnet.cli import commands

    def fail(args):
        raise PermissionError(13, "Permission denied", "/somewhere/file.png")

    monkeypatch.setattr(commands, "run_summary", fail)
    assert cli.main(["summary"]) == 2
    assert capsys.readouterr().err == ("deconvnet summary: error: /somewhere/file.png: Permission denied "
                                       "(--debug shows where)\n")
    for argv in (["--debug", "summary"], ["summary", "--debug"]):
        with pytest.raises(PermissionError):
            cli.main(argv)

    def bomb(args):
        raise Image.DecompressionBombError("Image size (196000000 pixels) exceeds limit of 178956970 pixels, could "
                                           "be decompression bomb DOS attack.")

    monkeypatch.setattr(commands, "run_summary", bomb)
    assert cli.main(["summary"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
