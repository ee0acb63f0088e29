"""Zeiler & Fergus (2014) projection: one strong activation mapped back to pixels (chapter 2; reused in chapter 7).

A forward pass through the VGG16 encoder records every pool's switches. The chosen unit is kept, every other
activation of its layer set to zero, and the signal walks back down: rectified at each ReLU, through the
transposed filters of each convolution, and unpooled with the switches at each pool. Unpooling with switches is
the operation DeconvNet's decoder is built on (Noh et al. 2015 Sec. 3.1.1). Each step is the adjoint of its
layer (biases and the ReLU masks aside), which ``tests/test_projection.py`` checks: ``<A x, y> = <x, A^T y>``.

Works on any ``model.VGGEncoder``, or any model holding one as ``.encoder`` with a ``.normalise`` for RGB in
[0, 1] (``pretrained.ImageNetVGG16``, ``model.DeconvNet``). Layers are named as in the paper: ``conv3_3`` is the
rectified output of that convolution, ``pool4`` the pooled map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deconvnet.model.layers import Pool, unpool
from deconvnet.model.network import VGGEncoder


@dataclass(frozen=True)
class Activation:
    """One unit of a feature map: where it is in the batch and in the map, and how strongly it fired."""

    layer: str
    image: int
    channel: int
    row: int
    col: int
    value: float


@dataclass
class Projection:
    """An activation's projection to pixel space and the image patch under its receptive field."""

    activation: Activation
    pixels: torch.Tensor  # (3, H, W) the projection, zero outside the receptive field
    box: tuple[int, int, int, int]  # (top, left, bottom, right) of the receptive field, clipped to the image
    patch: torch.Tensor  # (3, bottom - top, right - left) the image pixels inside the box

    def crop(self) -> torch.Tensor:
        """The projection inside the box, the view Zeiler & Fergus show beside the patch."""
        top, left, bottom, right = self.box
        return self.pixels[:, top:bottom, left:right]


def _parts(model: nn.Module) -> tuple[VGGEncoder, Callable[[torch.Tensor], torch.Tensor]]:
    if isinstance(model, VGGEncoder):
        return model, lambda x: x
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, VGGEncoder) and hasattr(model, "normalise"):
        return encoder, model.normalise
    raise ValueError(f"expected a VGGEncoder, or a model with .encoder (a VGGEncoder) and .normalise; "
                     f"got {type(model).__name__}")


def layers(encoder: VGGEncoder) -> list[tuple[str, nn.Module]]:
    """Every module in forward order, named by its paper layer: conv5_3's BN and ReLU are ``conv5_3`` too."""
    named: list[tuple[str, nn.Module]] = []
    for block, pool_ in zip(encoder.blocks, encoder.pools, strict=True):
        for module in block:
            name = getattr(module, "paper_name", None) or named[-1][0]
            named.append((name, module))
        named.append((pool_.paper_name, pool_))
    return named


def _up_to(encoder: VGGEncoder, layer: str) -> list[nn.Module]:
    named = layers(encoder)
    names = list(dict.fromkeys(name for name, _ in named))
    if layer not in names:
        raise ValueError(f"unknown layer {layer!r}; valid layers are: {', '.join(names)}")
    last = max(i for i, (name, _) in enumerate(named) if name == layer)
    return [module for _, module in named[: last + 1]]


Step = tuple[nn.Module, torch.Size, torch.Tensor | None]  # (module, its input's shape, switches of a pool)


@torch.no_grad()
def trace(encoder: VGGEncoder, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, list[Step]]:
    """Run ``encoder`` on normalised ``x`` up to ``layer``: its maps and what the way back needs."""
    steps: list[Step] = []
    h = x
    for module in _up_to(encoder, layer):
        size, switches = h.shape, None
        if isinstance(module, Pool):
            h, switches = module(h)  # (N, C, H / 2, W / 2), switches of the same shape
        else:
            h = module(h)
        steps.append((module, size, switches))
    return h, steps


