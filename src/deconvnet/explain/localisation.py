"""Measuring saliency maps: where they point, how much of them lies on the object, what they depend on (chapter 7).

The methods of ``saliency`` make pictures; this module turns pictures into numbers, so that claims such as
"Grad-CAM localises the object" or "guided backprop ignores the class" can be checked:

* ``pointing_hit`` - the pointing game of Zhang et al. (2016): is the map's maximum on the object?
* ``energy_inside`` - the share of the map's positive mass that falls inside the object's mask (the
  "energy-based pointing game" of Wang et al. 2020, Score-CAM).
* ``map_correlation`` - Pearson correlation of two maps: near 1 for maps of two different classes means the
  method does not look at the class; near 1 for two different images means it does not look at the image.
* ``periodic_share`` - the share of a map's variance that repeats with a given period: the checkerboard that
  strided convolutions leave in deconvnet maps.
* ``localise`` - all of it over the objects of a segmentation data set, for a segmentation network
  (Noh et al. 2015's DeconvNet, whose scores are maps; ``saliency``'s ``region`` picks the pixels explained).
* ``pointing_intervals`` - ``localise``'s hit rates with bootstrap intervals, and each method's paired
  difference from the better baseline with the verdict read from its interval.

Maps are ``(H, W)``; ``to_2d`` makes one from a method's output ``(C, H, W)`` by summing the channels (a
pixel's total attribution; Grad-CAM's single channel is left as it is).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from scipy import ndimage

from deconvnet.data.voc import instances_from_masks
from deconvnet.explain import saliency
from deconvnet.infer import intervals
from deconvnet.infer.whole import pad_image, padded_size, to_tensor


def to_2d(attribution: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` or ``(H, W)`` -> ``(H, W)`` float: the sum over channels, signs kept."""
    a = attribution.detach().float().cpu()
    if a.dim() == 3:
        a = a.sum(0)
    if a.dim() != 2:
        raise ValueError(f"expected a map (H, W) or (C, H, W), got shape {tuple(attribution.shape)}")
    return a


def _mask(mask, shape) -> np.ndarray:
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
    if m.shape != tuple(shape):
        raise ValueError(f"mask of shape {m.shape} for a map of shape {tuple(shape)}")
    if not m.any():
        raise ValueError("empty mask: there is no object to point at")
    return m


def pointing_hit(saliency_map: torch.Tensor, mask, tolerance: float = 0) -> float:
    """The pointing game (Zhang et al. 2016): 1 if the map's maximum lies within ``tolerance`` pixels of the mask.

    Zhang et al. allow 15 pixels on VOC's ~500-pixel images (3% of the side). Ties are shared: the result
    is the fraction of the maximal pixels that hit, the expected score of a random tie-break. So a constant
    map scores the share of the image within reach of the object, not whatever the top-left corner scores.
    """
    m = to_2d(saliency_map)
    if not torch.isfinite(m).all():
        raise ValueError("the map holds NaN or infinite values")
    mask = _mask(mask, m.shape)
    # Euclidean distance of every pixel to the nearest mask pixel; within tolerance counts as on the object
    near = ndimage.distance_transform_edt(~mask) <= tolerance  # (H, W) bool
    top = (m == m.max()).numpy()
    return float(near[top].mean())


def energy_inside(saliency_map: torch.Tensor, mask) -> float:
    """Share of the map's positive mass inside the mask.

    A map without any positive value (``is_empty``) says nothing about where the object is; like a flat map,
    it scores the mask's share of the image, as a tie does in ``pointing_hit``.
    """
    m = to_2d(saliency_map).clamp(min=0)
    mask = _mask(mask, m.shape)
    total = float(m.sum())
    if total == 0:
        return float(mask.mean())
    return float(m[torch.from_numpy(mask)].sum()) / total


def is_empty(saliency_map: torch.Tensor) -> bool:
    """True when the map has no positive value: the backward signal died (all clipped away) before the input."""
    return bool((to_2d(saliency_map) <= 0).all())


