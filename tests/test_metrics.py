"""Metrics agree with scikit-learn's confusion matrix and Jaccard score; void pixels are not counted; boundary F1,
instance IoU and the two baselines of chapters 3 to 7 match hand-computed cases."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from deconvnet.infer.metrics import (
    Scoreboard,
    SegmentationMetrics,
    all_background_matrix,
    baseline_predictions,
    boundary_f1,
    commonest_object_class,
    confusion_matrix,
    instance_ious,
    region_boundary,
    size_bin,
)


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


# --- boundary F1 and instance IoU (chapters 5, 6) --------------------------------------------------------

def _square_scene():
    """6x6: a 3x3 object of class 1 at rows/cols 1-3; the prediction is the same square one column right."""
    target = np.zeros((6, 6), np.int64)
    target[1:4, 1:4] = 1
    pred = np.zeros((6, 6), np.int64)
    pred[1:4, 2:5] = 1
    return pred, target


def test_region_boundary_is_the_inner_outline_and_ignores_the_image_border():
    _, target = _square_scene()
    outline = region_boundary(target == 1)
    assert outline.sum() == 8 and not outline[2, 2]  # a 3x3 square: all but its centre
    assert region_boundary(np.ones((4, 4), bool)).sum() == 0  # touching the border is no boundary


def test_boundary_f1_by_hand():
    pred, target = _square_scene()
    # tolerance 0: object outlines share 4 of 8 pixels (P = R = 1/2, F1 = 1/2); background outlines (the
    # 12 pixels around each square) share 4 (F1 = 1/3). Mean over the two classes: 5/12.
    assert boundary_f1(pred, target, tolerance=0) == pytest.approx(5 / 12)
    # tolerance 1: every outline pixel has a partner at distance <= 1
    assert boundary_f1(pred, target, tolerance=1) == pytest.approx(1.0)
    assert boundary_f1(target, target, tolerance=0) == 1.0
    # a class only the prediction has scores 0 and joins the mean
    wrong = pred.copy()
    wrong[5, 5] = 2
    assert boundary_f1(wrong, target, tolerance=1) == pytest.approx((1 + 12 / 13 + 0) / 3)  # background: P 12/14


def test_boundary_f1_void_is_not_the_class_and_is_never_predicted():
    target = np.zeros((8, 8), np.int64)
    target[2:6, 2:6] = 255  # void band
    target[3:5, 3:5] = 1
    pred = np.zeros((8, 8), np.int64)
    pred[2:6, 2:6] = 1  # the object grown over its void band: one pixel off everywhere
    # the predicted outline's corners lie sqrt(2) from the true one: a tolerance of 1.5 px covers the band
    assert boundary_f1(pred, target, tolerance=1.5) == pytest.approx(1.0)
    assert boundary_f1(pred, target, tolerance=0) == pytest.approx(0.5)  # object 0, background 1
    with pytest.raises(ValueError, match="differ in size"):
        boundary_f1(pred[:4], target)


def test_instance_iou_by_hand():
    pred, target = _square_scene()
    labels, masks = np.array([1]), (target == 1)[None]
    # the 2x window (6x6 about the square's centre, clipped to the image) sees TP 6, FN 3, FP 3 -> 6/12
    ious, scales = instance_ious(pred, target, labels, masks)
    assert ious.tolist() == [pytest.approx(0.5)] and scales.tolist() == [pytest.approx(3 / 6)]
    # another object of the same class elsewhere, predicted, does not count against this one
    target2, pred2 = target.copy(), pred.copy()
    target2[5, 5] = pred2[5, 5] = 1
    masks2 = np.stack([target2 == 1, np.zeros_like(target2, bool)])
    masks2[0, 5, 5], masks2[1, 5, 5] = False, True
    ious2, _ = instance_ious(pred2, target2, np.array([1, 1]), masks2)
    assert ious2.tolist() == [pytest.approx(0.5), pytest.approx(1.0)]


def test_scoreboard_splits_instances_by_size():
    assert size_bin([0.05, 0.15, 0.3, 0.4, 0.9]).tolist() == [0, 1, 1, 2, 2]
    board = Scoreboard(num_classes=2)
    pred, target = _square_scene()
    board.update(pred, target, np.array([1]), (target == 1)[None])
    board.update(target, target, np.array([1]), (target == 1)[None])
    summary = board.summary(["bg", "obj"])
    assert summary["images"] == 2 and summary["by_size"]["large"] == {"mean_iou": pytest.approx(0.75), "instances": 2}
    assert summary["by_size"]["small"] == {"mean_iou": None, "instances": 0}
    assert summary["boundary_f1"] == pytest.approx(1.0)  # default tolerance: 1 px on this tiny image
    assert summary["mean_iou"] == board.metrics.mean_iou()
    assert np.array_equal(np.sum(board.matrices, 0), board.metrics.matrix.numpy()), "per image, summing to all"
    ious, images = board.size_ious("large")
    assert ious.tolist() == [pytest.approx(0.5), pytest.approx(1.0)] and images.tolist() == [0, 1]


def test_where_and_what_separates_finding_from_naming():
    from deconvnet.infer.metrics import WhereAndWhat

    target = torch.tensor([[0, 1, 1, 255], [0, 2, 2, 0]])
    scores = torch.zeros(3, 2, 4)
    scores[0] = torch.tensor([[5.0, -5, -5, 0], [5, -5, -5, 5]])  # finds exactly the four object pixels
    scores[1] = torch.tensor([[0.0, 1, 1, 0], [0, 1, 0, 0]])
    scores[2] = torch.tensor([[0.0, 0, 0, 0], [0, 0, 2, 0]])  # named right: both 1s and one of the 2s
    w = WhereAndWhat()
    w.update(scores, target)
    assert w.summary() == {"where_iou": 1.0, "what_accuracy": 0.75, "what_baseline": 0.5}


def test_scoreboard_takes_tv_tensors_without_numpy_warnings():
    import warnings

    from torchvision import tv_tensors

    from deconvnet.infer.metrics import Scoreboard

    truth = tv_tensors.Mask(torch.zeros(8, 8, dtype=torch.int64))
    truth[2:6, 2:6] = 1
    board = Scoreboard(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        board.update(truth, truth)
    assert board.metrics.pixel_accuracy() == 1.0 and board.boundary == [1.0]
    assert int(truth.sum()) == 16, "the caller's mask is left as it was"


# --- the baselines of chapters 3 to 7 ----------------------------------------------------------------------

def _tiny_scene():
    """3x4, 3 classes: background 5 px, class 1 3 px, class 2 2 px, void 2 px."""
    return np.array([[0, 0, 1, 1],
                     [0, 2, 1, 255],
                     [0, 0, 2, 255]], np.uint8)


def test_commonest_object_class_pools_pixels_over_the_images():
    # Class 1 wins two images by one pixel, class 2 the third by five: pooled, class 2 has more pixels (7 vs 4).
    a = np.array([[1, 1, 2, 0, 255, 255, 255, 255]], np.uint8)  # much void and background: neither counts
    c = np.array([[2, 2, 2, 2, 2, 0, 0, 0]], np.uint8)
    assert commonest_object_class([a, a, c], 3) == 2
    assert commonest_object_class([torch.from_numpy(a).long()] * 2 + [torch.from_numpy(c).long()], 3) == 2
    assert commonest_object_class((t for t in [a, a, c]), 3) == 2, "any iterable, a generator too"
    assert commonest_object_class([np.array([[2, 1, 0, 0]])], 3) == 1, "a tie goes to the lower class"
    with pytest.raises(ValueError, match="outside 0..2"):
        commonest_object_class([np.array([[1, 3]])], 3)


def test_baseline_predictions_exact_maps_void_left_to_the_metrics():
    target = _tiny_scene()
    kept = target.copy()
    maps = baseline_predictions(target, 1)
    assert list(maps) == ["all background", "commonest class"]
    objects = (target > 0) & (target != 255)
    assert np.array_equal(target, kept), "the target is not modified"
    for m in maps.values():
        assert isinstance(m, np.ndarray) and m.shape == target.shape and m.dtype == target.dtype
        assert (m[target == 255] == 0).all(), "void is predicted background, never 255 (boundary F1 reads it)"
    assert (maps["all background"] == 0).all()
    assert (maps["commonest class"][objects] == 1).all() and (maps["commonest class"][~objects] == 0).all()
    # torch in, torch out, the same maps
    as_torch = baseline_predictions(torch.from_numpy(target).long(), 1)
    for name, m in as_torch.items():
        assert isinstance(m, torch.Tensor) and m.dtype == torch.int64
        assert np.array_equal(m.numpy(), maps[name])


def test_baseline_predictions_equal_the_rules_the_chapters_wrote_by_hand():
    """The former lambdas of chapters 3, 4 (torch) and 5, 6 (numpy), on random maps with void and background."""
    rng = np.random.default_rng(1)
    targets = [rng.choice([0, 0, 0, 1, 2, 3, 4, 255], size=(7, 9)).astype(np.uint8) for _ in range(5)]
    tensors = [torch.from_numpy(t.astype("int64")) for t in targets]
    old_commonest = int(torch.bincount(torch.cat([t[(t > 0) & (t < 255)] for t in tensors]), minlength=5)[1:].argmax())
    assert commonest_object_class(tensors, 5) == commonest_object_class(targets, 5) == old_commonest + 1
    c = old_commonest + 1
    for t, tt in zip(targets, tensors, strict=True):
        new, new_t = baseline_predictions(t, c), baseline_predictions(tt, c)
        assert np.array_equal(new["all background"], np.zeros_like(t))
        assert np.array_equal(new["commonest class"], np.where((t > 0) & (t < 255), c, 0).astype(t.dtype))
        assert torch.equal(new_t["all background"], torch.zeros_like(tt))
        assert torch.equal(new_t["commonest class"], torch.where((tt > 0) & (tt < 255), c, 0))


def test_baseline_mean_iou_by_hand():
    target = _tiny_scene()
    commonest = commonest_object_class([target], 3)
    assert commonest == 1
    maps = baseline_predictions(target, commonest)
    scores = {}
    for name, pred in maps.items():
        m = SegmentationMetrics(3)
        m.update(torch.from_numpy(pred), torch.from_numpy(target))
        scores[name] = m
    # all background: IoU 5/10 for background, 0 for both classes -> 1/6
    assert scores["all background"].mean_iou() == pytest.approx(1 / 6)
    # commonest (1) on the objects: background 5/5, class 1 3/(3+2), class 2 0/2 -> (1 + 0.6 + 0) / 3
    assert scores["commonest class"].mean_iou() == pytest.approx(1.6 / 3)
    assert scores["commonest class"].pixel_accuracy() == pytest.approx(8 / 10), "void is not counted"
    # chapter 7's form, from a confusion matrix alone, is the same matrix as scoring the map
    background = scores["all background"].matrix
    assert torch.equal(all_background_matrix(scores["commonest class"].matrix), background)
    assert torch.equal(all_background_matrix(scores["commonest class"].matrix.tolist()), background), "as JSON keeps it"
    # through a Scoreboard (chapters 5 and 6) the numbers are the same, and void never becomes a predicted class
    board = Scoreboard(3)
    board.update(maps["commonest class"], target)
    assert board.metrics.mean_iou() == pytest.approx(1.6 / 3)
