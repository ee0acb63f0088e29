"""Scoring the decoder's linear probes on evaluation images, with bootstrap intervals over the images.

``score_probes`` scores every stage's probes (``probe.fit_probes``) on labelled pixels of images they were
not fitted on (``StageScores``): the **shape** probe by its foreground IoU and its accuracy in a thin band
around the true object boundaries (``boundary_band``), where coarse maps must fail; the **class** probe by its
mean IoU and its accuracy on the true object pixels, where it must say *which* object (background excluded
from its choice), the part of the label shape alone cannot give. ``probe`` and ``probe_stages`` fit and score
in one call. With ``per_image=True`` ``score_probes`` also returns the counts behind every score image by image
(``StageCounts``): ``stage_interval`` and ``stage_difference`` bootstrap them over the eval images, as
``deconvnet.infer.intervals`` does for confusion matrices. Used in chapter 3 (deconvolution, its probe table
and verdicts); ``tests/test_probe.py`` checks it on constructed features whose answers are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from deconvnet.explain.probe import DECODER_STAGES, Probes, Sample, fit_probes, model_samples, targets, upsample
from deconvnet.infer.intervals import RESAMPLES, resample_counts, with_interval
from deconvnet.infer.metrics import VOID, SegmentationMetrics, confusion_matrix


def boundary_band(labels: torch.Tensor, width: int) -> torch.Tensor:
    """Labelled pixels within ``width`` pixels (chessboard distance) of a change of label or of void, ``(H, W)``.

    VOC puts a void band around every object, so its object boundaries lie inside void; the band grows from
    void pixels and from both sides of a change between two labels, covering both conventions. Void pixels
    themselves are never in the band.
    """
    lab = labels.long()
    void = lab == VOID
    edge = void.clone()
    down = (lab[:-1] != lab[1:]) & ~void[:-1] & ~void[1:]  # a change between two labelled pixels
    side = (lab[:, :-1] != lab[:, 1:]) & ~void[:, :-1] & ~void[:, 1:]
    edge[:-1] |= down
    edge[1:] |= down
    edge[:, :-1] |= side
    edge[:, 1:] |= side
    near = F.max_pool2d(edge[None, None].float(), 2 * width + 1, stride=1, padding=width)[0, 0] > 0
    return near & ~void


@dataclass
class StageScores:
    """A probe's scores on the evaluation images, per stage (see the module's docstring)."""

    shape_iou: float  # IoU of the foreground predicted by the shape probe
    boundary_accuracy: float  # shape probe's accuracy on pixels of the boundary band
    class_iou: float  # mean IoU of the class probe (classes seen in truth or prediction)
    object_accuracy: float  # class probe's accuracy on true object pixels, choosing among object classes only
    object_contrast: float  # mean activation on object pixels / on background pixels (for rectified maps)


SCORES = tuple(f.name for f in fields(StageScores))


@dataclass
class StageCounts:
    """The counts behind one stage's ``StageScores``, one row per eval image, in the order scored.

    Summed over the rows they give the pooled scores (``pooled``); weighted by how often a bootstrap resample
    draws each image they give that resample's scores (``stage_interval``, ``stage_difference``; chapter 3).
    """

    shape: np.ndarray  # (N, 2, 2) int64 shape probe's confusion matrix, rows = truth (background, object)
    classes: np.ndarray  # (N, K, K) int64 class probe's confusion matrix, rows = truth
    band: np.ndarray  # (N, 2) int64 shape probe's correct, total pixels in the boundary band
    objects: np.ndarray  # (N, 2) int64 class probe's correct, total on true object pixels
    activation: np.ndarray  # (N, 4) float64 activation sum, pixel count on objects, then on background

    def __len__(self) -> int:
        return len(self.shape)

    def values(self, score: str, weights: np.ndarray) -> np.ndarray:
        """``score`` of the images counted ``weights`` ``(R, N)`` times each: ``(R,)``, as ``StageScores``."""
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; valid scores are: {', '.join(SCORES)}")
        w = np.asarray(weights, np.float64)
        source = {"shape_iou": self.shape, "class_iou": self.classes, "boundary_accuracy": self.band,
                  "object_accuracy": self.objects, "object_contrast": self.activation}[score]
        t = np.einsum("rn,n...->r...", w, source.astype(np.float64))  # summed counts per resample; exact below 2^53
        with np.errstate(invalid="ignore", divide="ignore"):
            if score == "shape_iou":  # foreground IoU: NaN when neither truth nor prediction has an object
                union = t[:, 1].sum(1) + t[:, :, 1].sum(1) - t[:, 1, 1]
                return np.where(union > 0, t[:, 1, 1] / np.maximum(union, 1), np.nan)
            if score == "class_iou":  # mean over the classes seen in truth or prediction
                tp = np.diagonal(t, axis1=1, axis2=2)  # (R, K)
                union = t.sum(1) + t.sum(2) - tp
                iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
                seen = (union > 0).sum(1)
                return np.where(seen > 0, np.nansum(iou, 1) / np.maximum(seen, 1), np.nan)
            if score == "object_contrast":
                on_objects, on_background = t[:, 0] / np.maximum(t[:, 1], 1), t[:, 2] / np.maximum(t[:, 3], 1)
                return np.where(on_background > 0, on_objects / on_background, np.nan)
            return t[:, 0] / np.maximum(t[:, 1], 1)  # an accuracy: correct / total, 0 with no pixels

    def pooled(self) -> StageScores:
        """The scores of all images together: the same numbers as ``score_probes`` (the tests check it)."""
        every = np.ones((1, len(self)))
        return StageScores(*(float(self.values(s, every)[0]) for s in SCORES))


class _Scorer:
    """Running counts for ``StageScores`` over images, and the same counts kept image by image."""

    def __init__(self, num_classes: int):
        self.shape = SegmentationMetrics(2)
        self.classes = SegmentationMetrics(num_classes)
        self.band = [0, 0]  # correct, total
        self.objects = [0, 0]
        self.activation = [0.0, 0, 0.0, 0]  # sum and count on objects, then on background
        self.rows: dict[str, list] = {f.name: [] for f in fields(StageCounts)}  # per image, as StageCounts

    def update(self, mean_activation, shape_logits, class_logits, labels, band) -> None:
        """One image: ``(H, W)`` channel-mean activation, ``(2, H, W)`` and ``(K, H, W)`` logits, labels, band."""
        fg = targets(labels, "shape")
        shape_matrix = confusion_matrix(shape_logits.argmax(0), fg, 2)  # (2, 2) this image's counts
        class_matrix = confusion_matrix(class_logits.argmax(0), labels, self.classes.num_classes)  # (K, K)
        right = shape_logits.argmax(0) == fg.long()
        obj, bg = fg == 1, fg == 0
        which = class_logits[1:].argmax(0) + 1  # the most likely object class, background left out
        row = {"shape": shape_matrix.numpy(), "classes": class_matrix.numpy(),
               "band": [int(right[band].sum()), int(band.sum())],
               "objects": [int((which == labels.long())[obj].sum()), int(obj.sum())],
               "activation": [float(mean_activation[obj].sum()), int(obj.sum()), float(mean_activation[bg].sum()),
                              int(bg.sum())]}
        for name, value in row.items():
            self.rows[name].append(value)
        # The pooled counts are summed as before, apart from the rows: StageCounts.pooled must agree with them.
        self.shape.matrix += shape_matrix
        self.classes.matrix += class_matrix
        self.band = [t + v for t, v in zip(self.band, row["band"], strict=True)]
        self.objects = [t + v for t, v in zip(self.objects, row["objects"], strict=True)]
        self.activation = [t + v for t, v in zip(self.activation, row["activation"], strict=True)]

    def scores(self) -> StageScores:
        on_objects = self.activation[0] / max(self.activation[1], 1)
        on_background = self.activation[2] / max(self.activation[3], 1)
        return StageScores(float(self.shape.iou()[1]), self.band[0] / max(self.band[1], 1),
                           self.classes.mean_iou(), self.objects[0] / max(self.objects[1], 1),
                           on_objects / on_background if on_background > 0 else float("nan"))

    def counts(self) -> StageCounts:
        k = self.classes.num_classes
        shapes = {"shape": (2, 2), "classes": (k, k), "band": (2,), "objects": (2,), "activation": (4,)}
        return StageCounts(**{name: np.array(rows, np.float64 if name == "activation" else np.int64).reshape(
            len(rows), *shapes[name]) for name, rows in self.rows.items()})


def score_probes(probes: Probes, eval_samples: Iterable[Sample], num_classes: int, band: int = 3,
                 per_image: bool = False) -> dict[str, StageScores] | tuple[dict[str, StageScores],
                                                                             dict[str, StageCounts]]:
    """``StageScores`` of every stage's probes over all labelled pixels of ``eval_samples``.

    With ``per_image`` also the counts behind them, image by image (``StageCounts`` per stage), for the
    bootstrap intervals of chapter 3: returns ``(scores, counts)``.
    """
    scorers = {s: _Scorer(num_classes) for s in probes}
    for maps, lab in eval_samples:
        lab = lab.long()
        near = boundary_band(lab, band)
        for s, probe_ in probes.items():
            m = maps[s]  # (C, h, w) at the stage's resolution
            # A probe is affine and bilinear upsampling averages with weights that sum to one, so the two commute:
            # score at the stage's resolution and upsample 2 + K + 1 maps instead of C (up to 512) channels.
            low = torch.cat([probe_["shape"].logits(m), probe_["class"].logits(m), m.mean(0, keepdim=True)])
            up = upsample(low, lab.shape)  # (2 + K + 1, H, W)
            scorers[s].update(up[-1], up[:2], up[2:-1], lab, near)
    scores = {s: scorers[s].scores() for s in probes}
    if per_image:
        return scores, {s: scorers[s].counts() for s in probes}
    return scores


def stage_interval(counts: StageCounts, score: str, *, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """One stage's ``score`` on all eval images with its 95% bootstrap interval over the images:
    ``{"value", "low", "high"}``, as ``intervals.interval``. Chapter 3's probe table."""
    weights = resample_counts(len(counts), resamples, seed)
    return with_interval(counts.values(score, np.ones((1, len(counts))))[0], counts.values(score, weights))


