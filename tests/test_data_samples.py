"""Stage-1 crops and stage-2 windows: what is labelled, where the windows come from, void outside, balance,
and the same samples with any number of DataLoader workers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.ops import box_iou

from deconvnet.config import DataConfig
from deconvnet.data.proposals import cached_proposals
from deconvnet.data.samples import (
    PAD_RGB,
    Stage1Crops,
    Stage2Windows,
    balance_repeats,
    context_window,
    cut_window,
    stage2_windows,
)
from deconvnet.data.synthvoc import make_synthvoc
from deconvnet.data.voc import VOID, VOCSegmentation

CFG = DataConfig(train_images=8, val_images=2, image_size=64, min_scale=0.2, void_px=1, proposal_side=64)
CROP = 32


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_synthvoc(CFG, root, workers=1, progress=False)
    return VOCSegmentation(root, "train")


@pytest.fixture(scope="module")
def proposals(train):
    return cached_proposals(train, CFG, workers=1, progress=False)


def test_context_window_is_a_square_1_2_times_the_longer_side_about_the_centre():
    assert context_window(np.array([10, 20, 30, 30]), 1.2).tolist() == pytest.approx([8, 13, 32, 37])
    assert context_window(np.array([10, 20, 30, 30]), 1.2, square=False).tolist() == pytest.approx([8, 19, 32, 31])


def test_cut_window_makes_the_outside_void_and_mean_coloured():
    image = torch.full((3, 10, 10), 7, dtype=torch.uint8)
    label = torch.ones(10, 10, dtype=torch.int64)
    img, lab = cut_window(image, label, np.array([-10, 0, 10, 10]), 20)  # left half outside
    assert img.shape == (3, 20, 20) and lab.shape == (20, 20)
    assert lab[:, :10].eq(VOID).all() and lab[:, 10:].eq(1).all()
    assert img[:, :, :9].eq(torch.tensor(PAD_RGB, dtype=torch.uint8).view(3, 1, 1)).all()
    _, lab = cut_window(image, label, np.array([50, 50, 60, 60]), 8)  # wholly outside
    assert lab.eq(VOID).all()


def test_stage1_keeps_only_the_centred_instance_labelled(train):
    crops = Stage1Crops(train, CFG, CROP, train=False)
    expected = [int(c) for i in range(len(train)) for c in train.annotation(i)[0]]
    assert len(crops) == len(expected) >= 8
    for j, label_j in enumerate(expected):
        image, label = crops[j]
        assert image.shape == (3, CROP, CROP) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
        assert label.dtype == torch.int64 and set(label.unique().tolist()) <= {0, label_j, VOID}
        ys, xs = torch.nonzero(label == label_j, as_tuple=True)
        assert len(ys) > 0
        assert abs(ys.float().mean() - CROP / 2) < CROP / 4 and abs(xs.float().mean() - CROP / 2) < CROP / 4


def test_random_crops_repeat_for_a_seed_and_epoch_and_change_with_the_epoch(train):
    a, b = Stage1Crops(train, CFG, CROP, seed=3), Stage1Crops(train, CFG, CROP, seed=3)
    assert all(torch.equal(a[j][0], b[j][0]) for j in range(len(a)))
    b.set_epoch(1)
    assert any(not torch.equal(a[j][0], b[j][0]) for j in range(len(a)))


def test_two_dataloader_workers_give_the_same_batches_as_none(train, proposals):
    for samples in (Stage1Crops(train, CFG, CROP, seed=1), Stage2Windows(train, proposals, CFG, CROP, seed=1)):
        subset = torch.utils.data.Subset(samples, range(min(16, len(samples))))
        serial = list(DataLoader(subset, batch_size=4, num_workers=0))
        parallel = list(DataLoader(subset, batch_size=4, num_workers=2))
        assert len(serial) == len(parallel) > 0
        for (x0, y0), (x1, y1) in zip(serial, parallel, strict=True):
            assert x0.shape == (4, 3, CROP, CROP) and torch.equal(x0, x1) and torch.equal(y0, y1)


def test_stage2_windows_overlap_a_ground_truth_box_by_the_iou_rule(train, proposals):
    annotations = [train.annotation(i)[:2] for i in range(len(train))]
    index, boxes, classes = stage2_windows(annotations, proposals, 0.5)
    assert len(index) > len(train)  # several windows per image
    for i, box, c in zip(index, boxes, classes, strict=True):
        labels, gt = annotations[i]
        iou = box_iou(torch.as_tensor(box[None]), torch.as_tensor(gt))[0]
        assert iou.max() >= 0.5 and labels[iou.argmax()] == c
    rejected = stage2_windows(annotations, proposals, 0.9)[0]
    assert len(rejected) < len(index)


def test_stage2_labels_every_class_in_the_window(train, proposals):
    windows = Stage2Windows(train, proposals, CFG, CROP, train=False)
    assert len(windows) >= len(stage2_windows([train.annotation(i)[:2] for i in range(len(train))], proposals, 0.5)[0])
    classes_seen = [set(windows[j][1].unique().tolist()) - {0, VOID} for j in range(0, len(windows), 3)]
    assert max(len(c) for c in classes_seen) >= 2  # a window holding two objects labels both


def test_stage2_window_reaching_outside_the_image_is_void_there(train):
    i = 0
    labels, boxes, (h, w) = train.annotation(i)
    box = np.array([[0, 0, w / 2, h / 2]], np.float32)  # top-left corner: a 2x window reaches outside
    props = [box if k == i else np.zeros((0, 4), np.float32) for k in range(len(train))]
    cfg = DataConfig(**{**CFG.__dict__, "window_iou": 1e-6, "context": 2.0})
    windows = Stage2Windows(train, props, cfg, CROP, train=False)
    _, label = windows[0]
    assert label[:4].eq(VOID).all() and label[:, :4].eq(VOID).all()


def test_rare_classes_are_repeated_up_to_the_median_and_the_cap():
    classes = np.array([1] * 12 + [2] * 2 + [3] * 6)
    assert balance_repeats(classes, cap=8).tolist() == [1] * 12 + [3] * 2 + [1] * 6
    assert balance_repeats(np.array([1] * 100 + [2] + [3] * 50), cap=8)[100] == 8


def test_stage2_refuses_proposals_for_another_dataset(train):
    with pytest.raises(ValueError, match="proposals for 1 images but the dataset has 8"):
        Stage2Windows(train, [np.zeros((0, 4), np.float32)], CFG, CROP)
