"""Transposed convolution, the decoder's "deconvolution", as the adjoint of convolution (paper Sec. 3.1.2, Fig. 3).

A convolution is a linear map ``A``: each output is a weighted sum of the inputs under the filter. The
deconvolution layer of Noh et al. applies ``A^T``: each input value is spread over the outputs under the
filter, so one activation of a sparse unpooled map paints a whole copy of the filter (their Fig. 3, right).
PyTorch calls it ``conv_transpose2d``; it is also the gradient of a convolution with respect to its input,
which is why backpropagation and Zeiler & Fergus's projections use it.

* ``conv_matrix`` writes ``A`` out as a dense matrix, for maps small enough to look at;
* ``stamp`` computes ``A^T y`` the slow, literal way: one scaled copy of the filter per non-zero input;
* ``stage_steps`` runs one decoder stage of a ``DeconvNet`` layer by layer, to show the densification.

``tests/test_transposed.py`` checks ``<A x, y> = <x, A^T y>`` and the other identities to float precision.
Used in chapter 3 (deconvolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deconvnet.model.network import DECODER_STAGES


def conv_matrix(weight: torch.Tensor, size: tuple[int, int], stride: int = 1, padding: int = 0) -> torch.Tensor:
    """The matrix ``A`` of ``conv2d(., weight, stride, padding)`` on ``(C_in, *size)`` inputs (no bias).

    ``weight`` is ``(C_out, C_in, k, k)``; ``A`` is ``(C_out * H' * W', C_in * H * W)`` with inputs and
    outputs flattened in ``(channel, row, column)`` order, so ``A @ x.flatten() == conv2d(x).flatten()``.
    Built column by column from the convolution of each basis image.
    """
    c_in = weight.shape[1]
    n = c_in * size[0] * size[1]
    basis = torch.eye(n, dtype=weight.dtype).reshape(n, c_in, *size)  # (n, C_in, H, W): one unit each
    columns = F.conv2d(basis, weight, stride=stride, padding=padding)  # (n, C_out, H', W')
    return columns.reshape(n, -1).T  # (C_out * H' * W', n)


def stamp(x: torch.Tensor, weight: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """``conv_transpose2d(x, weight, padding=padding)`` for stride 1, written out: every non-zero input value
    adds a copy of its filter, scaled by the value, centred where it sits (paper Fig. 3, deconvolution).

    ``x`` is ``(C_in, h, w)``, ``weight`` ``(C_in, C_out, k, k)`` (the ``ConvTranspose2d`` layout); returns
    ``(C_out, h + k - 1 - 2 * padding, w + k - 1 - 2 * padding)``. Loops over non-zeros: for sparse maps.
    """
    c_in, h, w = x.shape
    k = weight.shape[-1]
    full = torch.zeros(weight.shape[1], h + k - 1, w + k - 1, dtype=torch.result_type(x, weight))
    for c, i, j in x.nonzero().tolist():
        full[:, i : i + k, j : j + k] += x[c, i, j] * weight[c]  # (C_out, k, k), one filter per input channel
    return full[:, padding : full.shape[1] - padding, padding : full.shape[2] - padding]


@torch.no_grad()
def stage_steps(model: nn.Module, unpooled: torch.Tensor, stage: int) -> list[tuple[str, torch.Tensor]]:
    """Decoder stage ``stage`` (5..1) of a ``DeconvNet`` applied to its unpooled map, one layer at a time.

    ``unpooled`` is ``(N, C, H, W)``, e.g. ``stages[f"unpool{stage}"]`` from ``model(x, return_stages=True)``.
    Returns ``[(name, map)]``: the input, then after each transposed convolution, batch norm and ReLU of the
    stage (``deconv5_1``, ``deconv5_1 + BN``, ``deconv5_1 + BN + ReLU``, ...). The last map is the stage's
    output, ``stages[f"deconv{stage}"]``. The model must be in eval mode.
    """
    index = [s for s, _ in DECODER_STAGES].index(stage)  # DECODER_STAGES runs 5, 4, ..., 1
    steps = [(f"unpool{stage}", unpooled)]
    h = unpooled
    for block in model.decoder[index]:
        name = block[0].paper_name
        for module in block:
            h = module(h.clone())  # the ReLU is in place; keep every step's map intact
            label = {nn.BatchNorm2d: " + BN", nn.ReLU: " + BN + ReLU"}.get(type(module), "")
            steps.append((name + label, h))
    return steps
