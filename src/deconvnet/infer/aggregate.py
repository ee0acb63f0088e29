"""Instance-wise inference: segment the top-N proposals of an image and aggregate their maps (paper Sec. 5.1).

DeconvNet is trained on object-sized windows, so at test time the paper segments an image window by window:

1. the top ``N`` object proposals (the generator training used: selective search, ``data.proposals``), each
   enlarged into a window by the training rule (``data.samples.context_window``: 1.2x, square);
2. each window cut as training cut it (``data.samples.cut_window``: outside the image is the mean colour) and
   resized to the network's input side; all windows of the image go through the network in batches;
3. each ``(C, S, S)`` score map resized (bilinear) back to its window and placed in image coordinates, the
   part outside the image dropped;
4. the maps combined per pixel over the windows that cover it, by **maximum** (Eq. 1) or by **average**
   (Eq. 2 sums; we divide the sum by the number of covering windows, which leaves its arg-max unchanged but
   keeps the scores on one scale for the softmax and the ensemble).

**Pixels that no window covers** get zero scores for every class, which is what the paper's zero-padded maps
give them; softmax makes that a uniform distribution and the label map says background, the class that fills
most of any image and that every proposal method leaves uncovered first. In the ensemble such a pixel has no
DeconvNet opinion, so FCN decides it. ``InferConfig.uncovered = "whole"`` instead fills them with the
whole-image scores of the same network (one extra forward pass); chapter 5 measures both.

The release differs in two details: its running maximum starts from zero, so negative scores are clipped to
zero everywhere, and it skips proposals whose shorter side is under 112 px. We keep neither: the first makes
the maximum depend on how many windows miss a pixel, and the second would drop exactly the small objects
chapter 5 looks at.

``segment_instances`` is the whole pipeline for one image and returns an ``InstanceSegmentation`` with the
scores, the label map, the coverage and per-step timings. Used in chapters 5 and 6 and by
``python -m deconvnet segment``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from deconvnet.config import DataConfig, InferConfig
from deconvnet.data.proposals import selective_search
from deconvnet.data.samples import context_window, cut_window
from deconvnet.infer.whole import segment_whole, to_tensor

HOWS = ("max", "mean")  # Eq. 1 and Eq. 2 of the paper


def proposal_windows(boxes: np.ndarray, cfg: DataConfig, top_n: int) -> np.ndarray:
    """The first ``top_n`` proposals ``(N, 4)`` XYXY as windows ``(n, 4)`` float32, by the training rule."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[:top_n]
    return np.array([context_window(b, cfg.context, cfg.square_windows) for b in boxes], np.float32).reshape(-1, 4)


def pixel_window(window) -> tuple[int, int, int, int]:
    """The integer window ``(x0, y0, x1, y1)`` that ``cut_window`` cuts for a float window (at least 1 px)."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in window)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def cut_windows(image: np.ndarray, windows: np.ndarray, side: int) -> torch.Tensor:
    """Windows of an ``(H, W, 3)`` uint8 image as a batch ``(n, 3, side, side)`` float in [0, 1].

    The cut is ``data.samples.cut_window``'s, the one training used, so the network sees an inference window
    exactly as it saw a training window (the label it also cuts is not needed here).
    """
    img = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W); a writable copy
    dummy = torch.zeros(image.shape[:2], dtype=torch.uint8)  # (H, W)
    crops = [cut_window(img, dummy, w, side)[0] for w in windows]
    if not crops:
        return torch.zeros(0, 3, side, side)
    return torch.stack(crops).float().div_(255)  # (n, 3, side, side)


@torch.no_grad()
def window_scores(model: torch.nn.Module, crops: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Class scores ``(n, C, S, S)`` of the crops ``(n, 3, S, S)``, ``batch_size`` crops per forward pass."""
    device = model.pixel_mean.device
    out = [model(chunk.to(device)).float().cpu() for chunk in crops.split(batch_size)]
    return torch.cat(out) if out else torch.zeros(0, model.cfg.num_classes, *crops.shape[-2:])


