"""``deconvnet explain``: the figure grid for any image; bad input gives one clear line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from deconvnet.__main__ import main


@pytest.fixture
def cat_rgba(tmp_path):
    """skimage's chelsea with an alpha channel, so the conversion to RGB is exercised."""
    rgba = np.dstack([skimage.data.chelsea(), np.full(skimage.data.chelsea().shape[:2], 255, np.uint8)])
    path = tmp_path / "chelsea.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_explain_writes_the_grid_and_predictions(cat_rgba, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", str(cat_rgba), "--topk", "2", "--methods", "all", "--out", str(out)]) == 0
    result = json.loads((out / "chelsea_explain.json").read_text())
    assert result["predictions"][0]["name"] == "Egyptian cat" and len(result["predictions"]) == 2
    assert result["methods"] == ["vanilla", "deconvnet", "guided", "gradcam", "guided_gradcam"]
    with Image.open(out / "chelsea_explain.png") as figure:
        assert figure.width > 400 and figure.height > 800  # 3 columns, 5 rows
    assert sorted(p.name for p in out.iterdir()) == ["chelsea_explain.json", "chelsea_explain.png"]  # no temp files
    assert "Egyptian cat" in capsys.readouterr().out


def test_explain_converts_greyscale(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.fromarray(skimage.data.camera()).save(path)
    assert main(["explain", str(path), "--topk", "1", "--methods", "gradcam", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "grey_explain.png").is_file()


@pytest.mark.parametrize("content, message", [(None, "no image file at"), (b"\x00" * 64, "cannot read")])
def test_explain_bad_files_are_one_clear_line(tmp_path, capsys, content, message):
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    assert main(["explain", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deconvnet explain: error: ") and message in err and err.count("\n") == 1


def test_explain_bad_options(cat_rgba, capsys):
    assert main(["explain", str(cat_rgba), "--methods", "vanilla,smoothgrad"]) == 2
    assert "valid methods are: vanilla, deconvnet, guided, gradcam, guided_gradcam" in capsys.readouterr().err
    assert main(["explain", str(cat_rgba), "--topk", "0"]) == 2


@pytest.fixture
def no_classifier(monkeypatch):
    """Fail if the slow part starts: every refusal below must come before it."""
    from deconvnet.explain import classifier

    monkeypatch.setattr(classifier, "load_classifier", lambda: pytest.fail("the classifier was loaded"))


def test_explain_checks_out_before_the_work(cat_rgba, tmp_path, capsys, no_classifier):
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert main(["explain", str(cat_rgba), "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err == (f"deconvnet explain: error: --out {taken} is a file, not a folder; give a folder for the outputs "
                   f"(it is made if missing)\n")


def test_explain_refuses_to_overwrite_another_images_outputs(cat_rgba, tmp_path, capsys, no_classifier):
    out = tmp_path / "out"
    out.mkdir()
    other = tmp_path / "chelsea.jpg"
    (out / "chelsea_explain.json").write_text(json.dumps({"image": str(other), "methods": [], "predictions": []}))
    assert main(["explain", str(cat_rgba), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"deconvnet explain: error: --out {out} already holds chelsea_explain.png and .json, made from "
                   f"{other}; give {cat_rgba} another --out, or delete them first\n")


def test_explain_huge_image_is_one_clear_line(tmp_path, capsys, no_classifier):
    from test_data_voc import bomb_png

    path = bomb_png(tmp_path / "huge.png")
    assert main(["explain", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deconvnet explain: error: {path} is too large to open safely (Image size") and (
        err.count("\n") == 1)
    assert not (tmp_path / "out").exists()
