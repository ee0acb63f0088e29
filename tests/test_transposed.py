"""Transposed convolution is the adjoint (and the input gradient) of convolution, to float precision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deconvnet.model import transposed
from deconvnet.model.network import DeconvNet


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


@pytest.mark.parametrize("stride, padding, size", [(1, 1, (9, 7)), (1, 0, (6, 6)), (2, 1, (8, 8))])
def test_adjoint_identity(stride, padding, size):
    """<A x, y> = <x, A^T y> with A = conv2d and A^T = conv_transpose2d with the same weights."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.double)  # (C_out, C_in, k, k)
    x = torch.randn(2, 3, *size, generator=g, dtype=torch.double)
    ax = F.conv2d(x, weight, stride=stride, padding=padding)
    y = torch.randn(ax.shape, generator=g, dtype=torch.double)
    aty = F.conv_transpose2d(y, weight, stride=stride, padding=padding,
                             output_padding=size[0] - ((ax.shape[-2] - 1) * stride - 2 * padding + 3))
    assert aty.shape == x.shape
    torch.testing.assert_close(inner(ax, y), inner(x, aty), rtol=1e-13, atol=0)


def test_transposed_convolution_is_the_gradient_of_convolution():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.double)
    x = torch.randn(1, 6, 10, 12, generator=g, dtype=torch.double, requires_grad=True)
    y = torch.randn(1, 4, 10, 12, generator=g, dtype=torch.double)
    (grad,) = torch.autograd.grad(inner(F.conv2d(x, weight, padding=1), y), x)
    torch.testing.assert_close(grad, F.conv_transpose2d(y, weight, padding=1), rtol=1e-13, atol=1e-13)


def test_conv_matrix_applies_the_convolution_and_its_transpose_the_deconvolution():
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.double)
    x = torch.randn(3, 5, 4, generator=g, dtype=torch.double)
    for stride, padding in ((1, 1), (2, 0)):
        a = transposed.conv_matrix(weight, (5, 4), stride, padding)
        ax = F.conv2d(x[None], weight, stride=stride, padding=padding)[0]
        assert a.shape == (ax.numel(), x.numel())
        torch.testing.assert_close(a @ x.flatten(), ax.flatten())
        y = torch.randn(ax.shape, generator=g, dtype=torch.double)
        extra = tuple(n - ((m - 1) * stride - 2 * padding + 3) for n, m in zip(x.shape[1:], ax.shape[1:], strict=True))
        back = F.conv_transpose2d(y[None], weight, stride=stride, padding=padding, output_padding=extra)[0]
        assert back.shape == x.shape, "output_padding recovers the sides a strided convolution rounds away"
        torch.testing.assert_close(a.T @ y.flatten(), back.flatten())


def test_stamp_is_conv_transpose2d():
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(4, 8, 8, dtype=torch.double)
    x[0, 2, 3], x[1, 2, 3], x[3, 7, 0], x[2, 0, 7] = 1.5, -2.0, 0.7, 3.0  # sparse, like an unpooled map
    weight = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.double)  # (C_in, C_out, k, k)
    for padding in (0, 1):
        expected = F.conv_transpose2d(x[None], weight, padding=padding)[0]
        torch.testing.assert_close(transposed.stamp(x, weight, padding), expected)
    one = torch.zeros(1, 5, 5, dtype=torch.double)
    one[0, 2, 2] = 2.0
    torch.testing.assert_close(transposed.stamp(one, weight[:1], 1)[:, 1:4, 1:4], 2 * weight[0])  # a copy


def test_stage_steps_end_at_the_stage_output():
    torch.manual_seed(0)
    net = DeconvNet(width=0.125, input_size=96, fc_kernel=3).eval()
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial BN statistics
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 2)
    _, stages = net(torch.rand(1, 3, 96, 96), return_stages=True)
    steps = transposed.stage_steps(net, stages["unpool2"], 2)
    names = [name for name, _ in steps]
    assert names == ["unpool2", "deconv2_1", "deconv2_1 + BN", "deconv2_1 + BN + ReLU", "deconv2_2",
                     "deconv2_2 + BN", "deconv2_2 + BN + ReLU"]
    torch.testing.assert_close(steps[-1][1], stages["deconv2"])
    assert (steps[3][1] >= 0).all() and (steps[2][1] < 0).any()
