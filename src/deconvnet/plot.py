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


def saliency_grid(image: torch.Tensor, maps: dict[str, torch.Tensor], predictions) -> plt.Figure:
    """Rows = methods, columns = classes (chapter 7 demo, ``deconvnet explain``).

    ``image`` is ``(3, H, W)`` in [0, 1]; ``maps[method]`` holds one map per class, ``(K, C, H, W)``;
    ``predictions`` are K ``(index, name, probability)`` triples (``classifier.topk``).
    """
    methods, k = list(maps), len(predictions)
    fig, axes = plt.subplots(len(methods), k + 1, figsize=(2.2 * (k + 1), 2.3 * len(methods)), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    axes[0, 0].imshow(image.detach().float().cpu().permute(1, 2, 0).numpy())
    axes[0, 0].set_title("input")
    for row, method in enumerate(methods):
        axes[row, 1].set_ylabel(SALIENCY_TITLES.get(method, method))
        for col, (_, name, probability) in enumerate(predictions, start=1):
            m = maps[method][col - 1]
            shown = heatmap_overlay(image, m) if m.shape[0] == 1 else signed_image(m)
            axes[row, col].imshow(shown)
            if row == 0:
                axes[row, col].set_title(f"{name}\np = {probability:.2f}", fontsize=9)
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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
