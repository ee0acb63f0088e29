"""Linear probes of the decoder: each stage's maps, upsampled to the image, and the probes fitted to them.

Noh et al. (2015, Sec. 3.2, Fig. 4) read their decoder's activations as coarse to fine: the stages next to fc6
would hold the object's overall location and shape, the stages near the output the class-specific detail. A
*linear probe* turns that reading into numbers: for every stage (``DECODER_STAGES``) we take its maps
(``stage_maps``), upsample them to the image (bilinear, ``upsample``) and fit a logistic regression
(``fit_probe``) from a pixel's feature vector to its label on some images: a **shape** probe (object vs
background) and a **class** probe over all classes (``fit_probes``). A probe cannot read more than a linear
function of a pixel's upsampled features; it measures what is readily decodable, not all that is stored.
``probe_scores`` scores the probes on other images, with intervals. Used in chapter 3 (deconvolution);
``tests/test_probe.py`` checks it on constructed features whose answers are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deconvnet.infer.metrics import VOID
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
    step = stride(maps.shape[-2:], size)
    if step == 1:
        return maps[:, :H, :W]
    up = F.interpolate(maps[None], size=(h * step, w * step), mode="bilinear", align_corners=False)
    return up[0, :, :H, :W]


def stride(cells: tuple[int, int], size: tuple[int, int]) -> int:
    """The smallest power of two whose ``(h, w)`` cells cover the ``(H, W)`` image: the map's stride (pools
    halve). A map cropped to the image has fewer cells than the padded input's size over the stride."""
    (h, w), (H, W) = cells, size
    step = 1
    while h * step < H or w * step < W:
        step *= 2
    return step


def upsample_at(maps: torch.Tensor, size: tuple[int, int], flat: torch.Tensor) -> torch.Tensor:
    """``upsample(maps, size).flatten(1)[:, flat]`` without making the full-size maps: ``(C, P)``.

    Each picked pixel blends the four cells around it with ``F.interpolate``'s weights (``align_corners=False``:
    source ``(i + 0.5) / stride - 0.5``, held at the edges). Fitting reads 1,000 pixels of an image, and
    upsampling all 512 channels of a stage to every pixel first took most of chapter 3's time.
    """
    step, (h, w), W = stride(maps.shape[-2:], size), maps.shape[-2:], size[1]

    def cells(pos: torch.Tensor, n: int):  # along one axis: the two cells around each pixel, the second's weight
        source = ((pos.float() + 0.5) / step - 0.5).clamp(min=0)
        low = source.long().clamp(max=n - 1)
        return low, (low + 1).clamp(max=n - 1), source - low

    r0, r1, dr = cells(flat // W, h)
    c0, c1, dc = cells(flat % W, w)
    top = maps[:, r0, c0] * (1 - dc) + maps[:, r0, c1] * dc  # (C, P)
    bottom = maps[:, r1, c0] * (1 - dc) + maps[:, r1, c1] * dc
    return top * (1 - dr) + bottom * dr


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
            rows.setdefault(s, []).append(upsample_at(m, lab.shape, picked).T)  # (P, C)
        labels.append(lab.flatten()[picked].long())
    if not labels:
        raise ValueError("no fit samples: the probes need labelled pixels to learn from")
    y = torch.cat(labels)
    return {s: {task: fit_probe(torch.cat(r), targets(y, task), 2 if task == "shape" else num_classes, l2,
                                balanced) for task in TASKS} for s, r in rows.items()}


def model_samples(model: torch.nn.Module, images: Iterable[tuple[np.ndarray, np.ndarray]],
                  stages: Sequence[str] = DECODER_STAGES) -> Iterator[Sample]:
    """``(stage_maps, class map)`` per ``(image (H, W, 3) uint8, class map (H, W) uint8)``; the model runs once
    per image (eval mode, no gradients). Feed it ``VOCSegmentation.load_image(i)`` and ``load_masks(i)[0]``."""
    for image, mask in images:
        yield stage_maps(model, to_tensor(image), stages), torch.from_numpy(np.array(mask))
