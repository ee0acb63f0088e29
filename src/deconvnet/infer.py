"""Inference: whole-image segmentation (the baseline of paper Sec. 3.4 and what training validates on).

Instance-wise inference and aggregation (paper Sec. 5.1, Eq. 1-2) live in ``aggregate`` (chapter 5).
Used in chapters 4, 5 and 6.
"""

from __future__ import annotations

import numpy as np
import torch


def padded_size(h: int, w: int, least: int) -> tuple[int, int]:
    """The smallest sides >= (h, w) that are multiples of 32 and at least ``least``."""
    return max(least, -(-h // 32) * 32), max(least, -(-w // 32) * 32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float in [0, 1], the models' input."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)  # a copy


@torch.no_grad()
def segment_whole(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Class scores ``(C, H, W)`` for one image ``(3, H, W)`` in [0, 1], whatever its size.

    The image is padded (bottom and right) with the model's mean pixel, which normalises to zero, up to a
    size the network accepts, and the scores are cropped back. The model must be in eval mode, so that BN
    uses its running statistics.
    """
    h, w = image.shape[-2:]
    ph, pw = padded_size(h, w, 32 * model.cfg.fc_kernel)
    device = model.pixel_mean.device
    canvas = model.pixel_mean.view(3, 1, 1).expand(3, ph, pw).clone()  # (3, ph, pw)
    canvas[:, :h, :w] = image.to(device)
    scores = model(canvas[None])  # (1, C, ph, pw)
    return scores[0, :, :h, :w].float()

