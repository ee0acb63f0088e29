"""The decoder's two operations and the blocks both halves are made of (paper Sec. 3.1, Fig. 3).

* ``pool`` keeps *switches*: the flat index of each 2x2 window's maximum.
* ``unpool`` puts every value back at its switch and leaves the rest of the window zero, giving a sparse map
  of the input's size (Zeiler & Fergus 2014, paper Sec. 3.1.1).
* ``conv_block`` / ``deconv_block`` are 3x3 convolution / transposed convolution + BN + ReLU.

Used in chapters 1 (architecture), 2 (unpooling) and 3 (deconvolution).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

# Under torch.use_deterministic_algorithms, PyTorch warns that max_unpool2d may write one output twice. With
# non-overlapping 2x2 windows every switch points into its own window, so no two values collide: the result
# is deterministic and the warning would only be noise in every chapter.
warnings.filterwarnings("ignore", message="max_unpooling2d_forward_out does not have a deterministic")


def pool(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""2x2 stride-2 max pooling that also returns the switches (paper Sec. 3.1.1).

    For the window :math:`R_{ij}` of output position :math:`(i, j)`:

    .. math:: s_{ij} = \arg\max_{(p, q) \in R_{ij}} x_{pq}, \qquad y_{ij} = x_{s_{ij}}

    ``switches[n, c, i, j]`` is the flat index ``row * W + col`` of the maximum of window ``(i, j)`` in the
    ``(H, W)`` input. Odd sides drop their last row/column, as in VGG16 and Caffe with these settings.
    """
    return F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)


def unpool(x: torch.Tensor, switches: torch.Tensor, output_size: torch.Size | tuple[int, int]) -> torch.Tensor:
    r"""Place each value of ``x`` at its switch in a zero map of ``output_size`` (paper Sec. 3.1.1, Fig. 3).

    .. math:: u_{pq} = y_{ij} \text{ if } (p, q) = s_{ij}, \qquad u_{pq} = 0 \text{ elsewhere in } R_{ij}

    ``output_size`` is the spatial size of the map that was pooled. Passing it makes unpooling exact for odd
    sizes too, where ``2 * h`` would be one short.
    """
    return F.max_unpool2d(x, switches, kernel_size=2, stride=2, output_size=tuple(output_size)[-2:])


class Pool(nn.Module):
    """``pool`` as a module, so that model summaries list it. Returns ``(pooled, switches)``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pool(x)


class Unpool(nn.Module):
    """``unpool`` as a module: ``Unpool()(x, switches, output_size)``."""

    def forward(self, x: torch.Tensor, switches: torch.Tensor, output_size) -> torch.Tensor:
        return unpool(x, switches, output_size)


def conv_block(c_in: int, c_out: int, kernel: int = 3, padding: int = 1, *, bn: bool = True,
               bias: bool = True) -> nn.Sequential:
    """Convolution + BN + ReLU, the unit of the encoder and of fc6/fc7 (paper Sec. 3.1, Table 1)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def deconv_block(c_in: int, c_out: int, kernel: int = 3, padding: int = 1, *, bn: bool = True,
                 bias: bool = True) -> nn.Sequential:
    r"""Transposed convolution + BN + ReLU, the unit of the decoder (paper Sec. 3.1.2, Table 1).

    A convolution is a linear map :math:`y = Kx`; the transposed convolution applies its adjoint
    :math:`K^\top`, the one map with :math:`\langle Kx, y \rangle = \langle x, K^\top y \rangle` for all
    :math:`x, y` (chapter 3 checks this identity): each input value spreads its kernel over the output.

    ``ConvTranspose2d`` stores weights as ``(in, out, k, k)``, the layout of Caffe's deconvolution layer, so
    the release's weights would load unchanged.
    """
    layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, kernel, padding=padding, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
