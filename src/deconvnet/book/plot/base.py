"""Shared pieces of the figures: saving, the VOC colour map on label maps, overlays."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def save_figure(fig: plt.Figure, path, dpi: int = 120) -> None:
    """Save ``fig`` atomically (a temporary name, then ``os.replace``): readers never see half a file."""
    from pathlib import Path

    from deconvnet.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")


def colour_mask(mask) -> np.ndarray:
    """A class or instance map ``(H, W)`` in VOC's colours ``(H, W, 3)`` uint8 (void is cream)."""
    from deconvnet.data.voc import voc_colormap

    return voc_colormap()[np.asarray(mask, dtype=np.int64).clip(0, 255)]


def rgb_array(image) -> np.ndarray:
    """``(3, H, W)`` tensor (uint8 or float in [0, 1]) or ``(H, W, 3)`` array -> ``(H, W, 3)`` for imshow."""
    a = image.detach().cpu().permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return a if a.dtype == np.uint8 else a.clip(0, 1)


def label_overlay(image, labels, alpha: float = 0.6) -> np.ndarray:
    """``(H, W, 3)`` uint8: the image with every non-background pixel tinted in its class's VOC colour.

    What ``python -m deconvnet segment`` writes beside the palette PNG (chapter 6).
    """
    rgb = rgb_array(image)
    rgb = rgb.astype(np.float32) if rgb.dtype == np.uint8 else rgb.astype(np.float32) * 255
    labels = np.asarray(labels)
    tint = colour_mask(labels).astype(np.float32)
    mix = np.where((labels > 0)[..., None], (1 - alpha) * rgb + alpha * tint, rgb)
    return mix.round().clip(0, 255).astype(np.uint8)


def class_legend(fig: plt.Figure, maps, classes, columns: int = 8, fontsize: float = 7) -> float:
    """A legend along the bottom of ``fig``: a VOC colour patch and the name of each class in the label
    ``maps`` (void and indices beyond ``classes`` left out). Returns the share of the figure's height it
    takes, for ``fig.tight_layout(rect=(0, share, 1, 1))``.

    Used by the label-map figures: ``training.prediction_grid`` (chapters 4 and 6), ``inference.filling_in``
    (chapter 5).
    """
    from matplotlib.patches import Patch

    present = sorted({int(c) for m in maps for c in np.unique(np.asarray(m))} & set(range(len(classes))))
    if not present:
        return 0.0
    handles = [Patch(fc=colour / 255, ec="#999", lw=0.5, label=classes[c])
               for c, colour in zip(present, colour_mask(np.array(present)), strict=True)]
    rows = -(-len(handles) // columns)
    share = min(0.5, (0.1 + 0.2 * rows * fontsize / 7) / fig.get_figheight())
    fig.legend(handles=handles, loc="lower center", ncol=min(columns, len(handles)), fontsize=fontsize,
               frameon=False, handlelength=1.2, columnspacing=1.2, bbox_to_anchor=(0.5, 0))
    return share
