"""Chapter 2: pooling with switches on numbers and on a photo, switches swapped (``layers``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from deconvnet.book.plot.visualisation import signed_image


def _number_grid(ax, values: np.ndarray, title: str, marked=None, cmap: str = "Blues", fmt: str = "{:g}") -> None:
    """A small matrix drawn as coloured cells with its numbers; ``marked`` cells get a red frame."""
    v = np.asarray(values, dtype=float)
    ax.imshow(v, cmap=cmap, vmin=min(v.min(), 0), vmax=max(v.max(), 1e-12) * 1.3)
    for (i, j), value in np.ndenumerate(v):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=9,
                color="#999" if value == 0 else "black")
    if marked is not None:
        for i, j in zip(*np.nonzero(np.asarray(marked)), strict=True):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#C44E52", lw=2))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def pool_unpool_numbers(x: torch.Tensor, pooled: torch.Tensor, switches: torch.Tensor,
                        unpooled: torch.Tensor) -> plt.Figure:
    """One ``(H, W)`` map, its 2x2 max pooling with switches, and the unpooled map (paper Fig. 3, left).

    Grey lines mark the pooling windows; red frames the maxima the switches remember.
    """
    x, p, s, u = (t.detach().cpu().squeeze().numpy() for t in (x, pooled, switches, unpooled))
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), gridspec_kw=dict(width_ratios=[x.shape[1], p.shape[1],
                                                                                      p.shape[1], u.shape[1]]))
    _number_grid(axes[0], x, f"input {x.shape[0]} x {x.shape[1]}", marked=u != 0)
    _number_grid(axes[1], p, "pooled (max of each window)")
    _number_grid(axes[2], s, "switches (flat index)", cmap="Greys", fmt="{:.0f}")
    _number_grid(axes[3], u, f"unpooled {u.shape[0]} x {u.shape[1]}", marked=u != 0)
    for ax in (axes[0], axes[3]):
        for k in range(0, x.shape[0] + 1, 2):
            ax.axhline(k - 0.5, color="#777", lw=1)
        for k in range(0, x.shape[1] + 1, 2):
            ax.axvline(k - 0.5, color="#777", lw=1)
    fig.tight_layout()
    return fig


def switch_positions(switches: torch.Tensor, width: int) -> np.ndarray:
    """Which cell of its 2x2 window each maximum came from, 0..3 (top-left, top-right, bottom-left, bottom-right)."""
    s = switches.detach().cpu().numpy()
    return (s // width % 2) * 2 + (s % width % 2)


_POSITION_COLOURS = np.array([[0.30, 0.45, 0.69], [0.87, 0.52, 0.32], [0.33, 0.66, 0.41], [0.77, 0.31, 0.32]])


def unpooling_on_a_photo(image: torch.Tensor, features: torch.Tensor, pooled: torch.Tensor, switches: torch.Tensor,
                         unpooled: torch.Tensor, zoom: tuple[int, int, int], title: str = "") -> plt.Figure:
    """One channel through max pooling and unpooling, whole (top) and zoomed in (bottom).

    ``image`` ``(3, H, W)``; ``features``/``unpooled`` ``(h, w)`` (the channel before pooling and after
    unpooling), ``pooled``/``switches`` ``(h / 2, w / 2)``; ``zoom`` = (top, left, side) in ``features`` cells
    (even numbers, so that windows are whole).
    """
    top, left, side = zoom
    scale = image.shape[-1] / features.shape[-1]
    positions = switch_positions(switches, features.shape[-1])
    f, p, u = (t.detach().float().cpu().numpy() for t in (features, pooled, unpooled))
    vmax = float(f.max()) or 1.0
    fig, axes = plt.subplots(2, 5, figsize=(12, 5.4))
    crop = (slice(top, top + side), slice(left, left + side))
    half = (slice(top // 2, (top + side) // 2), slice(left // 2, (left + side) // 2))
    rows = [
        (image.permute(1, 2, 0).cpu().numpy(), f, p, _POSITION_COLOURS[positions], u),
        (image[:, int(top * scale) : int((top + side) * scale), int(left * scale) : int((left + side) * scale)]
         .permute(1, 2, 0).cpu().numpy(), f[crop], p[half], _POSITION_COLOURS[positions[half]], u[crop]),
    ]
    titles = ["photo", f"before pooling {f.shape[0]}x{f.shape[1]}", f"pooled {p.shape[0]}x{p.shape[1]}",
              "switches: where each max was", f"unpooled {u.shape[0]}x{u.shape[1]}"]
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            ax = axes[r, c]
            if panel.ndim == 3:
                ax.imshow(panel, interpolation="nearest")
            else:
                ax.imshow(panel, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    for c in range(1, 5):  # the zoom's frame on the whole maps
        k = 2 if c in (2, 3) else 1
        axes[0, c].add_patch(plt.Rectangle((left / k - 0.5, top / k - 0.5), side / k, side / k, fill=False,
                                           ec="#55A868", lw=1.2))
    axes[0, 0].add_patch(plt.Rectangle((left * scale - 0.5, top * scale - 0.5), side * scale, side * scale,
                                       fill=False, ec="#55A868", lw=1.2))
    axes[1, 0].set_ylabel("zoomed in", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c) for c in _POSITION_COLOURS]
    axes[1, 3].legend(handles, ["top left", "top right", "bottom left", "bottom right"], fontsize=7,
                      loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def switch_swap_grid(rows, names) -> plt.Figure:
    """Per row one unit: its image patch, its projection with its own switches, then with other photos' switches.

    ``rows`` are lists of ``projection.Projection`` (own switches first); ``names`` label the switches' photos.
    """
    k = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.5 * (k + 1), 1.6 * len(rows) + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (row, labels) in enumerate(zip(rows, names, strict=True)):
        axes[i, 0].imshow(row[0].patch.detach().float().cpu().permute(1, 2, 0).numpy())
        axes[i, 0].set_title(f"{row[0].activation.layer} ch. {row[0].activation.channel}", fontsize=7)
        for j, (p, label) in enumerate(zip(row, labels, strict=True), start=1):
            axes[i, j].imshow(signed_image(p.crop()))
            axes[i, j].set_title(("own: " if j == 1 else "") + label, fontsize=7,
                                 color="#C44E52" if j == 1 else "black")
    fig.tight_layout()
    return fig


def agreement_strip(own: np.ndarray, others: np.ndarray, labels) -> plt.Figure:
    """Edge agreement per unit: with its own switches (red) and with each other photo's (grey)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(own) + 1.5), 2.8))
    for i, values in enumerate(others):
        ax.scatter(np.full(len(values), i), values, color="#999", s=14,
                   label="other photos' switches" if i == 0 else None)
    ax.scatter(range(len(own)), own, color="#C44E52", s=40, marker="D", label="own switches", zorder=3)
    ax.set_xticks(range(len(own)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("edge agreement (correlation)")
    ax.axhline(0, color="#ccc", lw=0.8)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
