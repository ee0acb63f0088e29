"""Decoder variants for the exercises: DeconvNet's unpooling with the switches taken away.

``upsample(x, switches, size, how)`` enlarges a pooled map ``(N, C, h, w)`` back to ``size``, the size of
the map before pooling, in one of four ways:

* ``"switches"`` - the paper's unpooling: each value at its window's maximum (``layers.unpool``);
* ``"fixed"``    - unpooling without switches: each value at the top-left cell of its window, whatever
  the input was (as sparse as unpooling, but it carries nothing of the example);
* ``"nearest"``  - each value copied to all four cells of its window (dense, blocky);
* ``"bilinear"`` - bilinear interpolation, FCN's upsampling (dense, smooth).

Every way returns exactly ``size``: an odd side keeps the zero row or column that no pooling window saw.
``Upsample(how)`` is the same as a module with ``Unpool``'s call signature, so ``without_switches(net, how)``
can swap it into a DeconvNet, trained or not: it has no parameters, and the state dict stays the same.

Used by the exercises of chapters 2 (unpooling) and 3 (deconvolution).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from deconvnet.model.layers import unpool

HOWS = ("switches", "fixed", "nearest", "bilinear")


def fixed_switches(pooled_shape: torch.Size | tuple[int, ...], size: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Switches that always point at the top-left cell of each 2x2 window, ``pooled_shape`` int64.

    ``size`` is the map before pooling; the flat index of window ``(i, j)`` is ``2i * W + 2j``.
    """
    *lead, h, w = pooled_shape
    width = tuple(size)[-1]
    rows = torch.arange(h).mul(2 * width)[:, None]  # (h, 1)
    cols = torch.arange(w).mul(2)[None, :]  # (1, w)
    return (rows + cols).expand(*lead, h, w).contiguous()


def upsample(x: torch.Tensor, switches: torch.Tensor | None, size: torch.Size | tuple[int, ...],
             how: str = "switches") -> torch.Tensor:
    """``x`` ``(N, C, h, w)`` enlarged to the spatial ``size`` of the map that was pooled, by ``how``.

    ``switches`` (from ``layers.pool``) are used by ``"switches"`` only and may be None for the others.
    """
    if how not in HOWS:
        raise ValueError(f"unknown upsampling {how!r}; valid ones are: {', '.join(HOWS)}")
    out_h, out_w = tuple(size)[-2:]
    if how == "switches":
        if switches is None:
            raise ValueError("upsampling 'switches' needs the switches of the matching pool")
        return unpool(x, switches, (out_h, out_w))
    if how == "fixed":
        return unpool(x, fixed_switches(x.shape, (out_h, out_w)).to(x.device), (out_h, out_w))
    h, w = x.shape[-2:]
    options = {"align_corners": False} if how == "bilinear" else {}
    up = F.interpolate(x, size=(2 * h, 2 * w), mode=how, **options)  # (N, C, 2h, 2w)
    return F.pad(up, (0, out_w - 2 * w, 0, out_h - 2 * h))  # the row / column no window saw stays zero


class Upsample(nn.Module):
    """``upsample`` as a drop-in for ``layers.Unpool``: ``Upsample(how)(x, switches, output_size)``."""

    def __init__(self, how: str = "bilinear"):
        super().__init__()
        if how not in HOWS:
            raise ValueError(f"unknown upsampling {how!r}; valid ones are: {', '.join(HOWS)}")
        self.how = how

    def forward(self, x: torch.Tensor, switches: torch.Tensor, output_size) -> torch.Tensor:
        return upsample(x, switches, output_size, self.how)

    def extra_repr(self) -> str:
        return repr(self.how)


def without_switches(model: nn.Module, how: str = "bilinear") -> nn.Module:
    """A copy of a ``DeconvNet`` whose decoder upsamples by ``how`` instead of unpooling with switches.

    The weights are shared by value (a deep copy), so a trained network can be evaluated with its switches
    taken away; an untrained one can be trained that way. ``model`` itself is left unchanged.
    """
    if not isinstance(getattr(model, "unpool", None), nn.Module):
        raise TypeError(f"{type(model).__name__} has no unpooling layer to replace; pass a DeconvNet")
    variant = copy.deepcopy(model)
    variant.unpool = Upsample(how)
    return variant
