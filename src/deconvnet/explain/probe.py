"""Linear read-outs of the decoder: what each stage's maps say about an object's shape and its class.

Noh et al. (2015, Sec. 3.2, Fig. 4) read their decoder's activations as coarse to fine: the stages next to fc6
would hold the object's overall location and shape, the stages near the output the class-specific detail. A
*linear probe* turns that reading into numbers. For every stage we upsample its maps to the image (bilinear),
fit a logistic regression from a pixel's feature vector to its label on some images, and score it on others:

* **shape**: a two-way probe (object vs background); its foreground IoU, and its accuracy in a thin band
  around the true object boundaries (``boundary_band``), where coarse maps must fail;
* **class**: a probe over all classes; its mean IoU, and its accuracy on the true object pixels, where it
  must say *which* object (background excluded from its choice), the part of the label shape alone cannot give.

A probe cannot read more than a linear function of a pixel's upsampled features; it measures what is readily
decodable, not all that is stored. For intervals, ``score_probes(..., per_image=True)`` also returns the counts
behind every score image by image (``StageCounts``): ``stage_interval`` and ``stage_difference`` bootstrap them
over the eval images, as ``deconvnet.infer.intervals`` does for confusion matrices. Used in chapter 3
(deconvolution); ``tests/test_probe.py`` checks it on constructed features whose answers are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from deconvnet.infer.intervals import RESAMPLES, resample_counts, with_interval
from deconvnet.infer.metrics import VOID, SegmentationMetrics, confusion_matrix
from deconvnet.infer.whole import pad_image, to_tensor

# The decoder's maps in the order the signal meets them, coarse to fine (DeconvNet.forward(return_stages=True)).
DECODER_STAGES = ("fc6_deconv", "unpool5", "deconv5", "unpool4", "deconv4", "unpool3", "deconv3",
                  "unpool2", "deconv2", "unpool1", "deconv1")
TASKS = ("shape", "class")


@torch.no_grad()
def stage_maps(model: torch.nn.Module, image: torch.Tensor, stages: Sequence[str] = DECODER_STAGES
               ) -> dict[str, torch.Tensor]:
    """Every requested stage's maps ``(C, h, w)`` for one image ``(3, H, W)`` in [0, 1], padding removed.

    The image is padded with the model's mean pixel to a size the network takes (as ``infer.segment_whole``);
    each map keeps the rows and columns that cover the image. ``"image"`` gives the input pixels themselves,
    ``"score"`` the model's class scores, both useful as references.
    """
    h, w = image.shape[-2:]
    canvas = pad_image(model, image)  # (3, ph, pw)
    ph, pw = canvas.shape[-2:]
    scores, maps = model(canvas[None], return_stages=True)
    maps = {**maps, "image": canvas[None], "score": scores}
    unknown = [s for s in stages if s not in maps]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; valid stages are: {', '.join(maps)}")
    out = {}
    for s in stages:
        m = maps[s][0].float()  # (C, ph / stride, pw / stride)
        rows, cols = -(-h * m.shape[1] // ph), -(-w * m.shape[2] // pw)  # the cells that cover the image
        out[s] = m[:, :rows, :cols].cpu()
    return out


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(C, h, w)`` maps cropped by ``stage_maps`` -> ``(C, H, W)``, bilinear on the grid they came from.

    A cropped map of stride ``s`` covers ``(h * s, w * s)`` pixels of the padded input; it is interpolated to
    that size and cropped to the image: cell ``i`` stays centred on pixel ``(i + 0.5) * s - 0.5``, as in the
    uncropped map, and the last half cell is held constant instead of blending into the padding.
    """
    h, w = maps.shape[-2:]
    H, W = size
    stride = 1  # the smallest power of two whose cells cover the image: the map's stride (pools halve)
    while h * stride < H or w * stride < W:
        stride *= 2
    if stride == 1:
        return maps[:, :H, :W]
    up = F.interpolate(maps[None], size=(h * stride, w * stride), mode="bilinear", align_corners=False)
    return up[0, :, :H, :W]


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
class LinearProbe:
    """Multinomial logistic regression on standardised features: ``logits = W ((x - mean) / std) + b``."""

    weight: torch.Tensor  # (K, C)
    bias: torch.Tensor  # (K,)
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` maps -> ``(K, H, W)`` logits (or ``(P, C)`` rows -> ``(P, K)``)."""
        if features.dim() == 3:
            return self.logits(features.flatten(1).T).T.reshape(-1, *features.shape[1:])
        return ((features - self.mean) / self.std) @ self.weight.T + self.bias

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features).argmax(0 if features.dim() == 3 else 1)


def fit_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float = 1e-4,
              balanced: bool = True, iterations: int = 100) -> LinearProbe:
    """Fit a ``LinearProbe`` to ``(P, C)`` feature rows and ``(P,)`` labels in ``0..num_classes - 1``.

    Minimises the weighted mean cross-entropy plus ``l2 * |W|^2`` with L-BFGS (scipy): the problem is convex,
    so the answer depends on no learning rate or seed. ``balanced`` weights each class's pixels by the inverse
    of its frequency (scikit-learn's ``class_weight="balanced"``): background covers most pixels, and an
    unweighted probe on weak features would call every pixel background, hiding what the features do know.
    A constant feature gets std 1 and so no say.
    """
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    x = features.double().numpy()
    y = labels.long().numpy()
    mean = x.mean(0)
    std = x.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    z = (x - mean) / std  # (P, C)
    p, c, k = len(z), z.shape[1], num_classes
    counts = np.bincount(y, minlength=k)
    weights = 1 / (np.count_nonzero(counts) * counts[y]) if balanced else np.full(p, 1 / p)  # (P,), sums to 1
    rows = np.arange(p)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: k * c].reshape(k, c), theta[k * c :]
        logits = z @ w.T + b  # (P, K)
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        total = e.sum(1)
        loss = weights @ (np.log(total) - logits[rows, y]) + l2 * (w * w).sum()
        g = e / total[:, None]  # softmax, then minus the one-hot label: d loss / d logits
        g[rows, y] -= 1
        g *= weights[:, None]
        return loss, np.concatenate([(g.T @ z + 2 * l2 * w).ravel(), g.sum(0)])

    with threadpool_limits(1):  # small products: on a busy 2-core machine one thread is many times faster
        fit = minimize(loss_and_grad, np.zeros(k * c + k), jac=True, method="L-BFGS-B",
                       options=dict(maxiter=iterations, ftol=1e-10, gtol=1e-6))
    w, b = fit.x[: k * c].reshape(k, c), fit.x[k * c :]
    as_float = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    return LinearProbe(as_float(w), as_float(b), as_float(mean), as_float(std))


def targets(labels: torch.Tensor, task: str) -> torch.Tensor:
    """The probe's labels for ``task``: ``shape`` maps every object class to 1; void stays void."""
    if task == "shape":
        return torch.where(labels == VOID, labels, (labels > 0).to(labels.dtype))
    if task == "class":
        return labels
    raise ValueError(f"unknown task {task!r}; valid tasks are: {', '.join(TASKS)}")


def sample_pixels(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Up to ``n`` flat indices of labelled (non-void) pixels of ``(H, W)`` labels, drawn without replacement."""
    valid = (labels.flatten() != VOID).nonzero()[:, 0]
    if len(valid) <= n:
        return valid
    return valid[torch.randperm(len(valid), generator=generator)[:n]]


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

    def update(self, features, shape_logits, class_logits, labels, band) -> None:
        fg = targets(labels, "shape")
        shape_matrix = confusion_matrix(shape_logits.argmax(0), fg, 2)  # (2, 2) this image's counts
        class_matrix = confusion_matrix(class_logits.argmax(0), labels, self.classes.num_classes)  # (K, K)
        right = shape_logits.argmax(0) == fg.long()
        obj, bg = fg == 1, fg == 0
        which = class_logits[1:].argmax(0) + 1  # the most likely object class, background left out
        mean = features.mean(0)  # (H, W) average over channels
        row = {"shape": shape_matrix.numpy(), "classes": class_matrix.numpy(),
               "band": [int(right[band].sum()), int(band.sum())],
               "objects": [int((which == labels.long())[obj].sum()), int(obj.sum())],
               "activation": [float(mean[obj].sum()), int(obj.sum()), float(mean[bg].sum()), int(bg.sum())]}
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


Sample = tuple[dict[str, torch.Tensor], torch.Tensor]  # (maps[stage] (C, h, w), class map (H, W), 255 void)
Probes = dict[str, dict[str, LinearProbe]]  # stage -> task ("shape", "class") -> probe


def fit_probes(fit_samples: Iterable[Sample], num_classes: int, pixels_per_image: int = 1000, l2: float = 1e-4,
               balanced: bool = True, seed: int = 0) -> Probes:
    """A shape probe and a class probe per stage, fitted on ``pixels_per_image`` random labelled pixels of
    every sample. ``maps[stage]`` may have any stride that tiles the class map (see ``upsample``)."""
    generator = torch.Generator().manual_seed(seed)
    rows: dict[str, list[torch.Tensor]] = {}
    labels = []
    for maps, lab in fit_samples:
        picked = sample_pixels(lab, pixels_per_image, generator)
        for s, m in maps.items():
            rows.setdefault(s, []).append(upsample(m, lab.shape).flatten(1)[:, picked].T)  # (P, C)
        labels.append(lab.flatten()[picked].long())
    if not labels:
        raise ValueError("no fit samples: the probes need labelled pixels to learn from")
    y = torch.cat(labels)
    return {s: {task: fit_probe(torch.cat(r), targets(y, task), 2 if task == "shape" else num_classes, l2,
                                balanced) for task in TASKS} for s, r in rows.items()}


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
            features = upsample(maps[s], lab.shape)  # (C, H, W)
            scorers[s].update(features, probe_["shape"].logits(features), probe_["class"].logits(features), lab,
                              near)
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


def model_samples(model: torch.nn.Module, images: Iterable[tuple[np.ndarray, np.ndarray]],
                  stages: Sequence[str] = DECODER_STAGES) -> Iterator[Sample]:
    """``(stage_maps, class map)`` per ``(image (H, W, 3) uint8, class map (H, W) uint8)``; the model runs once
    per image (eval mode, no gradients). Feed it ``VOCSegmentation.load_image(i)`` and ``load_masks(i)[0]``."""
    for image, mask in images:
        yield stage_maps(model, to_tensor(image), stages), torch.from_numpy(np.array(mask))


def probe_stages(model: torch.nn.Module, fit_images: Iterable[tuple[np.ndarray, np.ndarray]],
                 eval_images: Iterable[tuple[np.ndarray, np.ndarray]], stages: Sequence[str] = DECODER_STAGES,
                 **options) -> dict[str, StageScores]:
    """``probe`` on the maps of ``model``'s stages (paper Sec. 3.2, Fig. 4; chapter 3): fit on training
    images, score on val images (see ``model_samples``); ``options`` go to ``probe``."""
    return probe(model_samples(model, fit_images, stages), model_samples(model, eval_images, stages),
                 model.cfg.num_classes, **options)
