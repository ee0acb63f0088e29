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
