"""The command line: summary prints the table; bad input gives one clear line and exit status 2."""

import subprocess
import sys


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
