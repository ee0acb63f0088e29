"""The CPU fast path every model takes: channels-last maps, and fc6 / fc6-deconv as one matrix product.

Two things kept DeconvNet's forward pass at under half of what this machine's matrix multiply reaches
(``make bench``, Cost appendix), and both are fixed here, for every model the package builds:

* **channels-last.** oneDNN computes convolutions in a channels-last layout; given NCHW tensors it reorders
  every activation on the way in and out, and max pooling with switches runs about 15x slower in NCHW.
  ``use_fast_path`` stores the weights channels-last and the model's ``normalise`` hands the first layer a
  channels-last batch, so no layer copies.
* **fc6 and fc6-deconv as matrix products.** fc6 is a 7x7 convolution whose kernel covers the whole 7x7
  pool5 map, and fc6-deconv a 7x7 transposed convolution of a 1x1 map: fully connected layers written as
  convolutions (paper Sec. 3.1). oneDNN copies their 411 MB weight into its blocked layout on every call
  and then runs at 1-2 GFLOP/s; as a matrix product over the same weight, read in place, they are 5-6x
  faster forward and 4x faster forward + backward.

Both compute the same sums in another order: equal to float rounding (about 1e-6 relative), not bit for
bit, so this module is part of the training code's hash (``checkpoint.TRAINING_CODE``). On a GPU the layers
take cuDNN's convolutions as before. ``use_reference_path`` undoes both (NCHW, plain convolutions): the
benchmark's "before", and the independent implementation the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _channels_last(weight: torch.Tensor) -> bool:
    """True when a 4-D weight is stored channels-last (and not also plain contiguous, as 1x1 kernels are)."""
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def patch_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=padding)`` (stride 1) as one product of its k x k patches (im2col).

    Worth it when the weight dwarfs the input, as in fc6: its 7x7 kernel covers the whole 7x7 pool5 map, so
    there are 1 (DeconvNet) or 49 (FCN-8s, "same" padding) patches per image against 103 M weights. The
    patches are laid out in the weight's own storage order (channels-last: row, column, channel), so the
    weight is read in place; the output keeps the weight's memory format, as the convolution's would.
    """
    n, c_out, (kh, kw) = x.shape[0], weight.shape[0], weight.shape[-2:]
    x = F.pad(x, (padding,) * 4) if padding else x
    patches = x.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C, H', W', kh, kw), a view
    h, w = patches.shape[2:4]
    if _channels_last(weight):  # stored (C_out, kh, kw, C)
        rows, flat_w = patches.permute(0, 2, 3, 4, 5, 1), weight.permute(0, 2, 3, 1).reshape(c_out, -1)
    else:
        rows, flat_w = patches.permute(0, 2, 3, 1, 4, 5), weight.reshape(c_out, -1)
    out = F.linear(rows.reshape(n * h * w, -1), flat_w, bias).view(n, h, w, c_out).permute(0, 3, 1, 2)
    return out if _channels_last(weight) else out.contiguous()  # (N, C_out, H', W')


