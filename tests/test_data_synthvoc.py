"""SynthVOC: deterministic, atomic, reused, VOC-shaped scenes whose class shows in the shape, not the colour."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deconvnet import config
from deconvnet.__main__ import main
from deconvnet.config import DataConfig
from deconvnet.data import synthvoc
from deconvnet.data.shapes import SHAPE_NAMES, draw_shape, shape_transform
from deconvnet.data.synthvoc import CLASSES, make_synthvoc, scene
from deconvnet.data.voc import METADATA, VOID, VOCSegmentation

TINY = DataConfig(train_images=6, val_images=3, image_size=64, min_scale=0.15, void_px=1, proposal_side=64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_trees_whatever_the_worker_count(tmp_path):
    a = make_synthvoc(TINY, tmp_path / "a", workers=1, progress=False)
    b = make_synthvoc(TINY, tmp_path / "b", workers=2, progress=False)
    files_a = _files(a)
    assert files_a == _files(b)
    assert len([f for f in files_a if f.startswith("JPEGImages")]) == 9
    c = make_synthvoc(DataConfig(**{**TINY.__dict__, "seed": 1}), tmp_path / "c", workers=1, progress=False)
    assert _files(c)["JPEGImages/synth_000000.jpg"] != files_a["JPEGImages/synth_000000.jpg"]


def test_tree_has_the_voc_layout_and_splits(tmp_path):
    voc = make_synthvoc(TINY, tmp_path, workers=1, progress=False)
    assert voc == tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations"):
        assert len(list((voc / folder).iterdir())) == 9
    splits = {s: (voc / "ImageSets" / "Segmentation" / f"{s}.txt").read_text().split() for s in
              ("train", "val", "trainval")}
    assert len(splits["train"]) == 6 and len(splits["val"]) == 3
    assert splits["trainval"] == splits["train"] + splits["val"]
    ds = VOCSegmentation(tmp_path, "val")
    assert ds.classes == CLASSES and len(ds.classes) == 21


def test_existing_tree_with_same_parameters_is_reused_and_a_stale_one_replaced(tmp_path):
    voc = make_synthvoc(TINY, tmp_path, workers=1, progress=False)
    stamp = (voc / METADATA).stat().st_mtime_ns
    (tmp_path / "proposals").mkdir()
    # a field that changes no file (stage-2 IoU rule) reuses the tree
    assert make_synthvoc(DataConfig(**{**TINY.__dict__, "window_iou": 0.7}), tmp_path, progress=False) == voc
    assert (voc / METADATA).stat().st_mtime_ns == stamp
    bigger = DataConfig(**{**TINY.__dict__, "val_images": 4})
    make_synthvoc(bigger, tmp_path, workers=1, progress=False)
    assert len(VOCSegmentation(tmp_path, "val")) == 4
    assert not (tmp_path / "proposals").exists()  # boxes of the old images went with them
    assert [p.name for p in tmp_path.iterdir()] == ["VOCdevkit"]


def test_interrupted_run_leaves_no_tree_that_looks_complete(tmp_path, monkeypatch):
    calls = []

    def failing(job):
        calls.append(job)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(job)

    real = synthvoc._write_scene
    monkeypatch.setattr(synthvoc, "_write_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        make_synthvoc(TINY, tmp_path, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt"):
        VOCSegmentation(tmp_path, "train")


def test_folders_of_killed_runs_are_cleaned_up(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".synthvoc-tmp-{int(dead.stdout)}-abc"
    (leftover / "VOCdevkit").mkdir(parents=True)
    make_synthvoc(TINY, tmp_path, workers=1, progress=False)
    assert not leftover.exists()


def test_refuses_to_replace_a_tree_it_did_not_make(tmp_path):
    (tmp_path / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    with pytest.raises(ValueError, match="no SynthVOC tree.*choose another root"):
        make_synthvoc(TINY, tmp_path, progress=False)


def test_scenes_have_1_to_6_objects_void_bands_occlusion_and_a_wide_scale_range():
    cfg = DataConfig(train_images=8, val_images=4, image_size=96, void_px=2)
    counts, scales, occluded = [], [], 0
    for i in range(40):
        image, cls, inst, objects = scene(cfg, i)
        h, w = cls.shape
        assert image.shape == (h, w, 3) and max(h, w) == 96
        assert set(np.unique(cls)) <= {*range(21), VOID}
        counts.append(len(objects))
        for k, obj in enumerate(objects, start=1):
            labelled = inst == k
            assert (cls[labelled] == obj["label"]).all()
            occluded += labelled.sum() < obj["mask"].sum()
            x0, y0, x1, y1 = obj["box"]
            scales.append(np.sqrt((x1 - x0) * (y1 - y0) / (h * w)))
        objects_px = (inst > 0) & (inst != VOID)
        outside = np.zeros_like(objects_px)  # background pixels right next to an object
        outside[:, 1:] |= objects_px[:, :-1]
        outside[:, :-1] |= objects_px[:, 1:]
        outside &= ~objects_px
        assert (cls[outside] == VOID).all()
    assert min(counts) >= 1 and max(counts) <= 6 and len(set(counts)) >= 4
    assert min(scales) < 0.1 and max(scales) > 0.8  # from a few pixels to filling the image
    assert occluded > 0


def test_colour_does_not_give_the_class_away():
    """Nearest class mean of an object's colour statistics does no better than guessing the commonest class."""
    feats, labels = [], []
    for i in range(120):
        image, _, inst, objects = scene(TINY, i)
        for k, obj in enumerate(objects, start=1):
            px = image[inst == k].astype(float)
            feats.append(np.concatenate([px.mean(0), px.std(0)]))
            labels.append(obj["label"])
    x, y = np.array(feats), np.array(labels)
    half = len(y) // 2
    classes = np.unique(y[:half])
    centroids = np.stack([x[:half][y[:half] == c].mean(0) for c in classes])
    guess = classes[((x[half:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
    majority = np.bincount(y[half:]).max() / len(y[half:])
    assert (guess == y[half:]).mean() <= majority


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_every_class_draws_and_keeps_thin_parts_when_small(name):
    big = draw_shape(name, (64, 64), shape_transform((32, 32), 28, 10, 1.0))
    small = draw_shape(name, (16, 16), shape_transform((8, 8), 5, 10, 1.0))
    assert 0 < big.mean() < 1 and small.sum() >= 6


def test_classes_differ_in_shape():
    masks = np.stack([draw_shape(n, (48, 48), shape_transform((24, 24), 22, 0, 1.0)) for n in SHAPE_NAMES])
    flat = masks.reshape(len(masks), -1)
    inter = flat.astype(int) @ flat.T.astype(int)
    iou = inter / (flat.sum(1)[:, None] + flat.sum(1)[None] - inter)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.9


def test_cli_make_data_writes_then_reuses(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(config.PRESETS, "quick", config.PRESETS["quick"].replace(data=TINY))
    root = tmp_path / "synth"
    assert main(["make-data", "--preset", "quick", "--root", str(root), "--workers", "1"]) == 0
    assert "6 train + 3 val images" in capsys.readouterr().out
    assert len(list((root / "proposals").rglob("*.npy"))) == 9
    stamp = os.stat(root / "VOCdevkit" / "VOC2012" / METADATA).st_mtime_ns
    assert main(["make-data", "--preset", "quick", "--root", str(root)]) == 0
    assert os.stat(root / "VOCdevkit" / "VOC2012" / METADATA).st_mtime_ns == stamp


def test_cli_make_data_reports_a_clear_error(tmp_path, capsys):
    (tmp_path / "VOCdevkit").mkdir()
    assert main(["make-data", "--preset", "quick", "--root", str(tmp_path), "--no-proposals"]) == 2
    assert "deconvnet make-data: error:" in capsys.readouterr().err


def test_bad_data_config_says_what_is_wrong():
    with pytest.raises(ValueError, match="min_instances"):
        DataConfig(min_instances=3, max_instances=2)
    with pytest.raises(ValueError, match="proposal_mode"):
        DataConfig(proposal_mode="edgeboxes")


def test_presets_scale_the_data():
    sizes = [config.get_preset(n).data for n in ("quick", "cpu", "paper")]
    assert [d.train_images for d in sizes] == sorted(d.train_images for d in sizes)
    assert sizes[0].train_images + sizes[0].val_images <= 250 and sizes[1].train_images >= 2000


def test_a_tree_that_lost_files_is_rebuilt_not_trusted(tmp_path):
    voc = make_synthvoc(TINY, tmp_path, workers=1, progress=False)
    reference = _files(voc)
    (voc / "JPEGImages" / "synth_000002.jpg").unlink()
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("synth_000006\n")
    assert make_synthvoc(TINY, tmp_path, workers=1, progress=False) == voc
    assert _files(voc) == reference


def test_no_single_pixel_colour_names_the_class():
    """A nearest-neighbour classifier of one object pixel's colour barely beats the commonest class (v2)."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    colours, labels = [], []
    for i in range(120):
        image, _, inst, objects = scene(TINY, i)
        for k, obj in enumerate(objects, start=1):
            px = image[inst == k].astype(float)
            pick = rng.choice(len(px), size=min(20, len(px)), replace=False)
            colours.append(px[pick])
            labels += [obj["label"]] * len(pick)
    x, y = np.concatenate(colours), np.array(labels)
    half = len(y) // 2
    accuracy = (KNeighborsClassifier(15).fit(x[:half], y[:half]).predict(x[half:]) == y[half:]).mean()
    majority = np.bincount(y[half:]).max() / len(y[half:])
    assert accuracy < majority + 0.05


def test_the_classes_of_a_material_share_it_and_every_material_has_two():
    from deconvnet.data.materials import CLASS_FAMILY, FAMILIES, texture

    assert set(CLASS_FAMILY) == set(SHAPE_NAMES)
    assert sorted(list(CLASS_FAMILY.values()).count(f) for f in FAMILIES) == [2] * len(FAMILIES)
    for family in FAMILIES:
        a = texture(family, np.random.default_rng(1), (40, 50), 12.0)
        assert a.shape == (40, 50, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 255
        assert np.array_equal(a, texture(family, np.random.default_rng(1), (40, 50), 12.0)), "seeded"
        assert a.std() > 5, f"{family}: a texture, not a flat fill"
    with pytest.raises(ValueError, match="valid families are"):
        texture("fur", np.random.default_rng(0), (8, 8), 4.0)


# Run in a fresh interpreter: OpenCV's thread pool is made to exist first (any earlier cv2 call in the same
# process does that, e.g. an earlier test's), and then both parallel paths must finish. Forked workers used to
# inherit the pool's locked state and wait forever in their first cv2 call, stalling the whole test run.
_AFTER_OPENCV = """
import sys
from pathlib import Path
import cv2, numpy as np
from deconvnet.config import DataConfig
from deconvnet.data.proposals import cached_proposals
from deconvnet.data.synthvoc import make_synthvoc
from deconvnet.data.voc import VOCSegmentation
cv2.setNumThreads(2)
for _ in range(3):
    cv2.GaussianBlur(np.ones((1500, 1500), np.float32), (0, 0), 3)
cfg = DataConfig(train_images=6, val_images=3, image_size=64, min_scale=0.15, void_px=1, proposal_side=64)
make_synthvoc(cfg, Path(sys.argv[1]), workers=2, progress=False)
boxes = cached_proposals(VOCSegmentation(Path(sys.argv[1]), "val"), cfg, workers=2, progress=False)
print(len(boxes))
"""


def test_parallel_generation_and_proposals_finish_after_opencv_made_its_threads(tmp_path):
    try:
        out = subprocess.run([sys.executable, "-c", _AFTER_OPENCV, str(tmp_path)], capture_output=True,
                             text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("make_synthvoc / cached_proposals with 2 workers hung after OpenCV had started its threads")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3"]
