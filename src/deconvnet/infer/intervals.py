"""Intervals for every number the book compares: a bootstrap over val images, and verdicts read from them.

A score such as mean IoU is computed from a confusion matrix summed over images, so the bootstrap resamples
*images* (with replacement), sums their matrices and recomputes the score; 95% of the resampled scores lie in
the interval. Two methods scored on the same images are compared by a *paired* bootstrap: the same resampled
images for both, so the interval is that of their difference, narrower than two separate intervals suggest.

A verdict is read from an interval of a difference, never from two point estimates:

* ``supported`` - the whole interval lies on the side the claim predicts;
* ``not supported`` - the whole interval lies on the other side;
* ``inconclusive`` - it straddles zero: these images cannot tell.

Used in chapter 4 (recipes) and the chapters that compare methods on trained models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from deconvnet.infer.metrics import SegmentationMetrics

RESAMPLES = 1000  # bootstrap resamples: the interval's ends move by well under a point between seeds
LEVEL = 0.95  # the interval's coverage


def _score(matrix: np.ndarray, how: str) -> float:
    metrics = SegmentationMetrics(matrix.shape[0], torch.from_numpy(matrix))
    return {"mean_iou": metrics.mean_iou, "pixel_accuracy": metrics.pixel_accuracy,
            "object_accuracy": metrics.object_accuracy, "mean_accuracy": metrics.mean_accuracy}[how]()


def _resampled(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` image indices drawn with replacement; the same seed gives the same draws."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``(resamples, n)``: how often each of ``n`` images is drawn in each resample (every bootstrap here)."""
    return np.stack([np.bincount(d, minlength=n) for d in _resampled(n, resamples, seed)])


def with_interval(value: float, resampled: np.ndarray) -> dict:
    """``{"value", "low", "high"}``: ``value`` and the central 95% of its resampled values (NaNs left out)."""
    low, high = np.nanquantile(resampled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"value": float(value), "low": float(low), "high": float(high)}


def _totals(matrices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Summed confusion matrix of each resample, ``(resamples, C, C)``, from ``resample_counts``."""
    return np.einsum("rn,nij->rij", counts, matrices)


def interval(matrices: Sequence[np.ndarray], how: str = "mean_iou", *, resamples: int = RESAMPLES,
             seed: int = 0) -> dict:
    """The score of the summed per-image confusion matrices ``(C, C)``, with its bootstrap interval.

    Returns ``{"value", "low", "high"}``.
    """
    m = np.stack([np.asarray(x, np.int64) for x in matrices])
    totals = _totals(m, resample_counts(len(m), resamples, seed))
    return with_interval(_score(m.sum(0), how), np.array([_score(t, how) for t in totals]))


def paired_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray], how: str = "mean_iou", *,
                      resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Score of ``a`` minus score of ``b``, both on the same images, with a paired bootstrap interval."""
    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs the same images: got {len(a)} and {len(b)} matrices")
    ma, mb = (np.stack([np.asarray(x, np.int64) for x in m]) for m in (a, b))
    counts = resample_counts(len(ma), resamples, seed)
    ta, tb = _totals(ma, counts), _totals(mb, counts)
    values = np.array([_score(x, how) - _score(y, how) for x, y in zip(ta, tb, strict=True)])
    return with_interval(_score(ma.sum(0), how) - _score(mb.sum(0), how), values)


def mean_interval(values: Sequence[float], groups: Sequence[int] | None = None, *, resamples: int = RESAMPLES,
                  seed: int = 0) -> dict:
    """The mean of per-item values (instance IoUs, per-image boundary F1) with a bootstrap interval.

    ``groups`` names each item's image: the bootstrap then resamples images, each bringing all its items, as
    everywhere else in the book; without it every item is its own image.
    """
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return {"value": float("nan"), "low": float("nan"), "high": float("nan")}
    g = np.unique(np.arange(len(v)) if groups is None else np.asarray(groups), return_inverse=True)[1]
    sums, sizes = np.bincount(g, weights=v), np.bincount(g)  # per image: sum of its items, their count
    counts = resample_counts(len(sums), resamples, seed)
    return with_interval(v.mean(), (counts @ sums) / np.maximum(counts @ sizes, 1))


def paired_mean_difference(a: Sequence[float], b: Sequence[float], groups: Sequence[int] | None = None, *,
                           resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Mean of ``a - b`` over paired items (the same instances or images under two methods), bootstrapped."""
    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs the same items: got {len(a)} and {len(b)} values")
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return mean_interval(diff, groups, resamples=resamples, seed=seed)


def verdict(difference: dict, *, predicts: str = "positive", margin: float = 0.0) -> str:
    """``supported`` / ``not supported`` / ``inconclusive`` for a claim that ``difference`` is positive.

    ``predicts="negative"`` reads a claim that it is negative; ``margin`` widens the band that counts as
    "no difference" (e.g. a training-seed spread: a gap smaller than two seeds' gap is not a recipe's doing).
    """
    sign = 1 if predicts == "positive" else -1
    low, high = sorted((sign * difference["low"], sign * difference["high"]))
    if low > margin:
        return "supported"
    if high < -margin:
        return "not supported"
    return "inconclusive"


def per_image_matrices(model_predict: Callable[[int], torch.Tensor], labels: Callable[[int], torch.Tensor],
                       images: Sequence[int], num_classes: int) -> list[np.ndarray]:
    """One confusion matrix per image: ``model_predict(i)`` gives ``(H, W)`` classes, ``labels(i)`` the truth."""
    out = []
    for i in images:
        metrics = SegmentationMetrics(num_classes)
        metrics.update(model_predict(i), labels(i))
        out.append(metrics.matrix.numpy().copy())
    return out


def shown(v: dict, sign: str = "") -> str:
    """A score with its 95% interval as the pages print it: ``41.0% [37.2%, 45.1%]``.

    ``sign="+"`` for a difference; a dash where there was nothing to measure (a NaN value).
    """
    if v["value"] != v["value"]:
        return "-"
    return f"{v['value']:{sign}.1%} [{v['low']:{sign}.1%}, {v['high']:{sign}.1%}]"


def in_points(d: dict) -> str:
    """A difference of two shares in points with its 95% interval: ``+1.2 points [-0.3, +2.6]``."""
    return f"{100 * d['value']:+.1f} points [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
