"""The "Rerun this book" page's recipe for real VOC + SBD runs, as printed, on a tiny VOC-layout tree.

The page's Python block is executed with only its four settings swapped (paths and preset) and its progress
bars off, so the code a reader copies is the code that ran here: VOC's reader with SBD's labels, both training
stages, and the instance-wise evaluation.
"""

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from deconvnet.config import DataConfig, ModelConfig, TrainConfig, get_preset
from deconvnet.data import VOCSegmentation, make_synthvoc

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "rerun.md"
MARKER = "% This block is executed by tests/test_rerun_page.py"
SETTINGS = ("VOC", "SBD", "OUT", "preset")


def page_code() -> str:
    text = PAGE.read_text()
    assert MARKER in text, "the tested block lost its marker"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    assert block, "no python block after the marker"
    return block.group(1)


def with_settings(code: str) -> str:
    for name in SETTINGS:
        code, n = re.subn(rf"^{name} = .*$", f"{name} = TEST_{name.upper()}", code, flags=re.M)
        assert n == 1, f"the page must set {name} exactly once, on a line of its own"
    return code.replace("progress=True", "progress=False")  # progress bars stay quiet under tests


def tiny_preset():
    stage = TrainConfig(iterations=2, batch_size=2, accumulate=1, lr_step=2, log_every=1, val_every=2, val_images=1,
                        checkpoint_every=2, workers=0)
    quick = get_preset("quick")
    return quick.replace(
        model=ModelConfig(width=0.0625, input_size=64, fc_kernel=2, pretrained=False),
        data=DataConfig(train_images=4, val_images=2, image_size=96, min_scale=0.25, void_px=1, proposal_side=96,
                        max_proposals=100),
        stage1=stage, stage2=stage, infer=replace(quick.infer, top_n=4, batch_size=4))


def write_sbd(voc_root: Path, sbd: Path) -> tuple[str, str]:
    """One SBD-only image (a relabelled copy of a VOC train image) and one SBD id that is in VOC's val split."""
    train_id = (voc_root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[0]
    val_id = (voc_root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    train = VOCSegmentation(voc_root.parents[1], "train")
    cls, obj = train.load_masks(0)
    for folder in ("img", "cls", "inst"):
        (sbd / folder).mkdir(parents=True)
    extra = "2011_999999"
    shutil.copy(voc_root / "JPEGImages" / f"{train_id}.jpg", sbd / "img" / f"{extra}.jpg")
    scipy.io.savemat(sbd / "cls" / f"{extra}.mat", {"GTcls": {"Segmentation": np.where(cls == 255, 0, cls)}})
    scipy.io.savemat(sbd / "inst" / f"{extra}.mat", {"GTinst": {"Segmentation": np.where(obj == 255, 0, obj)}})
    (sbd / "train.txt").write_text(f"{extra}\n")
    (sbd / "val.txt").write_text(f"{val_id}\n")  # in VOC's val: must stay out of training
    return extra, val_id


def test_the_pages_voc_and_sbd_recipe_runs_as_printed(tmp_path):
    preset = tiny_preset()
    voc = tmp_path / "pascal"
    voc_root = make_synthvoc(preset.data, voc)
    extra, val_id = write_sbd(voc_root, tmp_path / "benchmark_RELEASE" / "dataset")
    namespace = {"TEST_VOC": voc, "TEST_SBD": tmp_path / "benchmark_RELEASE", "TEST_OUT": tmp_path / "runs",
                 "TEST_PRESET": preset}
    exec(compile(with_settings(page_code()), str(PAGE), "exec"), namespace)
    train_set = namespace["train_set"]
    assert len(train_set) == preset.data.train_images + 1 and extra in train_set.ids and val_id not in train_set.ids
    assert train_set.load_masks(train_set.ids.index(extra))[0].shape == train_set.load_image(0).shape[:2]
    for stage in ("stage1", "stage2"):
        assert (tmp_path / "runs" / stage / "final.pt").is_file()
    assert len(namespace["history"]["val"]) >= 1
    board = namespace["board"]
    assert board.metrics.matrix.sum() > 0 and len(board.boundary) == preset.data.val_images


def test_settings_must_appear_once():
    with pytest.raises(AssertionError, match="exactly once"):
        with_settings("VOC = 1\nSBD = 2\nOUT = 3\n")