def stage_difference(late: StageCounts, early: StageCounts, score: str, *, resamples: int = RESAMPLES,
                     seed: int = 0) -> dict:
    """``score`` of stage ``late`` minus that of ``early``, both probed on the same eval images, with a paired
    bootstrap interval: each resample draws the same images for both stages (chapter 3's verdicts)."""
    if len(late) != len(early):
        raise ValueError(f"a paired comparison needs the same images: got {len(late)} and {len(early)}")
    weights = resample_counts(len(late), resamples, seed)
    every = np.ones((1, len(late)))
    value = late.values(score, every)[0] - early.values(score, every)[0]
    return with_interval(value, late.values(score, weights) - early.values(score, weights))


def probe(fit_samples: Iterable[Sample], eval_samples: Iterable[Sample], num_classes: int,
          pixels_per_image: int = 1000, band: int = 3, l2: float = 1e-4, balanced: bool = True,
          seed: int = 0) -> dict[str, StageScores]:
    """Fit shape and class probes per stage on ``fit_samples``, score them on ``eval_samples``.

    A sample is ``(maps, labels)``: ``maps[stage]`` is ``(C, h, w)`` at any stride that tiles the ``(H, W)``
    class map ``labels`` (255 void). Both iterables are read once, in order.
    """
    probes = fit_probes(fit_samples, num_classes, pixels_per_image, l2, balanced, seed)
    return score_probes(probes, eval_samples, num_classes, band)


def probe_stages(model: torch.nn.Module, fit_images: Iterable[tuple[np.ndarray, np.ndarray]],
                 eval_images: Iterable[tuple[np.ndarray, np.ndarray]], stages: Sequence[str] = DECODER_STAGES,
                 **options) -> dict[str, StageScores]:
    """``probe`` on the maps of ``model``'s stages (paper Sec. 3.2, Fig. 4; chapter 3): fit on training
    images, score on val images (see ``model_samples``); ``options`` go to ``probe``."""
    return probe(model_samples(model, fit_images, stages), model_samples(model, eval_images, stages),
                 model.cfg.num_classes, **options)
