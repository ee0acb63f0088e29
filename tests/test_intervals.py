import numpy as np
import pytest
import torch

from deconvnet.infer.intervals import interval, paired_difference, per_image_matrices, verdict
from deconvnet.infer.metrics import SegmentationMetrics


def _matrices(n=30, c=4, seed=0, skill=0.7):
    """Per-image confusion matrices of a noisy classifier: right with probability ``skill``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        truth = rng.integers(0, c, 200)
        pred = np.where(rng.random(200) < skill, truth, rng.integers(0, c, 200))
        m = SegmentationMetrics(c)
        m.update(torch.from_numpy(pred), torch.from_numpy(truth))
        out.append(m.matrix.numpy().copy())
    return out


def test_interval_brackets_the_pooled_score():
    mats = _matrices()
    r = interval(mats)
    pooled = SegmentationMetrics(4, torch.from_numpy(np.sum(mats, 0))).mean_iou()
    assert r["value"] == pytest.approx(pooled)
    assert r["low"] < r["value"] < r["high"]


def test_interval_matches_a_direct_bootstrap():
    """The vectorised resampling equals summing the drawn images' matrices one resample at a time."""
    mats = _matrices(n=12)
    draws = np.random.default_rng(5).integers(0, 12, size=(200, 12))
    direct = [SegmentationMetrics(4, torch.from_numpy(np.sum([mats[i] for i in d], 0))).pixel_accuracy()
              for d in draws]
    r = interval(mats, "pixel_accuracy", resamples=200, seed=5)
    assert r["low"] == pytest.approx(np.quantile(direct, 0.025))
    assert r["high"] == pytest.approx(np.quantile(direct, 0.975))


def test_paired_difference_of_a_method_with_itself_is_exactly_zero():
    mats = _matrices()
    r = paired_difference(mats, mats)
    assert r == {"value": 0.0, "low": 0.0, "high": 0.0}
    with pytest.raises(ValueError, match="same images"):
        paired_difference(mats, mats[:-1])


def test_a_better_classifier_is_found_better_and_the_verdict_follows():
    good, bad = _matrices(skill=0.9, seed=1), _matrices(skill=0.5, seed=1)
    diff = paired_difference(good, bad)
    assert diff["low"] > 0
    assert verdict(diff) == "supported"
    assert verdict(diff, predicts="negative") == "not supported"
    assert verdict({"value": 0.01, "low": -0.02, "high": 0.04}) == "inconclusive"
    assert verdict(diff, margin=1.0) == "inconclusive", "a gap inside the margin decides nothing"


def test_per_image_matrices_count_every_non_void_pixel():
    labels = {0: torch.tensor([[0, 1], [255, 2]]), 1: torch.tensor([[1, 1], [1, 1]])}
    mats = per_image_matrices(lambda i: torch.ones(2, 2, dtype=torch.long), labels.__getitem__, [0, 1], 3)
    assert [int(m.sum()) for m in mats] == [3, 4]
    assert int(mats[1][1, 1]) == 4


def test_mean_interval_over_images_matches_a_direct_bootstrap():
    """Resampling images with all their items equals drawing images and pooling their items by hand."""
    from deconvnet.infer.intervals import LEVEL, _resampled, mean_interval

    values, groups = [0.1, 0.9, 0.5, 0.2, 0.4, 0.8, 0.3], [0, 0, 1, 2, 2, 2, 3]
    got = mean_interval(values, groups, resamples=200, seed=3)
    by_image = [[v for v, g in zip(values, groups, strict=True) if g == k] for k in range(4)]
    means = [np.mean([v for k in draw for v in by_image[k]]) for draw in _resampled(4, 200, 3)]
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    assert got["value"] == pytest.approx(np.mean(values))
    assert (got["low"], got["high"]) == pytest.approx((low, high))


def test_paired_mean_difference_of_a_method_with_itself_is_exactly_zero():
    from deconvnet.infer.intervals import paired_mean_difference

    same = paired_mean_difference([0.3, 0.5, 0.9], [0.3, 0.5, 0.9], [0, 1, 1])
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}
    with pytest.raises(ValueError, match="same items"):
        paired_mean_difference([0.1], [0.1, 0.2])
