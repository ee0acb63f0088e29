"""CPU fast paths for fc6 and fc6-deconv: the same sums as one matrix product (``make bench``, Cost appendix).

fc6 is a 7x7 convolution whose kernel covers the whole 7x7 pool5 map, and fc6-deconv a 7x7 transposed
convolution of a 1x1 map: fully connected layers written as convolutions (paper Sec. 3.1). On the CPU,
PyTorch hands them to oneDNN, which copies the 411 MB weight into its blocked layout on every call and then
runs at 1-2 GFLOP/s; as a matrix product over the same weight, read in place, DeconvNet's fc6 and fc6-deconv
are 5-6x faster forward and 4x faster forward + backward (``benchmarks/throughput.py`` measures it). The
result is the same sum in another order: equal to float rounding (about 1e-6 relative), not bit for bit.

``use_matmul_fc(model)`` switches every qualifying layer of a model to the fast path, on the CPU only (on a
GPU cuDNN is not slow here, and GPU results stay exactly as they were). It changes no parameter, buffer or
state-dict key. The training code does not use it: ``layers.py`` is part of the hash that names cached
models (``checkpoint.TRAINING_CODE``), so moving this there is a decision for a time when models are
retrained anyway.
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
    """``conv_transpose2d(x, weight, bias)`` of a 1x1 map ``(N, C_in, 1, 1)``: ``(N, C_out, k, k)``.

    Each input vector paints one copy of the ``(C_in, C_out, k, k)`` filter bank, i.e. one row of a matrix
    product. A channels-last weight gives a channels-last output, as the convolution would.
    """
    n, (c_in, c_out, kh, kw) = x.shape[0], weight.shape
    flat_x = x.reshape(n, c_in)
    if _channels_last(weight):  # stored (C_in, kh, kw, C_out)
        flat_w = weight.permute(0, 2, 3, 1).reshape(c_in, -1)
        b = None if bias is None else bias.repeat(kh * kw)  # C_out varies fastest
        return F.linear(flat_x, flat_w.t(), b).view(n, kh, kw, c_out).permute(0, 3, 1, 2)
    b = None if bias is None else bias.repeat_interleave(kh * kw)  # each channel's bias over its k x k block
    return F.linear(flat_x, weight.reshape(c_in, -1).t(), b).view(n, c_out, kh, kw)


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


class MatmulConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes a kernel covering its whole input on the CPU as one matrix product."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = _padding(self)
        covers = x.shape[-2] <= self.kernel_size[0] and x.shape[-1] <= self.kernel_size[1]
        if x.device.type == "cpu" and _plain(self) and pad is not None and covers:
            return patch_conv(x, self.weight, self.bias, pad)
        return super().forward(x)


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that computes a 1x1 input on the CPU as one matrix product."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        plain = _plain(self) and self.padding == (0, 0) and self.output_padding == (0, 0)
        if x.device.type == "cpu" and output_size is None and plain and x.shape[-2:] == (1, 1):
            return spread(x, self.weight, self.bias)
        return super().forward(x, output_size)


def use_matmul_fc(model: nn.Module) -> nn.Module:
    """Give every convolution with a kernel larger than 1x1 the fast path, in place; returns ``model``.

    Only the class changes (parameters, hooks and state-dict keys stay), and each layer falls back to the
    convolution whenever its input is not the whole-map case, so any input size still works.
    """
    for m in model.modules():
        wide = m.kernel_size != (1, 1) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) else False
        if type(m) is nn.Conv2d and wide:
            m.__class__ = MatmulConv2d  # a subclass with no state of its own: swapping the class is safe
        elif type(m) is nn.ConvTranspose2d and wide:
            m.__class__ = MatmulConvTranspose2d
    return model
