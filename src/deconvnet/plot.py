"""Every figure of the book. Functions take data and return a matplotlib Figure; chapters show them.

Notebook-facing: no core module imports this one. Sections below are grouped by chapter.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch

# ---------------------------------------------------------------------------------------------------------
# Chapter 1: architecture
# ---------------------------------------------------------------------------------------------------------

_GROUP_COLOURS = {"encoder": "#4C72B0", "fc": "#DD8452", "decoder": "#55A868", "score": "#C44E52"}


def architecture_diagram(rows, title: str = "DeconvNet") -> plt.Figure:
    """The encoder-decoder as boxes: height ~ spatial size, width ~ log channels (paper Fig. 2).

    ``rows`` is ``summary.layer_table(...)``; pools and unpools are drawn as thin markers.
    """
    fig, ax = plt.subplots(figsize=(12, 3.6))
    side_max = max(r.output_shape[1] for r in rows)
    x = 0.0
    for r in rows:
        c, h = r.output_shape[0], r.output_shape[1]
        height = 0.15 + 0.85 * h / side_max
        if r.kind in ("pool", "unpool"):
            ax.annotate("", xy=(x + 0.25, 0.5), xytext=(x, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#777", lw=1.2))
            ax.text(x + 0.12, 0.53 + height / 2, r.name, rotation=90, ha="center", va="bottom", fontsize=7,
                    color="#555")
            x += 0.35
            continue
        width = 0.12 + 0.1 * np.log2(max(c, 1))
        box = FancyBboxPatch((x, 0.5 - height / 2), width, height, boxstyle="round,pad=0.005",
                             fc=_GROUP_COLOURS[r.group], ec="white", alpha=0.9)
        ax.add_patch(box)
        if r.kind in ("fc", "score") or r.name.endswith("_1") or r.name == "fc6_deconv":
            ax.text(x + width / 2, 0.5 - height / 2 - 0.03, f"{r.name}\n{c}x{h}", ha="center", va="top",
                    fontsize=6.5)
        x += width + 0.06
    for group, colour in _GROUP_COLOURS.items():
        ax.bar(0, 0, color=colour, label=group)
    ax.legend(loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 1.12))
    ax.set_xlim(-0.1, x + 0.1)
    ax.set_ylim(-0.12, 1.08)
    ax.axis("off")
    ax.set_title(title, pad=22)
    return fig


def parameter_shares(totals: dict[str, dict[str, int]]) -> plt.Figure:
    """Parameters and multiply-accumulates per group, as shares of the total (``summary.group_totals``)."""
    groups = list(totals)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "multiply-accumulates")):
        values = np.array([totals[g][key] for g in groups], dtype=float)
        shares = values / values.sum()
        bars = ax.barh(groups, shares, color=[_GROUP_COLOURS[g] for g in groups])
        for bar, share in zip(bars, shares, strict=True):
            ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{share:.1%}", va="center")
        ax.set_xlim(0, 1.15)
        ax.invert_yaxis()
        ax.set_title(f"share of {label}")
    fig.tight_layout()
    return fig


def filter_grid(weight: torch.Tensor, columns: int = 16, title: str = "") -> plt.Figure:
    """First-layer filters ``(C_out, 3, k, k)`` as small RGB tiles, each scaled to its own range."""
    w = weight.detach().float().cpu()
    w = w - w.amin(dim=(1, 2, 3), keepdim=True)
    w = w / w.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    rows = -(-w.shape[0] // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.5, rows * 0.5))
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, w, strict=False):
        ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest")
    if title:
        fig.suptitle(title, y=1.02)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapters 2 and 7: Zeiler & Fergus projections, saliency maps (``projection``, ``saliency``)
# ---------------------------------------------------------------------------------------------------------

SALIENCY_TITLES = {"vanilla": "gradient", "deconvnet": "deconvnet", "guided": "guided backprop",
                   "gradcam": "Grad-CAM", "guided_gradcam": "guided Grad-CAM"}


def signed_image(signal: torch.Tensor, percentile: float = 99.5) -> np.ndarray:
    """A signed ``(3, H, W)`` map as an RGB image: its mean is grey, the ``percentile`` of the deviation saturates.

    Scaling by a high percentile rather than the maximum keeps a few extreme pixels from greying out the rest;
    centring on the mean shows the structure of deconvnet maps, which are positive almost everywhere.
    """
    s = signal.detach().float().cpu()
    s = s - s.mean()
    scale = float(torch.quantile(s.abs().flatten(), percentile / 100)) or 1.0
    return (s / scale * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, 3)


def heatmap_overlay(image: torch.Tensor, cam: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """A ``(1, H, W)`` class map over its ``(3, H, W)`` image in [0, 1], coloured with jet (Grad-CAM's figures)."""
    heat = cam.detach().float().cpu()[0]
    heat = heat / heat.max().clamp_min(1e-12)
    coloured = plt.get_cmap("jet")(heat.numpy())[..., :3]  # (H, W, 3)
    return (1 - alpha) * image.detach().float().cpu().permute(1, 2, 0).numpy() + alpha * coloured


def saliency_grid(image: torch.Tensor, maps: dict[str, torch.Tensor], predictions, region=None,
                  size: float = 2.2, side: dict | None = None) -> plt.Figure:
    """Rows = methods, columns = classes (chapter 7 demo, ``deconvnet explain``).

    ``image`` is ``(3, H, W)`` in [0, 1]; ``maps[method]`` holds one map per class, ``(K, C, H, W)``;
    ``predictions`` are K ``(index, name, probability)`` triples (``classifier.topk``). ``region`` (H, W),
    the pixels whose score was explained (a segmentation net's object), is outlined on every panel.
    ``side`` maps titles to ``(H, W, 3)`` images shown under the input (e.g. ground truth and prediction).
    """
    methods, k = list(maps), len(predictions)
    fig, axes = plt.subplots(len(methods), k + 1, figsize=(size * (k + 1), (size + 0.1) * len(methods)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    axes[0, 0].imshow(image.detach().float().cpu().permute(1, 2, 0).numpy())
    axes[0, 0].set_title("input")
    for row, (title, picture) in enumerate((side or {}).items(), start=1):
        if row < len(methods):
            axes[row, 0].imshow(picture, interpolation="nearest")
            axes[row, 0].set_title(title, fontsize=9)
    for row, method in enumerate(methods):
        axes[row, 1].set_ylabel(SALIENCY_TITLES.get(method, method))
        for col, (_, name, probability) in enumerate(predictions, start=1):
            m = maps[method][col - 1]
            shown = heatmap_overlay(image, m) if m.shape[0] == 1 else signed_image(m)
            axes[row, col].imshow(shown)
            if row == 0:
                axes[row, col].set_title(f"{name}\np = {probability:.2f}", fontsize=9)
    if region is not None:  # white outline of the explained pixels
        outlined = [axes[0, 0], *axes[1 : 1 + len(side or {}), 0], *axes[:, 1:].flat]
        for ax in outlined:
            ax.contour(np.asarray(region, dtype=float), levels=[0.5], colors="white", linewidths=0.9)
    fig.tight_layout()
    return fig


def projection_grid(projections, columns: int = 9) -> plt.Figure:
    """Zeiler & Fergus (2014, Fig. 2): per channel a row of projections and, below it, the patches that caused them.

    ``projections`` are ``projection.Projection`` objects, grouped by channel in the order given.
    """
    channels = list(dict.fromkeys((p.activation.layer, p.activation.channel) for p in projections))
    fig, axes = plt.subplots(2 * len(channels), columns, figsize=(1.2 * columns, 2.5 * len(channels)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, key in enumerate(channels):
        mine = [p for p in projections if (p.activation.layer, p.activation.channel) == key][:columns]
        for c, p in enumerate(mine):
            axes[2 * r, c].imshow(signed_image(p.crop()))
            axes[2 * r + 1, c].imshow(p.patch.detach().float().cpu().permute(1, 2, 0).numpy())
        axes[2 * r, 0].set_title(f"{key[0]} channel {key[1]}", loc="left", fontsize=9)
    fig.tight_layout()
    return fig


def localisation_bars(rows, target: str = "image", methods=None, baselines=("centre Gaussian", "uniform"),
                      tolerance: float | None = None) -> plt.Figure:
    """Pointing-game hit rate and energy inside the object per method, for the object's class and an absent one.

    ``rows`` are ``localisation.localise``'s; only those of ``target`` are drawn. Baselines are dashed lines.
    Error bars are one standard error over objects (chapter 7).
    """
    rows = [r for r in rows if r["target"] == target]
    methods = methods or list(dict.fromkeys(r["method"] for r in rows if r["method"] not in baselines))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, key, label in ((axes[0], "hit", "pointing game: hit rate"),
                           (axes[1], "energy", "energy inside the object")):
        for offset, used, colour in ((-0.2, "own", "#4C72B0"), (0.2, "other", "#A6BDDB")):
            values = [np.array([r[key] for r in rows if r["method"] == m and r["class_used"] == used], float)
                      for m in methods]
            means = [np.nanmean(v) for v in values]
            errors = [np.nanstd(v) / np.sqrt(max(np.isfinite(v).sum(), 1)) for v in values]
            ax.bar(np.arange(len(methods)) + offset, means, 0.4, yerr=errors, color=colour, capsize=2,
                   label="object's class" if used == "own" else "a class absent from the image")
        for b, style in zip(baselines, (":", "--"), strict=False):
            level = np.nanmean([r[key] for r in rows if r["method"] == b])
            ax.axhline(level, color="#C44E52", ls=style, lw=1.2, label=f"baseline: {b}")
        ax.set_xticks(range(len(methods)), [SALIENCY_TITLES.get(m, m) for m in methods], rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(label + (f" (tolerance {tolerance:g} px)" if key == "hit" and tolerance is not None else ""),
                     fontsize=10)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path, dpi: int = 120) -> None:
    """Save ``fig`` atomically (a temporary name, then ``os.replace``): readers never see half a file."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, prefix=f".{path.stem}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a figure is meant to be read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------------------------------------------------
# Chapter 4: data - SynthVOC scenes, stage-1 / stage-2 samples, class and scale histograms (``data``)
# ---------------------------------------------------------------------------------------------------------


def colour_mask(mask) -> np.ndarray:
    """A class or instance map ``(H, W)`` in VOC's colours ``(H, W, 3)`` uint8 (void is cream)."""
    from .data.voc import voc_colormap

    return voc_colormap()[np.asarray(mask, dtype=np.int64).clip(0, 255)]


def _rgb(image) -> np.ndarray:
    """``(3, H, W)`` tensor (uint8 or float in [0, 1]) or ``(H, W, 3)`` array -> ``(H, W, 3)`` for imshow."""
    a = image.detach().cpu().permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return a if a.dtype == np.uint8 else a.clip(0, 1)


def _draw_boxes(ax, boxes, names, colours) -> None:
    for (x0, y0, x1, y1), name, colour in zip(boxes, names, colours, strict=True):
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.2))
        ax.text(x0, y0 - 1, name, color="white", fontsize=6, va="bottom",
                bbox=dict(fc=colour, ec="none", pad=0.8, alpha=0.85))


def scene_gallery(dataset, indices, size: float = 2.2) -> plt.Figure:
    """Per scene of a ``data.voc.VOCSegmentation``: image with boxes and class names, class map, instance map.

    Shows what the reader returns for generated and real VOC alike (chapter 4's data gallery).
    """
    cmap = colour_mask(np.arange(256))
    fig, axes = plt.subplots(len(indices), 3, figsize=(3 * size, len(indices) * size * 0.8), squeeze=False)
    for row, i in zip(axes, indices, strict=True):
        image, target = dataset[i]
        labels = target["labels"].tolist()
        colours = [cmap[c] / 255 for c in labels]
        row[0].imshow(_rgb(image))
        _draw_boxes(row[0], target["boxes"].tolist(), [dataset.classes[c] for c in labels], colours)
        row[1].imshow(colour_mask(target["mask"]), interpolation="nearest")
        instances = (target["masks"].numpy() * np.arange(1, len(labels) + 1)[:, None, None]).max(axis=0, initial=0)
        instances[target["mask"].numpy() == 255] = 255
        row[2].imshow(colour_mask(instances), interpolation="nearest")
        row[0].set_ylabel(target["image_id"], fontsize=7)
    for ax, title in zip(axes[0], ("image and boxes", "class mask (void cream)", "instance mask"), strict=True):
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def sample_gallery(samples, indices, classes, title: str = "", size: float = 1.5) -> plt.Figure:
    """Training samples ``(image, label)`` of ``data.samples.Stage1Crops`` / ``Stage2Windows``: crop above,
    label below, titled with the classes it holds (chapter 4)."""
    fig, axes = plt.subplots(2, len(indices), figsize=(len(indices) * size, 2 * size + 0.3), squeeze=False)
    for col, i in enumerate(indices):
        image, label = samples[i]
        present = [classes[c] for c in label.unique().tolist() if 0 < c < 255]
        axes[0, col].imshow(_rgb(image))
        axes[1, col].imshow(colour_mask(label), interpolation="nearest")
        axes[0, col].set_title(", ".join(present) or "background", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def class_scale_histograms(stats: dict, classes) -> plt.Figure:
    """Instances per class and the histogram of object scales, from ``data.voc.class_and_scale_stats``.

    Scale is sqrt(box area / image area): the paper's claim about very small and very large objects
    (Sec. 5.1) needs both ends populated (chapter 4).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw=dict(width_ratios=(1.6, 1)))
    counts = stats["class_counts"][1:]
    left.bar(range(len(counts)), counts, color=colour_mask(np.arange(1, len(counts) + 1)) / 255)
    left.set_xticks(range(len(counts)), classes[1:], rotation=60, ha="right", fontsize=7)
    left.set_ylabel("instances")
    bins = np.geomspace(0.01, 1.0, 21)
    right.hist(stats["scales"].clip(bins[0], bins[-1]), bins=bins, color="#4C72B0")
    right.set_xscale("log")
    right.set_xlabel("object scale: sqrt(box area / image area)")
    right.set_ylabel("instances")
    fig.tight_layout()
    return fig


def proposal_overlay(image, proposals: np.ndarray, gt_boxes: np.ndarray, top_k: int = 50) -> plt.Figure:
    """The first ``top_k`` proposals (thin) over the ground-truth boxes (thick) of one image (chapters 4, 5)."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(_rgb(image))
    for x0, y0, x1, y1 in proposals[:top_k]:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#DD8452", lw=0.5, alpha=0.6))
    for x0, y0, x1, y1 in gt_boxes:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#55A868", lw=2))
    ax.set_title(f"top {top_k} proposals (orange), ground truth (green)", fontsize=8)
    ax.axis("off")
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapter 4: training - loss and validation curves, confusion matrix, predictions beside ground truth
# ---------------------------------------------------------------------------------------------------------

_RECIPE_STYLE = {"two_stage": ("#4C72B0", "-"), "stage2_only": ("#DD8452", "--"), "no_bn": ("#C44E52", ":")}


def training_curves(histories: dict[str, list[dict]], stage_ends: dict[str, int] | None = None) -> plt.Figure:
    """Training loss (left) and validation mean IoU (right) against steps, one line per recipe.

    ``histories`` maps a label to ``[{"train": rows, "val": rows}, ...]`` for its consecutive stages; steps
    continue across stages. ``stage_ends`` marks where stage 1 ends with a dotted line.
    """
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, stages in histories.items():
        colour, style = _RECIPE_STYLE.get(label, (None, "-"))
        offset, steps, losses, vsteps, ious = 0, [], [], [], []
        for hist in stages:
            steps += [offset + r["step"] for r in hist["train"]]
            losses += [r["loss"] for r in hist["train"]]
            vsteps += [offset + r["step"] for r in hist["val"]]
            ious += [r["mean_iou"] for r in hist["val"]]
            offset += hist["train"][-1]["step"] if hist["train"] else 0
        ax_loss.plot(steps, losses, style, color=colour, label=label)
        ax_iou.plot(vsteps, ious, style, color=colour, marker="o", ms=3, label=label)
    for end in (stage_ends or {}).values():
        for ax in (ax_loss, ax_iou):
            ax.axvline(end, color="#999", lw=0.8, ls=":")
    ax_loss.set(xlabel="step", ylabel="training loss (per pixel)", yscale="log", title="training loss")
    ax_iou.set(xlabel="step", ylabel="mean IoU", title="validation mean IoU (whole images)")
    ax_iou.set_ylim(bottom=0)
    ax_loss.legend(frameon=False)
    fig.tight_layout()
    return fig


def confusion_plot(matrix, classes, title: str = "") -> plt.Figure:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), as percentages."""
    m = np.asarray(matrix, dtype=float)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class's pixels")
    fig.tight_layout()
    return fig


def prediction_grid(images, truths, predictions: dict[str, list], size: float = 2.0) -> plt.Figure:
    """Columns: image, ground truth, then one column per model's prediction (VOC colours, void white)."""
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(len(images), columns, figsize=(columns * size, len(images) * size), squeeze=False)
    for r, (image, truth) in enumerate(zip(images, truths, strict=True)):
        panels = [_rgb(image), colour_mask(truth)] + [colour_mask(p[r]) for p in predictions.values()]
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel, interpolation="nearest")
            axes[r, c].axis("off")
    for c, title in enumerate(["image", "ground truth", *predictions]):
        axes[0, c].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