class Aggregator:
    """Running per-pixel maximum, sum and count of instance score maps placed in an ``(H, W)`` image.

    ``add(window, scores)`` resizes a window's ``(C, S, S)`` map to the window and puts it in place;
    ``scores(how, fallback)`` combines what was added (paper Eq. 1 and 2) and fills uncovered pixels.
    """

    def __init__(self, num_classes: int, size_hw: tuple[int, int]):
        h, w = size_hw
        self.size = (h, w)
        self.max = torch.full((num_classes, h, w), float("-inf"))  # (C, H, W)
        self.sum = torch.zeros(num_classes, h, w)  # (C, H, W)
        self.count = torch.zeros(h, w, dtype=torch.int64)  # (H, W): windows covering each pixel
        self.added = 0

    def add(self, window, scores: torch.Tensor) -> None:
        h, w = self.size
        x0, y0, x1, y1 = pixel_window(window)
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        self.added += 1
        if ix1 <= ix0 or iy1 <= iy0:
            return  # the window lies outside the image
        resized = F.interpolate(scores[None].float(), size=(y1 - y0, x1 - x0), mode="bilinear",
                                align_corners=False)[0]  # (C, window h, window w)
        part = resized[:, iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]  # the part inside the image
        region = (slice(None), slice(iy0, iy1), slice(ix0, ix1))
        self.max[region] = torch.maximum(self.max[region], part)
        self.sum[region] += part
        self.count[iy0:iy1, ix0:ix1] += 1

    @property
    def covered(self) -> torch.Tensor:
        return self.count > 0  # (H, W) bool

    def scores(self, how: str = "max", fallback: torch.Tensor | None = None) -> torch.Tensor:
        r"""Aggregated scores ``(C, H, W)``: ``max`` (Eq. 1) or ``mean`` (Eq. 2 over the covering windows).

        With :math:`g_i(x, y, c)` the score map of window :math:`i` resized into the image, and
        :math:`N(x, y)` the windows that cover pixel :math:`(x, y)`:

        .. math:: P(x, y, c) = \max_{i \in N(x, y)} g_i(x, y, c) \quad \text{(Eq. 1)}, \qquad
                  P(x, y, c) = \frac{1}{|N(x, y)|} \sum_{i \in N(x, y)} g_i(x, y, c) \quad \text{(Eq. 2)}

        Uncovered pixels take ``fallback`` ``(C, H, W)`` (e.g. whole-image scores) or, without one, zero for
        every class: the paper's zero padding, a uniform distribution after softmax.
        """
        if how == "max":
            combined = self.max
        elif how == "mean":
            combined = self.sum / self.count.clamp_min(1)
        else:
            raise ValueError(f"unknown aggregation {how!r}; valid ones are: {', '.join(HOWS)}")
        filler = torch.zeros_like(self.sum) if fallback is None else fallback.float()
        return torch.where(self.covered, combined, filler)

    def labels(self, how: str = "max", fallback: torch.Tensor | None = None) -> torch.Tensor:
        """Arg-max label map ``(H, W)`` int64; uncovered pixels are background (0) unless ``fallback`` fills them."""
        labels = self.scores(how, fallback).argmax(0)
        return labels if fallback is not None else torch.where(self.covered, labels, 0)


@dataclass
class InstanceSegmentation:
    """What ``segment_instances`` returns for one image."""

    scores: torch.Tensor  # (C, H, W) aggregated class scores; softmax gives the class probabilities
    labels: torch.Tensor  # (H, W) int64 arg-max; uncovered pixels background unless filled from the whole image
    coverage: torch.Tensor  # (H, W) int64: how many windows cover each pixel
    windows: np.ndarray  # (n, 4) float32 XYXY windows segmented, in image pixels (may reach outside)
    how: str  # "max" (Eq. 1) or "mean" (Eq. 2)
    timings: dict[str, float]  # seconds per step: proposals, [whole image,] crop, network, aggregate, total
    whole_scores: torch.Tensor | None = None  # (C, H, W) whole-image scores, when they were computed
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # n -> {method: (H, W) labels}

    @property
    def probabilities(self) -> torch.Tensor:
        """Softmax of the aggregated scores ``(C, H, W)``: the map the ensemble averages (Sec. 5.2)."""
        return F.softmax(self.scores, dim=0)