def centre_gaussian(h: int, w: int, sigma: float = 0.25) -> torch.Tensor:
    """A baseline map ``(H, W)``: a Gaussian at the image centre, ``sigma`` a fraction of each side.

    It knows nothing of the image, only that photographers (and our scene generator) tend to put objects
    near the middle; a saliency method has to beat it to show that it looked at the image.
    """
    y = (torch.arange(h, dtype=torch.float32) + 0.5 - h / 2) / (sigma * h)
    x = (torch.arange(w, dtype=torch.float32) + 0.5 - w / 2) / (sigma * w)
    return torch.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two maps of the same shape, over all their values (NaN if one is constant)."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    if a.shape != b.shape:
        raise ValueError(f"maps of different sizes: {a.numel()} and {b.numel()} values")
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def periodic_share(saliency_map: torch.Tensor, period: int) -> float:
    """Share of the map's variance in the component that repeats every ``period`` pixels in both directions.

    The map ``(H, W)`` is cut into ``period x period`` tiles (H and W must be multiples of ``period``); the mean
    tile, repeated, is the periodic component. A map with no grid structure scores about 1 / (number of
    tiles) by chance, a pure grid pattern 1. A network whose strides multiply to ``period`` (32 for
    EfficientNet-Lite0 and VGG16) stamps such a pattern on a map it makes without looking at the image.
    """
    m = to_2d(saliency_map).double()
    h, w = m.shape
    if h % period or w % period:
        raise ValueError(f"a {h}x{w} map does not split into {period}x{period} tiles")
    tile = m.reshape(h // period, period, w // period, period).mean((0, 2))  # (period, period)
    periodic = tile.repeat(h // period, w // period)  # (H, W)
    total = float(((m - m.mean()) ** 2).sum())
    return float(((periodic - m.mean()) ** 2).sum()) / total if total > 0 else float("nan")


def other_class(labels: Iterable[int], num_classes: int, label: int) -> int:
    """A wrong target for an object of class ``label``: the next object class (cyclically) absent from the image.

    Background (0) is never chosen. Deterministic, so the comparison repeats exactly.
    """
    present = set(int(c) for c in labels)
    for step in range(1, num_classes):
        c = (label - 1 + step) % (num_classes - 1) + 1
        if c not in present:
            return c
    raise ValueError(f"every one of the {num_classes - 1} object classes is in the image")


METHODS = ("gradcam", "vanilla", "deconvnet", "guided", "guided_gradcam")
BASELINES = ("centre Gaussian", "uniform")


def localise(model: torch.nn.Module, dataset, objects: int, *, layer: str, tolerance: float,
             targets: Iterable[str] = ("mask", "image"), methods: Iterable[str] = METHODS,
             per_image: int | None = 2, batch: int = 8) -> list[dict]:
    """Pointing game and energy inside for ``objects`` objects of ``dataset``, in its order (chapter 7).

    At most ``per_image`` objects are taken from each image, the largest first (None: all of them), so that
    a few crowded scenes do not make up the whole sample.

    ``model`` is a segmentation network (``model.DeconvNet``); ``dataset`` a ``data.VOCSegmentation``. For
    every object, each method explains a class score summed over a ``region`` (``saliency``):

    * ``target="mask"`` - the object's own pixels: "what makes the network call *this region* class c";
    * ``target="image"`` - every pixel of the image: "where in the image is class c", the classic question
      of the pointing game, which the network must answer without being told where the object is;

    each once for the object's ground-truth class (``class_used="own"``) and once for a class absent from
    the image (``"other"``, see ``other_class``). Rows for the baselines (``BASELINES``) come with every
    target. Returns one dict per (object, target, class used, method) with ``hit``, ``energy``, ``empty``
    (``is_empty``), the object's ``area`` share and, for the ``other`` rows, ``r_own``: the correlation with
    the own-class map (NaN when either map is constant, e.g. all zero).

    ``batch`` objects go through the network together, once per backward rule, and the 2 targets x 2 classes
    asked of them share that forward pass (``saliency.explain_targets``): many small passes cost far more
    than a few large ones on a busy CPU. Their images are padded to a common
    size with the mean pixel, which normalises to zero.
    """
    methods = saliency.check_methods(methods)
    targets = tuple(targets)
    bad = [t for t in targets if t not in ("mask", "image")]
    if bad:
        raise ValueError(f"unknown target(s) {bad}; valid targets are: mask, image")
    found = _objects(dataset, objects, per_image)
    rows: list[dict] = []
    for start in range(0, len(found), batch):
        rows += _localise_batch(model, found[start : start + batch], len(dataset.classes), layer, tolerance,
                                targets, methods)
    return rows


def _objects(dataset, objects: int, per_image: int | None) -> list[dict]:
    """The first ``objects`` objects of ``dataset``, at most ``per_image`` (the largest) from each image."""
    found: list[dict] = []
    for i in range(len(dataset)):
        if len(found) >= objects:
            break
        labels, masks, _ = instances_from_masks(*dataset.load_masks(i))  # (N,), (N, H, W) bool
        largest = np.argsort(-masks.sum((1, 2)), kind="stable")[:per_image][: objects - len(found)]
        if not len(largest):
            continue
        image = to_tensor(dataset.load_image(i))  # (3, H, W)
        for rank, k in enumerate(largest):
            found.append(dict(image_id=dataset.ids[i], rank=rank, image=image, mask=masks[k], label=int(labels[k]),
                              other=other_class(labels, len(dataset.classes), int(labels[k]))))
    return found


def _localise_batch(model, found, num_classes, layer, tolerance, targets, methods):
    n, least = len(found), 32 * model.cfg.fc_kernel
    sizes = [padded_size(*f["image"].shape[-2:], least) for f in found]
    ph, pw = max(s[0] for s in sizes), max(s[1] for s in sizes)
    x = torch.stack([pad_image(model, f["image"], (ph, pw)) for f in found])  # (n, 3, ph, pw)
    object_region = torch.zeros(n, ph, pw, dtype=torch.bool)
    image_region = torch.zeros(n, ph, pw, dtype=torch.bool)
    for j, f in enumerate(found):
        h, w = f["mask"].shape
        object_region[j, :h, :w] = torch.from_numpy(f["mask"])
        image_region[j, :h, :w] = True  # the padding is not part of the image
    regions = {"mask": object_region, "image": image_region}
    # one forward pass per backward rule for all (target x [own, other]) questions asked of these images
    combos = [(t, used) for t in targets for used in ("own", "other")]
    asked = [([f["label"] if used == "own" else f["other"] for f in found], regions[t]) for t, used in combos]
    answers = dict(zip(combos, saliency.explain_targets(model, x, asked, methods, layer=layer), strict=True))
    rows = []
    for t in targets:
        own, other = answers[(t, "own")], answers[(t, "other")]
        for j, f in enumerate(found):
            mask = f["mask"]
            h, w = mask.shape
            base = dict(image=f["image_id"], object=f["rank"], cls=f["label"], area=float(mask.mean()), target=t)
            for method in methods:
                own_map = to_2d(own[method][j][..., :h, :w])
                other_map = to_2d(other[method][j][..., :h, :w])
                for used, m in (("own", own_map), ("other", other_map)):
                    row = dict(base, class_used=used, method=method, hit=pointing_hit(m, mask, tolerance),
                               energy=energy_inside(m, mask), empty=is_empty(m))
                    if used == "other":
                        row["r_own"] = map_correlation(own_map, other_map)
                    rows.append(row)
            for name, m in (("centre Gaussian", centre_gaussian(h, w)), ("uniform", torch.ones(h, w))):
                rows.append(dict(base, class_used="own", method=name, hit=pointing_hit(m, mask, tolerance),
                                 energy=energy_inside(m, mask), empty=False))
    return rows


def summary_table(rows: list[dict], target: str):
    """``localise``'s rows for one target as a table: one row per method and baseline, means over objects.

    Columns: pointing-game hit rate and energy inside for the object's class and for an absent class, the
    mean correlation of the two maps (over pairs where both vary) and the share of empty maps.
    Returns a ``pandas.DataFrame`` indexed by method, methods in ``METHODS`` order, then ``BASELINES``.
    """
    import pandas as pd

    t = pd.DataFrame([r for r in rows if r["target"] == target])
    if t.empty:
        raise ValueError(f"no rows for target {target!r}")
    own, other = t[t["class_used"] == "own"], t[t["class_used"] == "other"]

    def mean(frame, column):
        return frame.groupby("method")[column].mean() if column in frame else pd.Series(dtype=float)

    table = pd.DataFrame({
        "pointing, own class": mean(own, "hit"),
        "pointing, absent class": mean(other, "hit"),
        "energy inside, own class": mean(own, "energy"),
        "energy inside, absent class": mean(other, "energy"),
        "r(own, absent)": mean(other, "r_own"),
        "empty maps": mean(t[~t["method"].isin(BASELINES)].astype({"empty": float}), "empty"),
    })
    order = [m for m in (*METHODS, *BASELINES) if m in table.index]
    return table.reindex(order)


def pointing_intervals(rows: list[dict], target: str = "image", *, class_used: str = "own",
                       resamples: int = intervals.RESAMPLES, seed: int = 0) -> dict:
    """Pointing-game hit rates of ``localise``'s rows with 95% bootstrap intervals, and each method against the
    better baseline (chapter 7, "do the maps find the object?").

    Rows are paired by object, ``(image, object)``: every method and baseline must have scored the same
    objects. The bootstrap resamples *images* (``intervals.mean_interval`` with ``groups``), since the
    objects of one scene share its network pass and are not independent. The better baseline is the one of
    ``BASELINES`` with the higher hit rate; each method's difference from it is a paired bootstrap
    (``intervals.paired_mean_difference``) and its verdict (``intervals.verdict``) reads the claim "the
    method points at the object more often than a map that never looks at the image".

    Returns ``{"objects", "images", "hit": {name: interval}, "baseline": name, "best": method,
    "difference": {method: interval}, "verdict": {method: word}}`` (intervals as ``{"value", "low",
    "high"}``); baselines are always scored for the object's own class, so ``class_used="other"`` pairs
    the absent-class hits with the same baseline rows.
    """
    picked = [r for r in rows if r["target"] == target]
    if not picked:
        raise ValueError(f"no rows for target {target!r}")
    hits: dict[str, dict] = {}  # name -> {(image, object): hit}
    for r in picked:
        if r["method"] in BASELINES or r["class_used"] == class_used:
            hits.setdefault(r["method"], {})[(r["image"], r["object"])] = float(r["hit"])
    baselines = [b for b in BASELINES if b in hits]
    methods = [m for m in METHODS if m in hits]
    if not baselines or not methods:
        raise ValueError(f"need at least one method and one baseline; got {sorted(hits)}")
    keys = list(hits[baselines[0]])  # the objects, in the rows' order
    for name, per_object in hits.items():
        if set(per_object) != set(keys):
            raise ValueError(f"{name} scored other objects than {baselines[0]}: the comparison must be paired")
    groups = [image for image, _ in keys]
    values = {name: [hits[name][k] for k in keys] for name in (*methods, *baselines)}
    kw = dict(resamples=resamples, seed=seed)
    hit = {name: intervals.mean_interval(v, groups, **kw) for name, v in values.items()}
    better = max(baselines, key=lambda b: hit[b]["value"])
    difference = {m: intervals.paired_mean_difference(values[m], values[better], groups, **kw) for m in methods}
    return {"objects": len(keys), "images": len(set(groups)), "hit": hit, "baseline": better,
            "best": max(methods, key=lambda m: hit[m]["value"]), "difference": difference,
            "verdict": {m: intervals.verdict(d, predicts="positive") for m, d in difference.items()}}
