"""Metrics agree with scikit-learn's confusion matrix and Jaccard score; void pixels are not counted."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from deconvnet.metrics import SegmentationMetrics, confusion_matrix


def test_against_scikit_learn():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(3, 40, 50))
    target[:, :3] = 255
    pred = np.where(rng.random(target.shape) < 0.7, target % 255, rng.integers(0, 5, size=target.shape))
    metrics = SegmentationMetrics(5)
    for p, t in zip(pred, target, strict=True):
        metrics.update(torch.from_numpy(p), torch.from_numpy(t))
    keep = target != 255
    expected = sk_confusion(target[keep], pred[keep], labels=range(5))
    np.testing.assert_array_equal(metrics.matrix.numpy(), expected)
    iou = jaccard_score(target[keep], pred[keep], labels=range(5), average=None)
    np.testing.assert_allclose(metrics.iou().numpy(), iou)
    assert metrics.mean_iou() == pytest.approx(iou.mean())
    assert metrics.pixel_accuracy() == pytest.approx((target[keep] == pred[keep]).mean())


def test_absent_class_is_nan_and_left_out_of_the_mean():
    m = SegmentationMetrics(3)
    m.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    iou = m.iou()
    assert torch.isnan(iou[2]) and m.mean_iou() == pytest.approx((0.5 + 0.5) / 2)
    assert m.summary(["bg", "a", "b"])["iou"]["b"] is None


def test_labels_out_of_range_are_refused():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 3)
