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
