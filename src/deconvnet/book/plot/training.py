"""Chapter 4, training: loss and validation curves, the confusion matrix, predictions beside the truth."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deconvnet.book.plot.base import class_legend, colour_mask, rgb_array

_RECIPE_STYLE = {"two_stage": ("#4C72B0", "-"), "stage2_only": ("#DD8452", "--"), "no_bn": ("#C44E52", ":"),
                 "two_stage seed 1": ("#4C72B0", "-.")}


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


def prediction_grid(images, truths, predictions: dict[str, list], size: float = 2.0, classes=None) -> plt.Figure:
    """Columns: image, ground truth, then one column per model's prediction (VOC colours, void cream).

    With ``classes`` (the dataset's names), a legend below names the colours of the classes shown.
    Chapters 4 and 6.
    """
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(len(images), columns, figsize=(columns * size, len(images) * size), squeeze=False)
    for r, (image, truth) in enumerate(zip(images, truths, strict=True)):
        panels = [rgb_array(image), colour_mask(truth)] + [colour_mask(p[r]) for p in predictions.values()]
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel, interpolation="nearest")
            axes[r, c].axis("off")
    for c, title in enumerate(["image", "ground truth", *predictions]):
        axes[0, c].set_title(title, fontsize=9)
    maps = [*truths, *(m for p in predictions.values() for m in p)]
    share = class_legend(fig, maps, classes) if classes is not None else 0.0
    fig.tight_layout(rect=(0, share, 1, 1))
    return fig
