"""``deconvnet segment``: a palette PNG and an overlay for any image, written atomically; bad input gives one
clear line and exit status 2. Trained models are replaced by stand-ins whose outputs are known."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from segment_stubs import ColourStub, scene

from deconvnet import __main__ as cli
from deconvnet import pipeline
from deconvnet.__main__ import main


@pytest.fixture
def stub_models(monkeypatch):
    asked = []

    def fake_trained_model(preset, recipe="two_stage", stage=2, kind="deconvnet", **_):
        asked.append(kind)
        return pipeline.Trained(ColourStub(), None, {"train": [], "val": []}, reused=True)

    monkeypatch.setattr(pipeline, "trained_model", fake_trained_model)
    monkeypatch.setattr(pipeline, "voc_root", lambda preset: None)
    monkeypatch.setattr(cli, "_class_names", lambda root, nets: ["background", "red", "blue"])
    return asked


def write(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_segment_writes_labels_and_overlay(stub_models, tmp_path, capsys):
    image, truth, _ = scene()
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    path = write(tmp_path / "shapes.png", rgba, "RGBA")
    out = tmp_path / "out"
    assert main(["segment", str(path), "--model", "edeconvnet", "--crf", "--out", str(out), "--preset", "quick"]) == 0
    assert stub_models == ["deconvnet", "fcn8s"]
    assert sorted(p.name for p in out.iterdir()) == ["shapes_labels.png", "shapes_overlay.png"]  # no temp files
    with Image.open(out / "shapes_labels.png") as labels:
        assert labels.mode == "P" and labels.size == (64, 64)
        values = np.asarray(labels)
        assert labels.getpalette()[3:6] == [128, 0, 0]  # VOC's colour of class 1
    assert values[16, 16] == 1 and values[48, 48] == 2 and values[0, 63] == 0
    assert (values[truth == 1] == 1).mean() > 0.9
    with Image.open(out / "shapes_overlay.png") as overlay:
        assert overlay.mode == "RGB" and overlay.size == (64, 64)
        assert np.asarray(overlay)[0, 63].tolist() == [0, 0, 0], "background pixels keep the image's colour"
    printed = capsys.readouterr().out
    assert "edeconvnet + CRF (quick preset): background" in printed and "dense CRF" in printed
    assert "wrote " in printed


def test_segment_single_models_and_odd_images(stub_models, tmp_path):
    grey16 = (np.tile(np.linspace(0, 65535, 40), (30, 1))).astype(np.uint16)  # 16-bit greyscale
    path = write(tmp_path / "grey.png", grey16)
    for model in ("deconvnet", "fcn8s"):
        assert main(["segment", str(path), "--model", model, "--out", str(tmp_path / model), "--preset", "quick"]) == 0
        with Image.open(tmp_path / model / "grey_labels.png") as labels:
            assert labels.size == (40, 30)
    assert stub_models == ["deconvnet", "fcn8s"]


@pytest.mark.parametrize("case, message", [
    ("missing", "no image file at"),
    ("folder", "no image file at"),
    ("corrupt", "cannot read"),
    ("tiny", "is 4x3 pixels; segment needs 8 to 2048 pixels per side"),
])
def test_segment_bad_images_are_one_clear_line(stub_models, tmp_path, capsys, case, message):
    path = tmp_path / "photo.jpg"
    if case == "folder":
        path.mkdir()
    elif case == "corrupt":
        path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)  # a JPEG header, then nothing
    elif case == "tiny":
        path = write(tmp_path / "tiny.png", np.zeros((3, 4, 3), np.uint8))
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), "--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deconvnet segment: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() and stub_models == [], "nothing loaded, nothing written"


def test_segment_refuses_a_bad_preset_before_reading(stub_models, tmp_path, capsys):
    assert main(["segment", str(tmp_path / "none.jpg"), "--preset", "huge"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