def project_step(module: nn.Module, signal: torch.Tensor, size: torch.Size,
                 switches: torch.Tensor | None = None) -> torch.Tensor:
    """One layer of the way back (Zeiler & Fergus 2014, Sec. 2.1), to the shape ``size`` of that layer's input.

    Convolution: the same filters, transposed, without bias. Pool: unpooling with the switches. ReLU: the
    signal's positive part. Batch norm: its per-channel scale (running statistics, as at test time).
    """
    if isinstance(module, Pool):
        return unpool(signal, switches, size)
    if isinstance(module, nn.ReLU):
        return signal.clamp(min=0)  # rectify the signal itself; the forward mask is not used
    if isinstance(module, nn.BatchNorm2d):
        scale = torch.rsqrt(module.running_var + module.eps)  # (C,)
        if module.weight is not None:
            scale = scale * module.weight
        return signal * scale[:, None, None]
    if isinstance(module, nn.Conv2d) and not isinstance(module.padding, str):
        # output_padding recovers the input sides that a strided convolution rounds away
        expected = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in zip(
            signal.shape[-2:], module.stride, module.padding, module.dilation, module.kernel_size, strict=True)]
        extra = tuple(want - got for want, got in zip(size[-2:], expected, strict=True))
        return F.conv_transpose2d(signal, module.weight, stride=module.stride, padding=module.padding,
                                  output_padding=extra, groups=module.groups, dilation=module.dilation)
    raise ValueError(f"no projection step for {type(module).__name__} (conv, BN, ReLU and Pool are supported)")


def strongest(model: nn.Module, images: torch.Tensor, layer: str, channels: Sequence[int],
              k: int = 9) -> list[Activation]:
    """Per channel, the ``k`` images of the batch where it fires most, each at its strongest unit.

    ``images`` are RGB in [0, 1] (normalised by the model), ``(N, 3, H, W)``. Zeiler & Fergus (2014, Fig. 2)
    show the top 9 activations of a channel across the data set this way.
    """
    encoder, normalise = _parts(model)
    maps, _ = trace(encoder, normalise(images), layer)  # (N, C, h, w)
    bad = [c for c in channels if not 0 <= c < maps.shape[1]]
    if bad:
        raise ValueError(f"channels {bad} out of range: {layer} has {maps.shape[1]} channels")
    width = maps.shape[-1]
    found = []
    for c in channels:
        values, where = maps[:, c].flatten(1).max(1)  # (N,) each image's strongest unit of channel c
        top = values.topk(min(k, len(values)))
        for value, n in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            row, col = divmod(int(where[n]), width)
            found.append(Activation(layer, n, c, row, col, value))
    return found


@torch.no_grad()
def project(model: nn.Module, images: torch.Tensor, activation: Activation) -> Projection:
    """Project one activation back to pixel space through ReLUs, transposed filters and switches.

    ``images`` is the batch ``activation`` was found in (RGB in [0, 1]). Returns the projection and the
    receptive-field patch of the image (Zeiler & Fergus 2014, Sec. 2.1 and Fig. 2; chapter 2 unpooling).
    """
    encoder, normalise = _parts(model)
    a = activation
    image = images[a.image : a.image + 1]  # (1, 3, H, W)
    maps, steps = trace(encoder, normalise(image), a.layer)  # (1, C, h, w)
    signal = torch.zeros_like(maps)
    signal[0, a.channel, a.row, a.col] = maps[0, a.channel, a.row, a.col]  # all other units of the layer off
    for module, size, switches in reversed(steps):
        signal = project_step(module, signal, size, switches)
    box = receptive_field(encoder, a.layer, a.row, a.col, image.shape[-2:])
    top, left, bottom, right = box
    return Projection(a, signal[0], box, images[a.image, :, top:bottom, left:right])


