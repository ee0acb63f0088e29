"""Segmentation metrics from one confusion matrix: per-class IoU, mean IoU, pixel accuracy (paper Sec. 6).

PASCAL VOC's measure is the IoU of each class, TP / (TP + FP + FN), summed over the whole split before
dividing (not averaged per image), then averaged over the 21 classes. Void pixels (255) are not counted.
``tests/test_metrics.py`` checks this against scikit-learn's confusion matrix and Jaccard score.

Used in chapters 4 (training), 5 (aggregation) and 6 (ensemble).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

VOID = 255  # VOC's label for the boundary band and ambiguous pixels


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` counts, row = true class, column = predicted class; void target pixels are skipped."""
    keep = target != VOID
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (int(t.max()) >= num_classes or int(t.min()) < 0):
        raise ValueError(f"target holds labels outside 0..{num_classes - 1} and {VOID}: {t.unique().tolist()}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass
class SegmentationMetrics:
    """A running confusion matrix; ``update`` with each prediction, then read the scores."""

    num_classes: int = 21
    matrix: torch.Tensor = field(default=None)  # (C, C) int64, rows = truth

    def __post_init__(self) -> None:
        if self.matrix is None:
            self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.matrix += confusion_matrix(pred.cpu(), target.cpu(), self.num_classes)

    def iou(self) -> torch.Tensor:
        """Per-class IoU ``(C,)``; NaN for a class absent from both truth and prediction."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))

    def mean_iou(self) -> float:
        return float(self.iou().nanmean())

    def pixel_accuracy(self) -> float:
        m = self.matrix.double()
        return float(m.diag().sum() / m.sum().clamp_min(1))

    def mean_accuracy(self) -> float:
        """Mean over classes of the share of each class's pixels labelled correctly (FCN's 'mean acc.')."""
        m = self.matrix.double()
        per_class = m.diag() / m.sum(1)
        return float(per_class[m.sum(1) > 0].mean())

    def summary(self, class_names: list[str] | None = None) -> dict:
        """Plain numbers for JSON: mean IoU, pixel and mean accuracy, IoU per class (by name if given)."""
        names = class_names or [str(c) for c in range(self.num_classes)]
        return {
            "mean_iou": self.mean_iou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_accuracy": self.mean_accuracy(),
            "iou": {n: (None if v != v else float(v)) for n, v in zip(names, self.iou().tolist(), strict=True)},
        }
