"""Chapter 4, the data: SynthVOC scenes, stage-1 and stage-2 samples, class and scale histograms (``data``)."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from deconvnet.book.plot.base import colour_mask, rgb_array


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
        row[0].imshow(rgb_array(image))
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
        axes[0, col].imshow(rgb_array(image))
        axes[1, col].imshow(colour_mask(label), interpolation="nearest")
        # a window can hold four or five classes: wrapped, so neighbouring titles do not run into each other
        title_width = max(8, round(size * 11))  # characters of fontsize 7 across one panel
        axes[0, col].set_title(textwrap.fill(", ".join(present) or "background", title_width), fontsize=7)
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
    ax.imshow(rgb_array(image))
    for x0, y0, x1, y1 in proposals[:top_k]:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#DD8452", lw=0.5, alpha=0.6))
    for x0, y0, x1, y1 in gt_boxes:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#55A868", lw=2))
    ax.set_title(f"top {top_k} proposals (orange), ground truth (green)", fontsize=8)
    ax.axis("off")
    return fig
