"""Chapters 5 and 6: instance-wise aggregation, the ensemble and the CRF (``aggregate``, ``ensemble``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deconvnet.book.plot.base import class_legend, colour_mask, rgb_array

_AGG_STYLE = {"max": ("#4C72B0", "-", "o"), "mean": ("#DD8452", "--", "s"),
              "max+whole": ("#4C72B0", ":", "^"), "mean+whole": ("#DD8452", ":", "v")}


def iou_vs_proposals(curves: dict[str, dict[int, float]], baselines: dict[str, float] | None = None,
                     coverage: dict[int, float] | None = None) -> plt.Figure:
    """Mean IoU against the number of proposals N, one line per aggregation; baselines as horizontal lines.

    ``curves`` maps a method ("max", "mean", "max+whole", ...) to ``{N: mean IoU}``; ``coverage`` (``{N:
    share of pixels covered}``) goes in a second panel (chapter 5).
    """
    panels = 2 if coverage else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    for name, points in curves.items():
        colour, style, marker = _AGG_STYLE.get(name, (None, "-", "o"))
        ns = sorted(points)
        ax.plot(ns, [points[n] for n in ns], style, color=colour, marker=marker, ms=4, label=name)
    for (name, value), colour in zip((baselines or {}).items(), ("#55A868", "#C44E52", "#8172B2"), strict=False):
        ax.axhline(value, color=colour, lw=1.2, ls="-.", label=name)
    ax.set_xscale("log")
    ns = sorted({n for p in curves.values() for n in p})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set(xlabel="proposals per image (N)", ylabel="mean IoU", title="mean IoU against N")
    top = max([v for p in curves.values() for v in p.values()] + list((baselines or {}).values()) + [0.05])
    ax.set_ylim(0, top * 1.15)  # from zero: differences are read against the whole scale
    ax.legend(frameon=False, fontsize=8)
    if coverage:
        cx = axes[0, 1]
        ns = sorted(coverage)
        cx.plot(ns, [coverage[n] for n in ns], "-o", color="#555", ms=4)
        cx.set_xscale("log")
        cx.set_xticks(ns, [str(n) for n in ns])
        cx.set_ylim(0, 1.02)
        cx.set(xlabel="proposals per image (N)", ylabel="share of pixels", title="pixels covered by a window")
    fig.tight_layout()
    return fig


def filling_in(image, truth, snapshots: dict[int, dict], windows: np.ndarray, how: str = "max",
               size: float = 2.0, classes=None) -> plt.Figure:
    """How the aggregated map fills in as proposals are added (the paper's Fig. 6, chapter 5).

    Top row: the image with the first N windows; bottom row: the label map after N windows (uncovered pixels
    greyed). Last column: the ground truth. ``snapshots`` is ``InstanceSegmentation.snapshots``.
    With ``classes`` (the dataset's names), a legend below names the colours of the classes shown.
    """
    ns = sorted(snapshots)
    fig, axes = plt.subplots(2, len(ns) + 1, figsize=((len(ns) + 1) * size, 2 * size + 0.4), squeeze=False)
    rgb = rgb_array(image)
    for col, n in enumerate(ns):
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(rgb)
        for x0, y0, x1, y1 in windows[:n]:
            top.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="#FFD700",
                                        lw=0.6, alpha=0.8))
        top.set_xlim(-0.5, rgb.shape[1] - 0.5)
        top.set_ylim(rgb.shape[0] - 0.5, -0.5)
        shown = colour_mask(snapshots[n][how]).copy()
        uncovered = ~np.asarray(snapshots[n]["covered"])
        shown[uncovered] = (shown[uncovered] * 0.3 + 110).astype(np.uint8)  # grey: no window here
        bottom.imshow(shown, interpolation="nearest")
        share = 1 - uncovered.mean()
        top.set_title(f"N = {n}", fontsize=9)
        bottom.set_title(f"{how}, {share:.0%} covered", fontsize=8)
    axes[0, -1].imshow(rgb)
    axes[0, -1].set_title("image", fontsize=9)
    axes[1, -1].imshow(colour_mask(truth), interpolation="nearest")
    axes[1, -1].set_title("ground truth", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    maps = [truth, *(snapshots[n][how] for n in ns)]
    share = class_legend(fig, maps, classes) if classes is not None else 0.0
    fig.tight_layout(rect=(0, share, 1, 1))
    return fig


def size_bars(table: dict[str, dict[str, float | None]], counts: dict[str, int] | None = None) -> plt.Figure:
    """Mean instance IoU per object-size bin (small, medium, large), one bar per method (chapters 5, 6)."""
    methods = list(table)
    bins = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / len(methods)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, method in enumerate(methods):
        values = [table[method][b] if table[method][b] is not None else np.nan for b in bins]
        ax.bar(np.arange(len(bins)) + (k - (len(methods) - 1) / 2) * width, values, width, label=method,
               color=palette[k % len(palette)])
    names = [f"{b}\n({counts[b]} objects)" if counts else b for b in bins]
    ax.set_xticks(range(len(bins)), names)
    ax.set_ylabel("mean IoU per object")
    ax.legend(frameon=False, fontsize=8, ncol=min(len(methods), 3))
    ax.set_ylim(0, max(0.05, np.nanmax([[v if v is not None else np.nan for v in t.values()]
                                        for t in table.values()]) * 1.25))
    fig.tight_layout()
    return fig
