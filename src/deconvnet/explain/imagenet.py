"""ImageNet VGG16's convolutions as a stand-alone network, the one Zeiler & Fergus-style projections look into.

It belongs to the explanation side: no segmentation model uses it. Chapters 1, 2 and 7.
"""

from __future__ import annotations

import torch
from torch import nn

from deconvnet.config import ModelConfig
from deconvnet.model.network import VGGEncoder
from deconvnet.model.pretrained import VGG16Weights, load_vgg16_encoder


class ImageNetVGG16(nn.Module):
    """VGG16's convolutional part with ImageNet weights and no BN: the network that Zeiler & Fergus-style
    projections look into (chapters 2 and 7). ``forward`` takes RGB in [0, 1] and returns pool5."""

    def __init__(self, weights: VGG16Weights | None = None):
        super().__init__()
        self.encoder = VGGEncoder(ModelConfig(batch_norm=False, pretrained=False))
        self.register_buffer("pixel_mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.ones(1, 3, 1, 1))
        self.source = load_vgg16_encoder(self, weights)
        self.eval()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool5, _ = self.encoder(self.normalise(x))
        return pool5  # (N, 512, H / 32, W / 32)


def imagenet_vgg16() -> ImageNetVGG16:
    """The ImageNet VGG16 encoder, ready to use (eval mode, weights loaded). Chapters 2 and 7."""
    return ImageNetVGG16()
