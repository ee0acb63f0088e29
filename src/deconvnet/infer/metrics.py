"""Segmentation metrics from one confusion matrix: per-class IoU, mean IoU, pixel accuracy (paper Sec. 6).

PASCAL VOC's measure is the IoU of each class, TP / (TP + FP + FN), summed over the whole split before
dividing (not averaged per image), then averaged over the 21 classes. Void pixels (255) are not counted.
``tests/test_metrics.py`` checks this against scikit-learn's confusion matrix and Jaccard score.

Two measures that mean IoU hides (chapters 5 and 6): ``boundary_f1``, the SegNet paper's boundary F1, which
asks whether the outlines are in the right place, and ``instance_ious``, one IoU per ground-truth object,
which ``Scoreboard`` splits by object size to test the paper's claim about small and large objects.

Used in chapters 4 (training), 5 (aggregation) and 6 (ensemble); the two baselines every segmentation table
of chapters 3 to 7 is read against (``baseline_predictions``) are defined here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

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

    def object_accuracy(self) -> float:
        """Share of object pixels (true class >= 1) given exactly their class; background calls count as wrong.

        The "what" of a segmentation: whether the network names the objects it finds (chapter 4).
        """
        m = self.matrix.double()[1:]
        return float(m[:, 1:].diag().sum() / m.sum().clamp_min(1))

    def summary(self, class_names: list[str] | None = None) -> dict:
        """Plain numbers for JSON: mean IoU, pixel and mean accuracy, IoU per class (by name if given)."""
        names = class_names or [str(c) for c in range(self.num_classes)]
        return {
            "mean_iou": self.mean_iou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_accuracy": self.mean_accuracy(),
            "object_accuracy": self.object_accuracy(),
            "iou": {n: (None if v != v else float(v)) for n, v in zip(names, self.iou().tolist(), strict=True)},
        }


# ---------------------------------------------------------------------------------------------------------
# Baselines: what a segmentation scores without a network (chapters 3 to 7)
# ---------------------------------------------------------------------------------------------------------

# Every table of chapters 3 to 7 reads a network's mean IoU against the same two non-answers, scored on the same
# images in the same way. They live here once so that no chapter's "commonest class" drifts from another's.


def commonest_object_class(targets, num_classes: int) -> int:
    """The object class (1 .. C-1) with the most true pixels in ``targets``, pooled over all of them.

    ``targets`` is an iterable of ``(H, W)`` label maps (numpy arrays or tensors); background (0) and void
    (255) pixels are not counted. The pixels of all the images are counted together (not a vote per image),
    as chapters 3, 4, 5 and 6 define the "commonest class" baseline; a tie goes to the lower class.
    """
    counts = np.zeros(num_classes, np.int64)
    for target in targets:
        t = _writable(target).numpy()
        objects = t[(t > 0) & (t != VOID)].astype(np.int64)
        if objects.size and int(objects.max()) >= num_classes:
            raise ValueError(f"target holds labels outside 0..{num_classes - 1} and {VOID}: {np.unique(objects)}")
        counts += np.bincount(objects, minlength=num_classes)
    return int(counts[1:].argmax()) + 1


def baseline_predictions(target, commonest: int) -> dict:
    """The two baselines' label maps for one ``(H, W)`` target: same type (numpy or torch), shape and dtype.

    ``"all background"``: class 0 at every pixel. ``"commonest class"``: ``commonest`` (from
    ``commonest_object_class``) on every true object pixel, 0 elsewhere; a generous baseline, as it is told
    where the objects are. Void pixels are 0 in both maps: the confusion matrix skips them anyway, but boundary
    F1 (``Scoreboard``) reads the prediction there, and a 255 in it would be scored as one more class.
    Used in chapters 3, 4, 5 and 6; chapter 7, which has only a confusion matrix, uses ``all_background_matrix``.
    """
    t = _writable(target)
    objects = (t > 0) & (t != VOID)
    maps = {"all background": torch.zeros_like(t), "commonest class": torch.where(objects, commonest, 0).to(t.dtype)}
    return maps if isinstance(target, torch.Tensor) else {name: m.numpy() for name, m in maps.items()}


def all_background_matrix(matrix) -> torch.Tensor:
    """The confusion matrix of calling every pixel background, on the pixels that ``matrix`` counts.

    Each true class's pixels (a row's total) move to column 0. This equals summing ``confusion_matrix`` of
    ``baseline_predictions(t, c)["all background"]`` over the images ``matrix`` was counted on, so a chapter
    that kept only a confusion matrix (chapter 7: the training run's last validation) can still score it.
    """
    m = torch.as_tensor(matrix, dtype=torch.int64)
    out = torch.zeros_like(m)
    out[:, 0] = m.sum(1)
    return out


# ---------------------------------------------------------------------------------------------------------
# Boundary accuracy and accuracy by object size (chapters 5 and 6)
# ---------------------------------------------------------------------------------------------------------

BF_TOLERANCE = 0.0075  # SegNet's boundary F1 counts a boundary pixel as matched within 0.75% of the diagonal
# Object scale = sqrt(box area / image area). Below 0.15 an object spans less than ~1/7 of the image side, so
# a network seeing the whole image has only a few pool5 cells on it; above 0.4 it fills a large part of the
# image. The paper's claim (Sec. 5.1) is about both ends.
SIZE_EDGES = (0.15, 0.4)
SIZE_NAMES = ("small", "medium", "large")


def region_boundary(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of ``mask`` with a 4-neighbour outside it (the image border is no boundary)."""
    m = np.pad(mask, 1, mode="edge")
    inner = m[1:-1, 1:-1]
    return inner & ~(m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:])


