"""``deconvnet segment``: a palette PNG and an overlay for any image, written atomically; bad input gives one
clear line and exit status 2. Trained models are replaced by stand-ins whose outputs are known."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from segment_stubs import ColourStub, scene

from deconvnet.__main__ import main
from deconvnet.cli import segment
from deconvnet.data import datasets
from deconvnet.train import pipeline


@pytest.fixture
def stub_models(monkeypatch):
    asked = []

    def fake_trained_model(preset, recipe="two_stage", stage=2, kind="deconvnet", **_):
        asked.append(kind)
        return pipeline.Trained(ColourStub(), None, {"train": [], "val": []}, reused=True)

    monkeypatch.setattr(pipeline, "trained_model", fake_trained_model)
    monkeypatch.setattr(datasets, "voc_root", lambda preset: None)
    monkeypatch.setattr(segment, "_class_names", lambda root, nets: ["background", "red", "blue"])
    return asked


def write(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_segment_writes_labels_and_overlay(stub_models, tmp_path, capsys, monkeypatch):
    from deconvnet.book.page import RESULTS_ENV

    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))  # chapter 6 has tuned no CRF for quick here
    image, truth, _ = scene()
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    path = write(tmp_path / "shapes.png", rgba, "RGBA")
    out = tmp_path / "out"
    assert main(["segment", str(path), "--model", "edeconvnet", "--crf", "--out", str(out), "--preset", "quick"]) == 0
    assert stub_models == ["deconvnet", "fcn8s"]
    assert sorted(p.name for p in out.iterdir()) == ["shapes_png_labels.png", "shapes_png_overlay.png"]  # no temps
    with Image.open(out / "shapes_png_labels.png") as labels:
        assert labels.mode == "P" and labels.size == (64, 64)
        values = np.asarray(labels)
        assert labels.getpalette()[3:6] == [128, 0, 0]  # VOC's colour of class 1
    assert values[16, 16] == 1 and values[48, 48] == 2 and values[0, 63] == 0
    assert (values[truth == 1] == 1).mean() > 0.9
    with Image.open(out / "shapes_png_overlay.png") as overlay:
        assert overlay.mode == "RGB" and overlay.size == (64, 64)
        assert np.asarray(overlay)[0, 63].tolist() == [0, 0, 0], "background pixels keep the image's colour"
    printed = capsys.readouterr().out
    assert "edeconvnet + CRF (quick preset; CRF of the preset: w 5, sxy 20, srgb 3): background" in printed
    assert "dense CRF" in printed
    assert "wrote " in printed


def test_segment_single_models_and_odd_images(stub_models, tmp_path):
    grey16 = (np.tile(np.linspace(0, 65535, 40), (30, 1))).astype(np.uint16)  # 16-bit greyscale
    path = write(tmp_path / "grey.png", grey16)
    for model in ("deconvnet", "fcn8s"):
        assert main(["segment", str(path), "--model", model, "--out", str(tmp_path / model), "--preset", "quick"]) == 0
        with Image.open(tmp_path / model / "grey_png_labels.png") as labels:
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


def test_a_jpg_and_a_png_of_one_name_do_not_overwrite_each_other(stub_models, tmp_path):
    image, _, _ = scene()
    out = tmp_path / "out"
    for name in ("a.jpg", "a.png"):
        assert main(["segment", str(write(tmp_path / name, image)), "--out", str(out), "--preset", "quick"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg_labels.png", "a_jpg_overlay.png", "a_png_labels.png",
                                                     "a_png_overlay.png"]


@pytest.mark.parametrize("case, message", [
    ("file", "--out {out} is a file, not a folder; give a folder for the outputs (it is made if missing)"),
    ("under_file", "--out {out} cannot be made: {parent} is a file, not a folder; give a folder"),
    ("read_only", "--out {out} is not writable (permission denied); give a folder for the outputs"),
])
def test_segment_checks_the_output_folder_before_any_work(stub_models, tmp_path, capsys, monkeypatch, case,
                                                          message):
    from test_files import deny_writes_to

    image = write(tmp_path / "shapes.png", scene()[0])
    parent = tmp_path / "taken.png"
    out = parent
    if case == "file":
        parent.write_bytes(b"x")
    elif case == "under_file":
        parent.write_bytes(b"x")
        out = parent / "sub"
    else:
        out.mkdir()
        deny_writes_to(monkeypatch, out)
    assert main(["segment", str(image), "--out", str(out), "--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deconvnet segment: error: {message.format(out=out, parent=parent)}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert stub_models == [], "refused before any model was loaded"


def test_a_huge_image_is_one_clear_line_before_decoding(stub_models, tmp_path, capsys):
    from test_data_voc import bomb_png

    path = bomb_png(tmp_path / "huge.png")
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), "--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err == (f"deconvnet segment: error: {path} is too large to open safely (Image size (196000000 pixels) "
                   f"exceeds limit of 178956970 pixels); shrink it first\n")
    Image.new("RGB", (3000, 20)).save(path)  # under PIL's limit but over segment's: refused from the header
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), "--preset", "quick"]) == 2
    assert "is 3000x20 pixels; segment needs 8 to 2048 pixels per side" in capsys.readouterr().err
    assert stub_models == []


def test_first_run_says_what_it_will_train_how_long_and_how_to_pick_quick(stub_models, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(pipeline, "RUNS", tmp_path / "runs")  # a fresh checkout: nothing trained, no scenes
    monkeypatch.setattr(datasets, "DATA", tmp_path / "data")
    image = write(tmp_path / "shapes.png", scene()[0])
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), "--preset", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("deconvnet segment: the cpu preset has not made everything this needs yet, so it will "
                          "now make its 2,800 SynthVOC scenes and their proposals and train the stage-0 shape "
                          "classifier, deconvnet stage 1, deconvnet stage 2, fcn8s stage 1, fcn8s stage 2 "
                          "(about an hour")
    assert "add --preset quick" in err and err.count("\n") == 1
    assert stub_models == ["deconvnet", "fcn8s"], "the notice comes first, then the (stubbed) training"


def test_nothing_is_announced_when_everything_is_on_disk(tmp_path):
    from deconvnet.config import get_preset
    from deconvnet.data.voc import METADATA

    preset = get_preset("quick")
    runs, data = tmp_path / "runs", tmp_path / "data"
    assert "--preset quick" not in segment.training_notice(preset, ["fcn8s"], runs, data)
    for _, run_dir in pipeline.needed_runs(preset, ["fcn8s"], runs):
        run_dir.mkdir(parents=True)
        (run_dir / "final.pt").write_bytes(b"")
    assert "make its 208 SynthVOC scenes" in segment.training_notice(preset, ["fcn8s"], runs, data)
    assert "train" not in segment.training_notice(preset, ["fcn8s"], runs, data).split("(")[0]
    tree = data / "synthvoc-quick" / "VOCdevkit" / "VOC2012"
    tree.mkdir(parents=True)
    (tree / METADATA).write_text("{}")
    assert segment.training_notice(preset, ["fcn8s"], runs, data) is None


@pytest.mark.parametrize("name", ["quick", "cpu"])
def test_the_announced_runs_are_those_trained_model_uses(tmp_path, monkeypatch, name):
    from deconvnet.config import get_preset

    used = []

    def fake_train_or_load(kind, model_cfg, samples_kind, cfg, run_dir, *rest):
        used.append(run_dir)
        return pipeline.Trained(None, run_dir, {}, reused=True)

    monkeypatch.setattr(pipeline, "voc_root", lambda *a, **k: tmp_path)
    monkeypatch.setattr(pipeline, "_train_or_load", fake_train_or_load)
    preset = get_preset(name)
    for kind in ("deconvnet", "fcn8s"):
        pipeline.trained_model(preset, kind=kind, runs=tmp_path / "runs")
    assert sorted(set(used)) == sorted({run_dir for _, run_dir in pipeline.needed_runs(preset, ["deconvnet", "fcn8s"],
                                                                                  tmp_path / "runs")})


def test_crf_alone_means_chapter_6s_tuned_setting_for_this_preset(stub_models, tmp_path, capsys, monkeypatch):
    import json

    from deconvnet.book.page import RESULTS_ENV
    from deconvnet.cli.segment import tuned_crf
    from deconvnet.config import CRFParams, get_preset

    path = write(tmp_path / "shapes.png", scene()[0])
    results = tmp_path / "results"
    results.mkdir()
    tuned = {"bilateral_srgb": 10.0, "bilateral_sxy": 10.0, "bilateral_weight": 10.0, "gaussian_sxy": 3.0,
             "gaussian_weight": 3.0, "iterations": 10}
    (results / "06_ensemble.json").write_text(json.dumps({"preset": "quick", "crf": {"tuned": tuned}}))
    monkeypatch.setenv(RESULTS_ENV, str(results))
    assert tuned_crf("quick") == CRFParams(**tuned)
    assert tuned_crf("paper") is None, "tuned under another preset: not used"
    assert main(["segment", str(path), "--crf", "--out", str(tmp_path / "a"), "--preset", "quick"]) == 0
    assert "(quick preset; CRF tuned in chapter 6: w 10, sxy 10, srgb 10)" in capsys.readouterr().out
    assert main(["segment", str(path), "--crf", "preset", "--out", str(tmp_path / "b"), "--preset", "quick"]) == 0
    assert f"; CRF of the preset: {get_preset('quick').infer.crf.label()})" in capsys.readouterr().out
