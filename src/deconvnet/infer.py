"""Inference: whole-image segmentation (the baseline of paper Sec. 3.4 and what training validates on).

Instance-wise inference and aggregation (paper Sec. 5.1, Eq. 1-2) live in ``aggregate`` (chapter 5).
Used in chapters 4, 5 and 6.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def quiet_even_same_padding() -> Iterator[None]:
    """Silence PyTorch's one note that a "same"-padded convolution with an even kernel pads a copy of its input.

    FCN-8s's fc6 is such a convolution under the presets with ``fc_kernel=2``: the copy costs a little time
    and changes no number, so the note only cluttered the pages. Around the whole-image pass
    (``segment_whole``, chapters 4-6) and the layer table's forward pass (``summary.layer_rows``, chapter 1).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths", category=UserWarning)
        yield


def padded_size(h: int, w: int, least: int) -> tuple[int, int]:
    """The smallest sides >= (h, w) that are multiples of 32 and at least ``least``."""
    return max(least, -(-h // 32) * 32), max(least, -(-w // 32) * 32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float in [0, 1], the models' input."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)  # a copy


def pad_image(model: torch.nn.Module, image: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """``(3, H, W)`` -> ``(3, ph, pw)`` padded bottom-right with the model's mean pixel, which normalises to zero.

    ``size`` defaults to the smallest the network accepts (``padded_size``); crop outputs back with
    ``[..., :H, :W]``. The one padding of every whole-image pass: ``segment_whole``, ``probe.stage_maps`` and
    ``localisation`` (chapters 3-7).
    """
    h, w = image.shape[-2:]
    ph, pw = size or padded_size(h, w, 32 * model.cfg.fc_kernel)
    if ph < h or pw < w:
        raise ValueError(f"cannot pad a {h}x{w} image to {ph}x{pw}")
    canvas = model.pixel_mean.view(3, 1, 1).expand(3, ph, pw).clone()  # the mean pixel normalises to zero
    canvas[:, :h, :w] = image.to(canvas.device)
    return canvas


@torch.no_grad()
def segment_whole(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Class scores ``(C, H, W)`` for one image ``(3, H, W)`` in [0, 1], whatever its size.

    The image is padded (bottom and right) with the model's mean pixel, which normalises to zero, up to a
    size the network accepts, and the scores are cropped back. The model must be in eval mode, so that BN
    uses its running statistics.
    """
    h, w = image.shape[-2:]
    with quiet_even_same_padding():
        scores = model(pad_image(model, image)[None])  # (1, C, ph, pw)
    return scores[0, :, :h, :w].float()

