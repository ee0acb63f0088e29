"""Chapters 2 and 7: Zeiler & Fergus projections and saliency maps (``projection``, ``saliency``), and how
well the maps find objects (``localisation``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

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


def projection_grid(projections, columns: int = 9, size: float = 1.1) -> plt.Figure:
    """Zeiler & Fergus (2014, Fig. 2): per channel a row of projections, and beside them the patches that caused them.

    ``projections`` are ``projection.Projection`` objects, grouped by channel in the order given; each channel
    shows at most ``columns`` of them. Every tile is the unit's receptive field (clipped at the image border).
    """
    channels = list(dict.fromkeys((p.activation.layer, p.activation.channel) for p in projections))
    k = min(columns, max(sum((p.activation.layer, p.activation.channel) == c for p in projections) for c in channels))
    fig, axes = plt.subplots(len(channels), 2 * k + 1, figsize=(size * (2 * k + 0.3), size * len(channels) + 0.4),
                             squeeze=False, gridspec_kw=dict(width_ratios=[1] * k + [0.3] + [1] * k))
    for ax in axes.flat:
        ax.axis("off")
    for r, key in enumerate(channels):
        mine = [p for p in projections if (p.activation.layer, p.activation.channel) == key][:k]
        for c, p in enumerate(mine):
            axes[r, c].imshow(signed_image(p.crop()))
            axes[r, k + 1 + c].imshow(p.patch.detach().float().cpu().permute(1, 2, 0).numpy())
        axes[r, 0].text(-0.08, 0.5, f"{key[0]}\nch. {key[1]}", transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=8)
    axes[0, 0].set_title("projections to pixels", loc="left", fontsize=9)
    axes[0, k + 1].set_title("image patches (receptive fields)", loc="left", fontsize=9)
    fig.tight_layout(w_pad=0.2, h_pad=0.3)
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