def spread(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv_transpose2d(x, weight, bias)`` (stride 1, no padding) as one matrix product: ``(N, C_out, H+k-1, W+k-1)``.

    Each input vector paints one copy of the ``(C_in, C_out, k, k)`` filter bank, i.e. one row of a matrix
    product; a 1x1 map (fc6-deconv on a crop) is then the whole answer, a larger one (a whole image) adds the
    overlapping copies up (``F.fold``, col2im). A channels-last weight gives a channels-last output, as the
    convolution would.
    """
    n, (c_in, c_out, kh, kw), (h, w) = x.shape[0], weight.shape, x.shape[-2:]
    last = _channels_last(weight)
    if h == w == 1:
        flat_x = x.reshape(n, c_in)
        if last:  # stored (C_in, kh, kw, C_out)
            b = None if bias is None else bias.repeat(kh * kw)  # C_out varies fastest
            flat_w = weight.permute(0, 2, 3, 1).reshape(c_in, -1)
            return F.linear(flat_x, flat_w.t(), b).view(n, kh, kw, c_out).permute(0, 3, 1, 2)
        b = None if bias is None else bias.repeat_interleave(kh * kw)  # each channel's bias over its k x k block
        return F.linear(flat_x, weight.reshape(c_in, -1).t(), b).view(n, c_out, kh, kw)
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c_in)
    if last:
        cols = (rows @ weight.permute(0, 2, 3, 1).reshape(c_in, -1)).view(n, h * w, kh, kw, c_out)
        cols = cols.permute(0, 4, 2, 3, 1)  # (N, C_out, kh, kw, H*W), the order fold reads
    else:
        cols = (rows @ weight.reshape(c_in, -1)).view(n, h * w, c_out, kh, kw).permute(0, 2, 3, 4, 1)
    out = F.fold(cols.reshape(n, c_out * kh * kw, h * w), (h + kh - 1, w + kw - 1), (kh, kw))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out.contiguous(memory_format=torch.channels_last) if last else out  # (N, C_out, H+k-1, W+k-1)


def _padding(m: nn.Conv2d) -> int | None:
    """The layer's padding as one number for all four sides, or None where it is not symmetric."""
    if m.padding == "valid":
        return 0
    if m.padding == "same":
        return m.kernel_size[0] // 2 if m.kernel_size[0] == m.kernel_size[1] and m.kernel_size[0] % 2 else None
    return m.padding[0] if m.padding[0] == m.padding[1] else None


def _plain(m: nn.Module) -> bool:
    """Stride 1, no dilation, no groups: the layers whose convolution is exactly a product."""
    return m.stride == (1, 1) and m.dilation == (1, 1) and m.groups == 1


def _patches_fit(x: torch.Tensor, weight: torch.Tensor, padding: int) -> bool:
    """True when the im2col patches of ``x`` take no more memory than the weight itself.

    That is the case where the weight dominates and reading it once, in place, is what matters: fc6 on a
    crop (one patch per image), and fc6 sliding over the 7x7 pool5 map of a whole 224 px val image. For a 3x3
    convolution over a large map the patches would be 9x the input, and oneDNN's convolution is the better way.
    """
    kh, kw = weight.shape[-2:]
    h, w = x.shape[-2] + 2 * padding - kh + 1, x.shape[-1] + 2 * padding - kw + 1  # the output's size
    return h > 0 and w > 0 and x.shape[0] * h * w * x.shape[1] * kh * kw <= weight.numel()


class MatmulConv2d(nn.Conv2d):
    """``nn.Conv2d`` that, on the CPU, computes a layer whose weight outweighs its patches as one matrix product."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = _padding(self)
        if x.device.type == "cpu" and _plain(self) and pad is not None and _patches_fit(x, self.weight, pad):
            return patch_conv(x, self.weight, self.bias, pad)
        return super().forward(x)


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that, on the CPU, computes a layer whose weight outweighs its input as a product."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        plain = _plain(self) and self.padding == (0, 0) and self.output_padding == (0, 0)
        fits = x.shape[0] * x.shape[-2] * x.shape[-1] <= self.in_channels  # its products take no more than the weight
        if x.device.type == "cpu" and output_size is None and plain and fits:
            return spread(x, self.weight, self.bias)
        return super().forward(x, output_size)


def use_matmul_fc(model: nn.Module) -> nn.Module:
    """Give every convolution with a kernel larger than 1x1 the matrix-product path, in place; returns ``model``.

    Only the class changes (parameters, hooks and state-dict keys stay), and each layer falls back to the
    convolution whenever the matrix product would not pay, so any input size still works.
    """
    for m in model.modules():
        wide = m.kernel_size != (1, 1) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) else False
        if type(m) is nn.Conv2d and wide:
            m.__class__ = MatmulConv2d  # a subclass with no state of its own: swapping the class is safe
        elif type(m) is nn.ConvTranspose2d and wide:
            m.__class__ = MatmulConvTranspose2d
    return model


def use_channels_last(model: nn.Module, on: bool = True) -> nn.Module:
    """Store the weights channels-last (or NCHW) and tell the model's ``normalise`` to convert its input."""
    model.to(memory_format=torch.channels_last if on else torch.contiguous_format)
    for m in model.modules():
        if hasattr(m, "channels_last"):
            m.channels_last = on
    return model


def use_fast_path(model: nn.Module) -> nn.Module:
    """What every model of the package is built with: channels-last, and fc6 / fc6-deconv as matrix products.

    Called at the end of each model's constructor (``model.py``, ``shape_pretraining.py``); only the fc
    layers (``fc6``, ``fc6_deconv``) change class, so the rest of the model prints as plain PyTorch layers.
    """
    for name in ("fc6", "fc6_deconv"):
        if hasattr(model, name):
            use_matmul_fc(getattr(model, name))
    return use_channels_last(model)


def use_reference_path(model: nn.Module) -> nn.Module:
    """Undo ``use_fast_path``: NCHW weights and input, every layer PyTorch's own convolution, in place.

    The network as it was before the fast path: the benchmark's baseline and the tests' reference.
    """
    for m in model.modules():
        if type(m) is MatmulConv2d:
            m.__class__ = nn.Conv2d
        elif type(m) is MatmulConvTranspose2d:
            m.__class__ = nn.ConvTranspose2d
    return use_channels_last(model, on=False)
