"""atomic_path: the old file survives a failed write, a good write replaces it readable, no temp file stays."""

import pytest

from deconvnet.files import atomic_path


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_good_write_replaces_and_is_readable(tmp_path):
    target = tmp_path / "sub" / "fig.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["fig.png"]


def deny_writes_to(monkeypatch, folder):
    """Make ``folder`` read-only as far as os.access tells (the tests may run as root, who can write anyway)."""
    import os

    real = os.access

    def access(path, mode, **kwargs):
        return False if (mode & os.W_OK and os.path.abspath(path) == os.path.abspath(folder)) else real(
            path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_check_folder_refuses_files_and_unwritable_folders_without_creating_anything(tmp_path, monkeypatch):
    from deconvnet.files import check_folder

    assert check_folder(tmp_path / "new" / "deeper", "--out x", "choose another") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()
    file = tmp_path / "a.png"
    file.write_bytes(b"png")
    with pytest.raises(NotADirectoryError, match=r"^--out x is a file, not a folder; choose another$"):
        check_folder(file, "--out x", "choose another")
    with pytest.raises(NotADirectoryError, match=rf"^--out x cannot be made: {file} is a file, not a folder; fix$"):
        check_folder(file / "sub", "--out x", "fix")
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_writes_to(monkeypatch, locked)
    with pytest.raises(PermissionError, match=r"^--out x is not writable \(permission denied\); fix$"):
        check_folder(locked, "--out x", "fix")
    with pytest.raises(PermissionError, match=rf"cannot be made: {locked} is not writable"):
        check_folder(locked / "sub", "--out x", "fix")
    assert not (locked / "sub").exists()


def test_data_and_runs_live_where_deconvnet_home_says(tmp_path):
    """``DECONVNET_HOME`` moves ``data/`` and ``runs/`` (another disk, a shared cache); unset: this checkout."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    show = ("from deconvnet.book import page; from deconvnet.data import datasets; "
            "from deconvnet.train import pipeline; "
            "print(datasets.DATA, pipeline.RUNS, page.SCRATCH_RESULTS)")
    env = {k: v for k, v in os.environ.items() if k not in ("DECONVNET_HOME", "DECONVNET_RUNS_DIR")}
    moved = subprocess.run([sys.executable, "-c", show], env={**env, "DECONVNET_HOME": str(tmp_path)},
                           capture_output=True, text=True, check=True).stdout.split()
    assert moved == [str(tmp_path / "data"), str(tmp_path / "runs"), str(tmp_path / "runs" / "results")]
    checkout = Path(__file__).resolve().parents[1]
    default = subprocess.run([sys.executable, "-c", show], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
    assert default == [str(checkout / "data"), str(checkout / "runs"), str(checkout / "runs" / "results")]
