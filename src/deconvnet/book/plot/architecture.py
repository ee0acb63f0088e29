"""Chapter 1: the network drawn layer by layer, where its parameters sit, its first filters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch

_GROUP_COLOURS = {"encoder": "#4C72B0", "fc": "#DD8452", "decoder": "#55A868", "score": "#C44E52"}


def architecture_diagram(rows, title: str = "DeconvNet") -> plt.Figure:
    """The encoder-decoder as boxes: height ~ spatial size, width ~ log channels (paper Fig. 2).

    ``rows`` is ``summary.layer_table(...)``; pools and unpools are drawn as thin markers.
    """
    fig, ax = plt.subplots(figsize=(12, 3.6))
    side_max = max(r.output_shape[1] for r in rows)
    x, labels = 0.0, []
    for r in rows:
        c, h = r.output_shape[0], r.output_shape[1]
        height = 0.15 + 0.85 * h / side_max
        if r.kind in ("pool", "unpool"):
            ax.annotate("", xy=(x + 0.25, 0.5), xytext=(x, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#777", lw=1.2))
            # in the gap between the boxes, just above the arrow: clear of the boxes, the legend and the title
            ax.text(x + 0.12, 0.54, r.name, rotation=90, ha="center", va="bottom", fontsize=7, color="#555")
            x += 0.35
            continue
        width = 0.12 + 0.1 * np.log2(max(c, 1))
        box = FancyBboxPatch((x, 0.5 - height / 2), width, height, boxstyle="round,pad=0.005",
                             fc=_GROUP_COLOURS[r.group], ec="white", alpha=0.9)
        ax.add_patch(box)
        if r.kind in ("fc", "score") or r.name.endswith("_1") or r.name == "fc6_deconv":
            labels.append(ax.text(x + width / 2, 0.5 - height / 2 - 0.03, f"{r.name}\n{c}x{h}", ha="center",
                                  va="top", fontsize=6.5))
        x += width + 0.06
    for group, colour in _GROUP_COLOURS.items():
        ax.bar(0, 0, color=colour, label=group)
    ax.legend(loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 1.12))
    ax.set_xlim(-0.1, x + 0.1)
    ax.set_ylim(-0.12, 1.08)
    ax.axis("off")
    ax.set_title(title, pad=22)
    _unstack_labels(fig, labels)
    return fig


def _unstack_labels(fig: plt.Figure, labels) -> None:
    """Move each box label that would touch the one before it (beside the narrow fc boxes) just below it."""
    renderer = fig.canvas.get_renderer()
    for before, label in zip(labels, labels[1:], strict=False):
        a, b = before.get_window_extent(renderer), label.get_window_extent(renderer)
        if a.x1 + 2 > b.x0 and a.y0 < b.y1 and b.y0 < a.y1:  # side by side, less than 2 px apart
            to_data = label.axes.transData.inverted()
            (_, top), (_, lowered) = to_data.transform([(b.x0, b.y1), (b.x0, a.y0 - 2)])
            x, y = label.get_position()
            label.set_position((x, y - (top - lowered)))  # va="top": its top now 2 px under the other's bottom


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