def _matched(points: np.ndarray, others: np.ndarray, tolerance: float) -> int:
    """How many ``points`` pixels lie within ``tolerance`` pixels (Euclidean) of some ``others`` pixel."""
    if not points.any() or not others.any():
        return 0
    distance = ndimage.distance_transform_edt(~others)  # (H, W) distance to the nearest `others` pixel
    return int((distance[points] <= tolerance).sum())


def boundary_f1(pred, target, tolerance: float | None = None) -> float:
    """Boundary F1 of one image, as the SegNet paper's BF score (Csurka et al. 2013; chapters 5, 6).

    For each class in the ground truth or the prediction, its boundary pixels (``region_boundary``) are
    matched both ways within ``tolerance`` pixels (default ``BF_TOLERANCE`` x the image diagonal, at least
    1): precision is the share of predicted boundary pixels near a true one, recall the share of true
    boundary pixels near a predicted one. A class that only one side has scores 0; a class without boundary
    on both sides (it fills the image) scores 1. The image's score is the mean over those classes.
    Void (255) is "not the class" in the ground truth, so a true boundary lies at the inner edge of the void
    band; the tolerance should be at least the band's width.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in size")
    if tolerance is None:
        tolerance = max(1.0, BF_TOLERANCE * float(np.hypot(*target.shape)))
    classes = sorted((set(np.unique(target).tolist()) - {VOID}) | set(np.unique(pred).tolist()))
    scores = []
    for c in classes:
        gt, pr = region_boundary(target == c), region_boundary(pred == c)
        if not (target == c).any() or not (pred == c).any():
            scores.append(0.0)
        elif not gt.any() and not pr.any():
            scores.append(1.0)
        else:
            precision = _matched(pr, gt, tolerance) / max(int(pr.sum()), 1)
            recall = _matched(gt, pr, tolerance) / max(int(gt.sum()), 1)
            scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores)) if scores else float("nan")


def instance_ious(pred, target, labels, masks, margin: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """IoU of each ground-truth instance with the prediction of its class near it, and the instance's scale.

    ``labels (N,)`` and ``masks (N, H, W)`` are the instances (``data.voc.instances_from_masks``). Around
    each instance a window ``margin`` times its box (about the centre, clipped to the image) is compared:
    true positives are its pixels predicted as its class, false negatives its other pixels, false positives
    the window's other pixels predicted as its class. Void and other instances of the same class are left
    out, so that spill-over around an object counts against it, but objects elsewhere do not.
    Returns ``ious (N,)`` and ``scales (N,)`` = sqrt(box area / image area). Chapters 5 and 6.
    """
    pred, target, masks = np.asarray(pred), np.asarray(target), np.asarray(masks, bool)
    h, w = target.shape
    ious, scales = [], []
    for label, mask in zip(np.asarray(labels).tolist(), masks, strict=True):
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        scales.append(np.sqrt((y1 - y0) * (x1 - x0) / (h * w)))
        cy, cx, hh, hw = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) * margin / 2, (x1 - x0) * margin / 2
        window = np.zeros_like(mask)
        rows = slice(max(0, int(cy - hh)), min(h, int(np.ceil(cy + hh))))
        cols = slice(max(0, int(cx - hw)), min(w, int(np.ceil(cx + hw))))
        window[rows, cols] = True
        counted = window & (target != VOID) & ((target != label) | mask)  # other same-class objects left out
        hit = pred == label
        tp = int((mask & hit & counted).sum())
        fn = int((mask & ~hit & counted).sum())
        fp = int((~mask & hit & counted).sum())
        ious.append(tp / max(tp + fn + fp, 1))
    return np.array(ious, np.float64), np.array(scales, np.float64)


def _writable(x) -> torch.Tensor:
    """A plain-tensor copy of an array or a tensor (tv_tensors too, whose ``__array__`` numpy 2 warns about)."""
    if isinstance(x, torch.Tensor):
        return x.detach().as_subclass(torch.Tensor).cpu().clone()
    return torch.as_tensor(np.array(x))


def size_bin(scales) -> np.ndarray:
    """Index into ``SIZE_NAMES`` (small, medium, large) of each scale, by ``SIZE_EDGES``."""
    return np.digitize(np.asarray(scales), SIZE_EDGES)


@dataclass
class Scoreboard:
    """Everything chapters 5 and 6 report for one method, accumulated image by image.

    ``update(pred, target, labels, masks)`` adds one image: the confusion matrix (mean and per-class IoU),
    its boundary F1, and each instance's IoU and scale. ``summary`` gives plain numbers for JSON.
    """

    num_classes: int = 21
    tolerance: float | None = None  # boundary F1 tolerance in pixels; None: 0.75% of each image's diagonal
    metrics: SegmentationMetrics = field(default=None)
    boundary: list = field(default_factory=list)  # one boundary F1 per image
    instances: list = field(default_factory=list)  # (iou, scale) per ground-truth instance
    matrices: list = field(default_factory=list)  # one (C, C) confusion matrix per image, for the bootstrap
    instance_image: list = field(default_factory=list)  # which image (index into matrices) each instance is in

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = SegmentationMetrics(self.num_classes)

    def update(self, pred, target, labels=None, masks=None) -> None:
        pred_t, target_t = _writable(pred), _writable(target)
        one = SegmentationMetrics(self.num_classes)
        one.update(pred_t, target_t)
        self.matrices.append(one.matrix.numpy().copy())
        self.metrics.update(pred_t, target_t)
        self.boundary.append(boundary_f1(pred_t.numpy(), target_t.numpy(), self.tolerance))
        if labels is not None and len(labels):
            ious, scales = instance_ious(pred_t.numpy(), target_t.numpy(), labels, masks)
            self.instances += list(zip(ious.tolist(), scales.tolist(), strict=True))
            self.instance_image += [len(self.matrices) - 1] * len(ious)

    def size_ious(self, size: str) -> tuple[np.ndarray, np.ndarray]:
        """IoUs of the instances in size bin ``size`` (small, medium, large) and the image each is in."""
        keep = size_bin([s for _, s in self.instances]) == SIZE_NAMES.index(size)
        ious = np.array([i for i, _ in self.instances], np.float64)
        return ious[keep], np.asarray(self.instance_image, np.int64)[keep]

    def by_size(self) -> dict[str, dict]:
        """Mean instance IoU and instance count per size bin (small, medium, large)."""
        ious = np.array([i for i, _ in self.instances], np.float64)
        bins = size_bin([s for _, s in self.instances])
        return {name: {"mean_iou": float(ious[bins == k].mean()) if (bins == k).any() else None,
                       "instances": int((bins == k).sum())} for k, name in enumerate(SIZE_NAMES)}

    def summary(self, class_names: list[str] | None = None) -> dict:
        return {**self.metrics.summary(class_names), "boundary_f1": float(np.mean(self.boundary)),
                "by_size": self.by_size(), "images": len(self.boundary)}


@dataclass
class WhereAndWhat:
    """Splits segmentation quality into *where* (object vs background) and *what* (which class).

    ``where``: IoU of the predicted foreground, P(background) < 0.5, with the true foreground. ``what``: the
    share of true object pixels whose most likely *object* class is right. A network that finds objects but
    cannot name them scores on the first and not the second, while its mean IoU (argmax over all 21 classes)
    can sit at the all-background level. Used in chapter 4.
    """

    inter: int = 0
    union: int = 0
    named: int = 0
    objects: int = 0
    per_class: dict = field(default_factory=dict)  # object pixels per true class, for the majority baseline

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        """``scores`` ``(C, H, W)`` (class 0 = background), ``target`` ``(H, W)`` with 255 = void."""
        scores, target = scores.float().cpu(), target.cpu()
        valid, truth = target != VOID, (target != 0) & (target != VOID)
        found = torch.softmax(scores, 0)[0] < 0.5
        self.inter += int((found & truth).sum())
        self.union += int(((found | truth) & valid).sum())
        self.named += int(((scores[1:].argmax(0) + 1 == target) & truth).sum())
        self.objects += int(truth.sum())
        for c, n in zip(*torch.unique(target[truth], return_counts=True), strict=True):
            self.per_class[int(c)] = self.per_class.get(int(c), 0) + int(n)

    def summary(self) -> dict:
        """``what_baseline`` is what naming every object pixel with the commonest class would score."""
        return {"where_iou": self.inter / max(self.union, 1), "what_accuracy": self.named / max(self.objects, 1),
                "what_baseline": max(self.per_class.values(), default=0) / max(self.objects, 1)}
