"""The book and the CLI on real PASCAL VOC 2012 (+ SBD): ``--voc-root`` / ``--sbd-root`` (``make book VOC=...``).

A tiny tree in VOC's own layout is written here (palette PNGs, XML boxes, odd image sizes, SBD's ``.mat``
files): the options refuse what is no VOC tree in one line, the proposals are cached beside the data, the
cache keys carry the data's identity, and (slow) every chapter executes on the tree under ``quick``, into a
temporary folder, leaving the committed ``book/`` alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import scipy.io
from PIL import Image

from deconvnet.__main__ import main
from deconvnet.book import runner
from deconvnet.cli import segment
from deconvnet.config import get_preset
from deconvnet.data import datasets
from deconvnet.data.voc import VOC_CLASSES, voc_colormap
from deconvnet.train import pipeline

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((131, 97), (97, 127), (143, 111))  # (w, h): odd, neither side a multiple of 32, portrait and landscape
CLASS_RGB = {c: tuple(int(v) for v in np.random.default_rng(c).integers(30, 226, 3)) for c in range(1, 21)}


def _palette_png(path: Path, values: np.ndarray) -> None:
    im = Image.fromarray(values.astype(np.uint8), "L")
    im.putpalette(voc_colormap().ravel().tolist())  # mode "P", as VOC ships its masks
    im.save(path)


def _scene(rng, w: int, h: int, n: int):
    """An image with ``n`` objects (filled rectangles or ellipses in their class's colour), its class and
    instance maps (255 on a 1 px band around every object, as VOC's void band) and its 1-based boxes."""
    yy, xx = np.mgrid[:h, :w]
    image = (rng.normal(0, 12, (h, w, 3)) + np.array([90, 110, 100]) + 40 * np.sin(xx / 9)[..., None]).clip(0, 255)
    cls, obj = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    objects = []
    for k in range(1, n + 1):
        low, high = (w // 3, w // 2) if k == 1 else (22, w // 3)  # the first object is the largest
        for _ in range(100):  # a place that overlaps no earlier object
            ow, oh = int(rng.integers(low, high)), int(rng.integers(low * h // w, high * h // w))
            x0, y0 = int(rng.integers(1, w - ow - 1)), int(rng.integers(1, h - oh - 1))
            if not obj[max(y0 - 2, 0):y0 + oh + 2, max(x0 - 2, 0):x0 + ow + 2].any():
                break
        # As in VOC, person is by far the commonest class: every scene's largest object is one, so that even the
        # few training steps of `quick` teach the network a class (chapter 7 explains the largest val object)
        c = 15 if k == 1 else int(rng.integers(1, 21))
        if k % 2:
            inside = (xx >= x0) & (xx < x0 + ow) & (yy >= y0) & (yy < y0 + oh)
        else:
            inside = ((xx - x0 - ow / 2) / (ow / 2)) ** 2 + ((yy - y0 - oh / 2) / (oh / 2)) ** 2 <= 1
        image[inside] = np.array(CLASS_RGB[c]) + rng.normal(0, 8, (int(inside.sum()), 3))
        band = np.zeros_like(inside)
        band[1:-1, 1:-1] = inside[1:-1, 1:-1] & ~(inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2]
                                                  & inside[1:-1, 2:])
        cls[inside], obj[inside] = c, k
        cls[band], obj[band] = 255, 255
        ys, xs = np.nonzero(inside)
        objects.append((VOC_CLASSES[c], (xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1), int(k == 3)))
    return image.clip(0, 255).astype(np.uint8), cls, obj, objects


def _xml(path: Path, w: int, h: int, objects) -> None:
    parts = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1), d in objects)
    path.write_text(f"<annotation><folder>VOC2012</folder><filename>{path.stem}.jpg</filename><size><width>{w}"
                    f"</width><height>{h}</height><depth>3</depth></size><segmented>1</segmented>{parts}</annotation>")


def write_voc_tree(base: Path, n_train: int = 26, n_val: int = 18, n_sbd: int = 6) -> tuple[Path, Path]:
    """``base/VOCdevkit/VOC2012`` and ``base/benchmark_RELEASE/dataset`` (SBD) with tiny odd-sized scenes.

    SBD lists its ``n_sbd`` own images (only in its ``img``), one VOC train image and one VOC val image,
    which must stay out of training. Returns (the VOCdevkit folder, the benchmark_RELEASE folder).
    """
    voc = base / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    sbd = base / "benchmark_RELEASE" / "dataset"
    for folder in ("img", "cls", "inst"):
        (sbd / folder).mkdir(parents=True)
    rng = np.random.default_rng(2012)
    ids = {"train": [f"2007_{i:06d}" for i in range(n_train)],
           "val": [f"2008_{i:06d}" for i in range(n_val)], "sbd": [f"2011_{i:06d}" for i in range(n_sbd)]}
    for split, names in ids.items():
        for i, image_id in enumerate(names):
            w, h = SIZES[i % len(SIZES)]
            image, cls, obj, objects = _scene(rng, w, h, 2 + i % 2)
            if split == "sbd":  # SBD: no void band, labels in .mat structs
                Image.fromarray(image).save(sbd / "img" / f"{image_id}.jpg", quality=90)
                scipy.io.savemat(sbd / "cls" / f"{image_id}.mat",
                                 {"GTcls": {"Segmentation": np.where(cls == 255, 0, cls)}})
                scipy.io.savemat(sbd / "inst" / f"{image_id}.mat",
                                 {"GTinst": {"Segmentation": np.where(obj == 255, 0, obj)}})
                continue
            Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90)
            _palette_png(voc / "SegmentationClass" / f"{image_id}.png", cls)
            _palette_png(voc / "SegmentationObject" / f"{image_id}.png", obj)
            _xml(voc / "Annotations" / f"{image_id}.xml", w, h, objects)
    splits = voc / "ImageSets" / "Segmentation"
    (splits / "train.txt").write_text("\n".join(ids["train"]) + "\n")
    (splits / "val.txt").write_text("\n".join(ids["val"]) + "\n")
    (splits / "trainval.txt").write_text("\n".join(ids["train"] + ids["val"]) + "\n")
    (sbd / "train.txt").write_text("\n".join(ids["sbd"][: n_sbd // 2] + ids["train"][:1]) + "\n")
    (sbd / "val.txt").write_text("\n".join(ids["sbd"][n_sbd // 2:] + ids["val"][:1]) + "\n")
    return base / "VOCdevkit", base / "benchmark_RELEASE"


@pytest.fixture
def no_voc_env(monkeypatch):
    """Whatever a test sets stays in the test: no real tree unless the test names one."""
    for name in (datasets.VOC_ENV, datasets.SBD_ENV):  # set first, so that teardown restores what was there
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    datasets._checked_from_env.cache_clear()


@pytest.fixture
def tiny_tree(tmp_path, no_voc_env):
    return write_voc_tree(tmp_path / "data", n_train=4, n_val=3, n_sbd=2)


def test_a_tree_is_found_from_any_of_its_folders_with_sbds_labels_in_train(tiny_tree):
    devkit, release = tiny_tree
    for given in (devkit, devkit.parent, devkit / "VOC2012"):
        real = datasets.check_voc(given, release)
        assert real.voc == devkit / "VOC2012" and real.sbd == release / "dataset"
    train, val = real.train_set(), real.val_set()
    assert len(train) == 4 + 2 and "2008_000000" not in train.ids, "SBD's copy of a VOC val image stays out"
    assert len(val) == 3 and train.classes == VOC_CLASSES
    assert datasets.describe_data(real) == "PASCAL VOC 2012 + SBD (6 train, 3 val images)"
    assert datasets.describe_data(None) == "SynthVOC (generated)"


@pytest.mark.parametrize("case", ["missing", "file", "no_tree", "bad_sbd", "sbd_alone", "lost_mask"])
def test_what_is_no_voc_tree_is_one_clear_line(tiny_tree, tmp_path, capsys, case):
    devkit, release = tiny_tree
    args = {"missing": ["--voc-root", str(tmp_path / "nowhere")],
            "file": ["--voc-root", str(devkit / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt")],
            "no_tree": ["--voc-root", str(tmp_path)],
            "bad_sbd": ["--voc-root", str(devkit), "--sbd-root", str(devkit)],
            "sbd_alone": ["--sbd-root", str(release)],
            "lost_mask": ["--voc-root", str(devkit)]}[case]
    if case == "lost_mask":
        (devkit / "VOC2012" / "SegmentationObject" / "2008_000001.png").unlink()
    expected = {"missing": "does not exist; give the folder that holds VOC 2012",
                "file": "is a file; give the folder that holds VOC 2012",
                "no_tree": "is not a VOC 2012 tree: found no ImageSets/Segmentation",
                "bad_sbd": "is not an SBD release: expected its train.txt",
                "sbd_alone": "needs --voc-root",
                "lost_mask": "2008_000001 is listed in ImageSets/Segmentation/val.txt but"}[case]
    for command in (["train", "--preset", "quick"], ["make-data", "--preset", "quick"],
                    ["book", "--preset", "quick", "--out", str(tmp_path / "pages")]):
        assert main(command + args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "pages").exists(), "refused before any chapter ran"


def test_make_data_caches_a_real_trees_proposals_beside_it(tiny_tree, capsys):
    devkit, release = tiny_tree
    assert main(["make-data", "--preset", "quick", "--voc-root", str(devkit), "--sbd-root", str(release),
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "PASCAL VOC 2012 + SBD (6 train, 3 val images)" in out and "9 computed" in out
    cache = devkit.parent / "proposals" / "selective_search_fast_128px_2000"
    real = datasets.check_voc(devkit, release)
    assert sorted(p.stem for p in cache.glob("*.npy")) == sorted(real.train_set().ids + real.val_set().ids)
    assert datasets.missing_proposals(get_preset("quick"), real) == 0
    assert main(["make-data", "--preset", "quick", "--voc-root", str(devkit), "--sbd-root", str(release)]) == 0
    assert "0 computed" in capsys.readouterr().out, "computed once, then read from disk"
    assert main(["make-data", "--voc-root", str(devkit), "--root", "elsewhere"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_the_cache_keys_carry_the_datas_identity(tiny_tree, monkeypatch, tmp_path):
    devkit, release = tiny_tree
    preset = get_preset("quick")
    runs = tmp_path / "runs"

    def keys():
        datasets._checked_from_env.cache_clear()
        return [run_dir.name for _, run_dir in pipeline.needed_runs(preset, ["deconvnet", "fcn8s"], runs)]

    synthvoc = keys()
    datasets.use_voc(devkit)
    voc = keys()
    datasets.use_voc(devkit, release)
    voc_sbd = keys()
    assert len({*synthvoc, *voc, *voc_sbd}) == 3 * len(synthvoc), "no model is shared between datasets"
    assert keys() == voc_sbd, "the same data, the same keys"
    copy = tmp_path / "copy"  # the same files elsewhere are the same data
    shutil.copytree(devkit.parent, copy)
    datasets.use_voc(copy / "VOCdevkit", copy / "benchmark_RELEASE")
    assert keys() == voc_sbd
    mask = copy / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000000.png"
    with Image.open(mask) as im:  # the same ids, one mask relabelled: other data
        relabelled = np.where(np.asarray(im) == 0, 0, 255).astype(np.uint8)
    _palette_png(mask, relabelled)
    datasets.data_identity.cache_clear()
    assert keys() != voc_sbd


def test_chapters_read_the_real_tree_and_train_on_vocs_and_sbds_labels(tiny_tree, tmp_path, monkeypatch):
    from test_pipeline import TINY

    devkit, release = tiny_tree
    datasets.use_voc(devkit, release)  # what --voc-root / --sbd-root do; chapters only call voc_root(preset)
    assert datasets.voc_root(TINY, tmp_path / "elsewhere") == devkit / "VOC2012"
    assert not (tmp_path / "elsewhere").exists(), "no scenes are generated"
    assert datasets.missing_proposals(TINY, datasets.real_voc()) == 0, "voc_root cached the proposals"
    seen = {}

    def fake_train(model, samples, cfg, run_dir, val_set, **_):
        seen[run_dir.name] = (samples.dataset.ids, val_set.ids)
        return {"train": [], "val": []}

    monkeypatch.setattr(pipeline, "train", fake_train)
    pipeline.trained_model(TINY, stage=1, runs=tmp_path / "runs")
    ((train_ids, val_ids),) = seen.values()
    assert {"2011_000000", "2011_000001"} <= set(train_ids) and len(train_ids) == 6, "VOC's train and SBD's"
    assert val_ids == ["2008_000000", "2008_000001", "2008_000002"]


def test_the_notice_of_segment_counts_a_real_trees_missing_proposals(tiny_tree, tmp_path):
    devkit, release = tiny_tree
    datasets.use_voc(devkit, release)
    notice = segment.training_notice(get_preset("quick"), ["deconvnet"], tmp_path / "runs", tmp_path / "data")
    assert ("compute the proposals of 9 images of PASCAL VOC 2012 + SBD and train the stage-0 shape classifier, "
            "deconvnet stage 1") in notice


def test_the_provenance_names_the_dataset(tmp_path):
    entry = runner.provenance("quick", 1.0, data="PASCAL VOC 2012 (1,464 train, 1,449 val images)")
    old = {k: v for k, v in entry.items() if k != "data"}  # recorded before the data was
    runner.update_manifest("04_two_stage_training", entry, results=tmp_path / "results")
    runner.update_manifest("05_aggregation", old, results=tmp_path / "results")
    page = (tmp_path / "provenance.md").read_text()
    assert "| 04_two_stage_training | quick | PASCAL VOC 2012 (1,464 train, 1,449 val images) |" in page
    assert "| 05_aggregation | quick | SynthVOC (generated) |" in page
    assert "on PASCAL VOC 2012 (1,464 train, 1,449 val images), on " in runner._provenance_cell(entry).source


def test_make_passes_voc_and_sbd_to_the_runner():
    def dry(*settings):
        return subprocess.run(["make", "-n", "-C", str(ROOT), *settings], capture_output=True, text=True,
                              check=True).stdout
    assert "--voc-root" not in dry("execute")
    assert "deconvnet book --preset paper --voc-root /d/VOCdevkit --sbd-root /d/benchmark_RELEASE" in dry(
        "execute", "PRESET=paper", "VOC=/d/VOCdevkit", "SBD=/d/benchmark_RELEASE")
    assert "--only 04 --voc-root /d/VOCdevkit" in dry("chapter", "CHAPTER=04", "VOC=/d/VOCdevkit")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~4 min on 2 idle cores; a busy machine takes several times that
def test_every_chapter_executes_on_a_tiny_voc_tree_with_sbd(tmp_path, no_voc_env):
    """``make book PRESET=quick VOC=... SBD=...`` runs ``deconvnet book`` with these options; here into a
    temporary folder, with the trained models in another, so neither book/ nor runs/ changes."""
    devkit, release = write_voc_tree(tmp_path / "data")
    pages, runs = tmp_path / "pages", tmp_path / "runs"
    manifest_before = (ROOT / "book" / "results" / "manifest.json").read_bytes()
    # two threads: started first (conftest.LONGEST_FIRST) it shares the cores with the other worker, and has them
    # both once that one is done
    env = {**os.environ, pipeline.RUNS_ENV: str(runs), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "2"}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "deconvnet", "book", "--preset", "quick", "--voc-root",
                               str(devkit), "--sbd-root", str(release), "--out", str(pages)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700)
        print(f"whole book on the tiny VOC tree: {time.perf_counter() - start:.0f} s")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        written = [line.split(" -> ")[-1] for line in done.stdout.splitlines() if " -> " in line]
        assert written == [str(c.target) for c in runner.chapters(out=pages)], "pages go to --out, not to book/"
        assert (ROOT / "book" / "results" / "manifest.json").read_bytes() == manifest_before

        data = "PASCAL VOC 2012 + SBD (32 train, 18 val images)"  # 26 + SBD's 6 (its copies of VOC's stay out)
        manifest = json.loads((pages / "results" / "manifest.json").read_text())
        assert list(manifest) == [c.name for c in runner.chapters()], "every chapter ran"
        assert {e["data"] for e in manifest.values()} == {data}
        assert f"| {data} |" in (pages / "provenance.md").read_text()
        for chapter in runner.chapters(out=pages):
            note = nbformat.read(chapter.target, as_version=4).cells[1]
            assert "provenance" in note.metadata["tags"] and f"on {data}, on " in note.source
        ensemble = json.loads((pages / "results" / "06_ensemble.json").read_text())
        assert set(ensemble["rows"]["EDeconvNet+CRF"]["iou"]) == set(VOC_CLASSES), "VOC's class names"

        real = datasets.check_voc(devkit, release)
        ids = set(real.train_set().ids) | set(real.val_set().ids)
        cached = {p.stem for p in (devkit.parent / "proposals" / "selective_search_fast_128px_2000").glob("*.npy")}
        assert ids <= cached, "proposals of every image (SBD's too) are cached beside the data"
        trained = {p.parent.name for p in (runs / "quick").glob("*/final.pt")}
        os.environ[datasets.VOC_ENV], os.environ[datasets.SBD_ENV] = str(real.voc), str(real.sbd)
        try:
            expected = {d.name for _, d in pipeline.needed_runs(get_preset("quick"), ["deconvnet", "fcn8s"], runs)}
        finally:
            del os.environ[datasets.VOC_ENV], os.environ[datasets.SBD_ENV]
        assert expected <= trained, "the models were trained under keys that carry the tree's identity"
    finally:
        shutil.rmtree(runs, ignore_errors=True)  # ~7 GB of full-width checkpoints
