"""The ensemble with FCN-8s and the fully connected CRF (paper Sec. 5.2 and 6.2).

DeconvNet (instance-wise, chapter 5) and FCN-8s (one pass over the whole image) err differently: the paper
finds DeconvNet better at fine detail and FCN at the overall shape, and combines them.

* ``mean_rule`` - **EDeconvNet** as the paper describes it: the average of the two class-probability maps.
* ``product_rule`` - what the authors' MATLAB release computes instead: the product of the two raw score maps,
  each clipped at zero, turned into probabilities by a softmax (the release does that before its CRF).
* ``dense_crf`` - the fully connected CRF of Krähenbühl & Koltun (2011) on top, through ``pydensecrf``
  (PyPI ``pydensecrf2``): unary = -log probability, a Gaussian smoothness kernel and a bilateral
  appearance kernel with Potts compatibilities, mean-field inference. ``RELEASE_CRF`` holds the release's
  settings; ``crf_candidates`` and ``tune_crf`` search others on held-out val images (chapter 6).

``segment`` is the full pipeline of one image for any of DeconvNet, FCN-8s and EDeconvNet, with or without
the CRF, and per-step timings. Used in chapter 6 and by ``python -m deconvnet segment``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deconvnet.config import CRFParams, DataConfig, InferConfig
from deconvnet.infer.aggregate import segment_instances
from deconvnet.infer.metrics import SegmentationMetrics
from deconvnet.infer.whole import segment_whole, to_tensor

RULES = ("mean", "product")
MODELS = ("deconvnet", "fcn8s", "edeconvnet")


def mean_rule(deconv_scores: torch.Tensor, fcn_scores: torch.Tensor) -> torch.Tensor:
    r"""EDeconvNet (paper Sec. 5.2): the mean of the two softmax maps. Scores ``(C, H, W)`` -> probabilities.

    .. math:: P(c \mid x) = \tfrac{1}{2} \left( \mathrm{softmax}(s^{\mathrm{DeconvNet}})_c
              + \mathrm{softmax}(s^{\mathrm{FCN}})_c \right)
    """
    return (F.softmax(deconv_scores.float(), dim=0) + F.softmax(fcn_scores.float(), dim=0)) / 2


def product_rule(deconv_scores: torch.Tensor, fcn_scores: torch.Tensor) -> torch.Tensor:
    r"""The release's ensemble: softmax of the product of the scores, each clipped at zero. ``(C, H, W)``.

    .. math:: P(c \mid x) = \mathrm{softmax}_c\left(\max(s^{\mathrm{DeconvNet}}_c, 0)\,
              \max(s^{\mathrm{FCN}}_c, 0)\right)

    Where either network gives every class a score <= 0 the product is zero for all classes: the
    probabilities are uniform and the label is background, as in the release.
    """
    return F.softmax(deconv_scores.float().clamp_min(0) * fcn_scores.float().clamp_min(0), dim=0)


def combine(deconv_scores: torch.Tensor, fcn_scores: torch.Tensor, rule: str = "mean") -> torch.Tensor:
    """Class probabilities ``(C, H, W)`` of the ensemble by ``rule`` ("mean": the paper, "product": release)."""
    if rule == "mean":
        return mean_rule(deconv_scores, fcn_scores)
    if rule == "product":
        return product_rule(deconv_scores, fcn_scores)
    raise ValueError(f"unknown ensemble rule {rule!r}; valid rules are: {', '.join(RULES)}")


RELEASE_CRF = CRFParams()  # the release's setting (config.CRFParams' defaults)


def dense_crf(image: np.ndarray, probabilities: torch.Tensor, params: CRFParams = RELEASE_CRF) -> torch.Tensor:
    r"""Refine ``probabilities`` ``(C, H, W)`` of an ``(H, W, 3)`` uint8 RGB image; returns ``(C, H, W)`` float32.

    The fully connected CRF (Krähenbühl & Koltun 2011) finds labels :math:`l` that lower

    .. math:: E(l) = \sum_i -\log p_i(l_i) + \sum_{i < j} [l_i \ne l_j] \left( w_a
              e^{-\frac{|p_i - p_j|^2}{2\theta_\alpha^2} - \frac{|I_i - I_j|^2}{2\theta_\beta^2}}
              + w_s e^{-\frac{|p_i - p_j|^2}{2\theta_\gamma^2}} \right)

    with pixel positions :math:`p` and colours :math:`I`. ``params`` holds the appearance kernel's
    :math:`w_a, \theta_\alpha, \theta_\beta` (``bilateral_weight``, ``bilateral_sxy``, ``bilateral_srgb``)
    and the smoothness kernel's :math:`w_s, \theta_\gamma` (``gaussian_weight``, ``gaussian_sxy``). The unary
    energy is -log p (p clipped at 1e-5, as ``pydensecrf.utils.unary_from_softmax`` does).
    """
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError("the dense CRF needs pydensecrf: pip install pydensecrf2==1.1 (builds from source)") from err
    probs = torch.as_tensor(probabilities).float().cpu().numpy()
    c, h, w = probs.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and probabilities {(h, w)} differ in size")
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs), dtype=np.float32))  # (C, H*W)
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_weight)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.require(image, np.uint8, ["C", "W"]), compat=params.bilateral_weight)
    q = np.asarray(crf.inference(params.iterations), dtype=np.float32)  # (C, H*W)
    return torch.from_numpy(q.reshape(c, h, w))


def crf_candidates(cfg: InferConfig) -> list[CRFParams]:
    """The settings ``tune_crf`` tries: the release's, then every combination of ``cfg``'s bilateral grid."""
    grid = [CRFParams(bilateral_weight=w, bilateral_sxy=s, bilateral_srgb=r)
            for w, s, r in itertools.product(cfg.crf_weights, cfg.crf_sxy, cfg.crf_srgb)]
    return [RELEASE_CRF, *[p for p in grid if p != RELEASE_CRF]]


def tune_crf(images: list[np.ndarray], probabilities: list[torch.Tensor], targets: list[np.ndarray],
             candidates: list[CRFParams], num_classes: int = 21) -> tuple[CRFParams, list[dict]]:
    """The candidate with the best mean IoU on these (held-out) images; ties go to the earlier candidate.

    Returns it and one row per candidate: its settings, mean IoU and seconds per image. Chapter 6.
    """
    if not images:
        raise ValueError("tune_crf needs at least one image")
    rows = []
    for params in candidates:
        metrics, start = SegmentationMetrics(num_classes), time.perf_counter()
        for image, probs, target in zip(images, probabilities, targets, strict=True):
            metrics.update(dense_crf(image, probs, params).argmax(0), torch.as_tensor(np.array(target)))
        rows.append({**asdict(params), "mean_iou": metrics.mean_iou(),
                     "seconds_per_image": (time.perf_counter() - start) / len(images)})
    best = max(range(len(rows)), key=lambda k: (rows[k]["mean_iou"], -k))
    return candidates[best], rows


@dataclass
class Segmentation:
    """What ``segment`` returns for one image."""

    labels: torch.Tensor  # (H, W) int64 class map
    probabilities: torch.Tensor  # (C, H, W) class probabilities (after the CRF, if one ran)
    model: str  # "deconvnet", "fcn8s" or "edeconvnet"
    crf: CRFParams | None  # the CRF settings used, or None
    timings: dict[str, float]  # seconds per step; "total" is the whole call
    scores: dict[str, torch.Tensor]  # the networks' own (C, H, W) scores: "deconvnet" (aggregated), "fcn8s"


def segment(image: np.ndarray, data_cfg: DataConfig, infer_cfg: InferConfig, *, model: str = "edeconvnet",
            deconvnet: torch.nn.Module | None = None, fcn: torch.nn.Module | None = None, rule: str = "mean",
            crf: CRFParams | None = None, proposals: np.ndarray | None = None) -> Segmentation:
    """Segment one ``(H, W, 3)`` uint8 RGB image with ``model`` and optionally the CRF (paper Sec. 5-6).

    * ``deconvnet`` - instance-wise inference with max aggregation (``aggregate.segment_instances``);
    * ``fcn8s`` - FCN-8s on the whole image;
    * ``edeconvnet`` - both, combined by ``rule`` ("mean": the paper; "product": the release).

    ``proposals`` are computed by selective search when not given. Timings cover every step; ``scores`` keeps
    each network's raw scores, from which chapter 6 builds the other rows of its table.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid models are: {', '.join(MODELS)}")
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; valid rules are: {', '.join(RULES)}")
    need = {"deconvnet": ("deconvnet",), "fcn8s": ("fcn",), "edeconvnet": ("deconvnet", "fcn")}[model]
    given = {"deconvnet": deconvnet, "fcn": fcn}
    missing = [name for name in need if given[name] is None]
    if missing:
        raise ValueError(f"model {model!r} needs the trained {' and '.join(missing)} network(s)")
    start = time.perf_counter()
    timings: dict[str, float] = {}
    deconv_scores = fcn_scores = None
    if deconvnet is not None and "deconvnet" in need:
        inst = segment_instances(deconvnet, image, data_cfg, infer_cfg, proposals=proposals)  # infer_cfg.aggregation
        deconv_scores = inst.scores
        timings |= {f"DeconvNet: {k}": v for k, v in inst.timings.items() if k != "total" and v > 0}
    if fcn is not None and "fcn" in need:
        tic = time.perf_counter()
        fcn.eval()
        fcn_scores = segment_whole(fcn, to_tensor(image)).cpu()  # (C, H, W)
        timings["FCN-8s: whole image"] = time.perf_counter() - tic
    tic = time.perf_counter()
    if model == "edeconvnet":
        probs = combine(deconv_scores, fcn_scores, rule)
        timings["ensemble"] = time.perf_counter() - tic
    else:
        probs = F.softmax(deconv_scores if model == "deconvnet" else fcn_scores, dim=0)
    if crf is not None:
        tic = time.perf_counter()
        probs = dense_crf(image, probs, crf)
        timings["dense CRF"] = time.perf_counter() - tic
    timings["total"] = time.perf_counter() - start
    scores = {k: v for k, v in (("deconvnet", deconv_scores), ("fcn8s", fcn_scores)) if v is not None}
    return Segmentation(labels=probs.argmax(0), probabilities=probs, model=model, crf=crf, timings=timings,
                        scores=scores)
