"""Stand-ins for trained networks whose outputs are known, and a scene they segment exactly.

Shared by the tests of instance-wise inference, the ensemble and the ``segment`` command.
"""

import numpy as np
import torch

from deconvnet.config import ModelConfig
from deconvnet.model.network import IMAGENET_MEAN


class ColourStub(torch.nn.Module):
    """A 'network' whose scores are known: class 1 = 4 x red - 2, class 2 = 4 x blue - 2, background 0."""

    def __init__(self, side=32):
        super().__init__()
        self.cfg = ModelConfig(num_classes=3, input_size=side, fc_kernel=1, width=0.0625, pretrained=False)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.calls = []

    def forward(self, x):  # (N, 3, H, W) in [0, 1] -> (N, 3, H, W)
        self.calls.append(len(x))
        out = torch.zeros(len(x), 3, *x.shape[-2:])
        out[:, 1] = 4 * x[:, 0] - 2
        out[:, 2] = 4 * x[:, 2] - 2
        return out


def scene():
    """64x64 black image: a red square (class 1) at rows/cols 8-23, a blue one (class 2) at 40-55."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[8:24, 8:24, 0] = 255
    image[40:56, 40:56, 2] = 255
    truth = np.zeros((64, 64), np.int64)
    truth[8:24, 8:24], truth[40:56, 40:56] = 1, 2
    boxes = np.array([[8, 8, 24, 24], [40, 40, 56, 56], [6, 6, 26, 26]], np.float32)
    return image, truth, boxes