@torch.no_grad()
def project_all(model: nn.Module, images: torch.Tensor, activations: Sequence[Activation],
                switches_from: Sequence[int] | None = None, chunk: int = 8) -> list[Projection]:
    """``project`` for many activations at once: one forward pass per layer, the way back in batches.

    Same results as ``[project(model, images, a) for a in activations]`` (``tests/test_projection.py``), for
    about half the cost: ``project`` runs the forward pass again for every activation. ``switches_from[k]``
    names the image of the batch whose switches route activation ``k`` back (default: its own image); with
    another photo's switches the projection shows what the switches, not the filters, contribute. ``chunk``
    activations travel back together (memory grows with it). Chapter 2 projects a few dozen units this way.
    """
    encoder, normalise = _parts(model)
    routes = list(switches_from) if switches_from is not None else [a.image for a in activations]
    if len(routes) != len(activations):
        raise ValueError(f"switches_from has {len(routes)} entries for {len(activations)} activations")
    out: dict[int, Projection] = {}
    for layer in dict.fromkeys(a.layer for a in activations):
        mine = [(k, a) for k, a in enumerate(activations) if a.layer == layer]
        maps, steps = trace(encoder, normalise(images), layer)  # (N, C, h, w); switches for all N images
        for start in range(0, len(mine), chunk):
            part = mine[start : start + chunk]
            route = torch.tensor([routes[k] for k, _ in part])
            signal = torch.zeros(len(part), *maps.shape[1:], dtype=maps.dtype)  # (B, C, h, w)
            for b, (_, a) in enumerate(part):
                signal[b, a.channel, a.row, a.col] = maps[a.image, a.channel, a.row, a.col]
            for module, size, switches in reversed(steps):
                signal = project_step(module, signal, (len(part), *size[1:]),
                                      None if switches is None else switches[route])
            for b, (k, a) in enumerate(part):
                top, left, bottom, right = box = receptive_field(encoder, layer, a.row, a.col, images.shape[-2:])
                out[k] = Projection(a, signal[b], box, images[a.image, :, top:bottom, left:right])
    return [out[k] for k in range(len(activations))]


def edge_agreement(projection_: Projection, smooth: float = 2.0) -> float:
    """Pearson correlation, inside the receptive field, between the projection's strength and the patch's edges.

    Strength is ``|projection|`` summed over colours and blurred (Gaussian, ``smooth`` pixels) to forgive the
    checkerboard of transposed strided filters; edges are the Sobel gradient magnitude of the patch's grey
    level. Zeiler & Fergus's projections trace the structure of the patch that caused them (their Fig. 2);
    chapter 2 compares this number with switches from the right photo and from other photos.
    """
    from scipy import ndimage

    grey = projection_.patch.detach().float().mean(0).cpu().numpy()  # (h, w)
    edges = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1))
    strength = ndimage.gaussian_filter(projection_.crop().detach().abs().sum(0).cpu().numpy(), smooth)
    if edges.std() == 0 or strength.std() == 0:
        return 0.0
    return float(np.corrcoef(strength.ravel(), edges.ravel())[0, 1])


def receptive_field(encoder: VGGEncoder, layer: str, row: int, col: int,
                    size: Sequence[int] | None = None) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the input pixels unit ``(row, col)`` of ``layer`` can see.

    Grows the field layer by layer (a 3x3 convolution adds 2 steps, a 2x2 pool 1 step and doubles the step);
    conv5_3 of VGG16 sees 196 x 196 pixels. ``size`` = (H, W) clips the box to the image.
    """
    extent, jump, start = 1, 1, 0.5  # field side, input pixels per unit step, centre of unit 0
    for module in _up_to(encoder, layer):
        if isinstance(module, Pool):
            kernel, stride, pad = 2, 2, 0
        elif isinstance(module, nn.Conv2d):
            kernel, stride, pad = module.kernel_size[0], module.stride[0], module.padding[0]
        else:
            continue
        extent += (kernel - 1) * jump
        start += ((kernel - 1) / 2 - pad) * jump
        jump *= stride
    box = [round(start + i * jump - extent / 2) for i in (row, col)]
    box += [b + extent for b in box]
    if size is not None:
        h, w = size
        box = [max(box[0], 0), max(box[1], 0), min(box[2], h), min(box[3], w)]
    return tuple(box)