def segment_instances(model: torch.nn.Module, image: np.ndarray, data_cfg: DataConfig, infer_cfg: InferConfig,
                      *, proposals: np.ndarray | None = None, how: str | None = None, whole: bool = False,
                      snapshots: tuple[int, ...] = ()) -> InstanceSegmentation:
    """Instance-wise segmentation of one ``(H, W, 3)`` uint8 image: the paper's inference (Sec. 5.1).

    ``proposals`` ``(N, 4)`` XYXY, best first; ``None`` runs selective search with ``data_cfg``'s settings,
    as the cached proposals were made. The first ``infer_cfg.top_n`` become windows, are segmented in batches
    of ``infer_cfg.batch_size`` and combined by ``how`` (default: ``infer_cfg.aggregation``). ``whole`` also
    computes whole-image scores (always done when ``infer_cfg.uncovered == "whole"``, which fills uncovered
    pixels with them).

    ``snapshots`` lists window counts ``n`` at which to record the label map of every aggregation after the
    first ``n`` windows (``"max"``, ``"mean"``, with whole-image scores also ``"max+whole"``, ``"mean+whole"``)
    and the coverage (``"covered"``): chapter 5's mean IoU against N and its figure of the map filling in.
    """
    how = infer_cfg.aggregation if how is None else how
    if how not in HOWS:
        raise ValueError(f"unknown aggregation {how!r}; valid ones are: {', '.join(HOWS)}")
    model.eval()
    timings: dict[str, float] = {}
    start = tic = time.perf_counter()
    if proposals is None:
        proposals = selective_search(image, data_cfg.proposal_mode, data_cfg.proposal_side, data_cfg.max_proposals)
        timings["proposals"] = time.perf_counter() - tic
    else:
        timings["proposals"] = 0.0  # given (cached); computing them costs what selective search costs
    whole_scores = None
    if whole or infer_cfg.uncovered == "whole":
        tic = time.perf_counter()
        whole_scores = segment_whole(model, to_tensor(image)).cpu()  # (C, H, W)
        timings["whole image"] = time.perf_counter() - tic

    tic = time.perf_counter()
    windows = proposal_windows(proposals, data_cfg, infer_cfg.top_n)  # (n, 4)
    crops = cut_windows(image, windows, model.cfg.input_size)  # (n, 3, S, S)
    timings["crop"] = time.perf_counter() - tic
    tic = time.perf_counter()
    maps = window_scores(model, crops, infer_cfg.batch_size)  # (n, C, S, S)
    timings["network"] = time.perf_counter() - tic

    tic = time.perf_counter()
    agg = Aggregator(model.cfg.num_classes, image.shape[:2])
    wanted = sorted(set(snapshots))
    recorded: dict[int, dict[str, torch.Tensor]] = {}
    snapshot_seconds = 0.0

    def record(n: int) -> None:
        nonlocal snapshot_seconds
        t0 = time.perf_counter()
        snap = {m: agg.labels(m) for m in HOWS} | {"covered": agg.covered.clone()}
        if whole_scores is not None:
            snap |= {f"{m}+whole": agg.labels(m, whole_scores) for m in HOWS}
        recorded[n] = snap
        snapshot_seconds += time.perf_counter() - t0

    for k, (window, scores) in enumerate(zip(windows, maps, strict=True), start=1):
        agg.add(window, scores)
        if k in wanted:
            record(k)
    for n in wanted:  # an image with fewer proposals than n: its map stops growing at what it has
        if n not in recorded:
            record(n)
    fallback = whole_scores if infer_cfg.uncovered == "whole" else None
    scores = agg.scores(how, fallback)
    labels = agg.labels(how, fallback)
    timings["aggregate"] = time.perf_counter() - tic - snapshot_seconds  # the snapshots are bookkeeping
    # total: the pipeline itself, without the snapshots and without a whole-image pass made only for comparison
    extra = timings.get("whole image", 0.0) if infer_cfg.uncovered != "whole" else 0.0
    timings["total"] = time.perf_counter() - start - snapshot_seconds - extra
    return InstanceSegmentation(scores=scores, labels=labels, coverage=agg.count, windows=windows, how=how,
                                timings=timings, whole_scores=whole_scores, snapshots=recorded)
