"""fc6 / fc6-deconv as matrix products: the convolution's values and gradients, in either memory format."""

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from deconvnet.config import get_preset
from deconvnet.fastpath import MatmulConv2d, MatmulConvTranspose2d, patch_conv, spread, use_matmul_fc
from deconvnet.model import build_model


def _inputs(shape, weight_shape, channels_last):
    """An input, a weight and a bias of 6 channels, the first two in the memory format asked for."""
    torch.manual_seed(0)
    x, w = torch.randn(*shape), torch.randn(*weight_shape)
    if channels_last:
        x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_(), w.requires_grad_(), torch.randn(6, requires_grad=True)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("side, kernel, padding", [(4, 4, 0), (5, 5, 2), (3, 5, 1)])  # DeconvNet's, FCN's fc6
def test_patch_conv_is_the_convolution(channels_last, side, kernel, padding):
    x, w, b = _inputs((3, 5, side, side), (6, 5, kernel, kernel), channels_last)
    ours, ref = patch_conv(x, w, b, padding), F.conv2d(x, w, b, padding=padding)
    torch.testing.assert_close(ours, ref)
    assert ours.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    grad = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, (x, w, b), grad), torch.autograd.grad(ref, (x, w, b), grad), strict=True):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("channels_last", [False, True])
def test_spread_is_the_transposed_convolution(channels_last):
    x, w, b = _inputs((3, 5, 1, 1), (5, 6, 4, 4), channels_last)  # ConvTranspose2d weight: (in, out, k, k)
    ours, ref = spread(x, w, b), F.conv_transpose2d(x, w, b)
    torch.testing.assert_close(ours, ref)
    if channels_last:  # the layer after it gets the format the model was converted to
        assert ours.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, (x, w, b), grad), torch.autograd.grad(ref, (x, w, b), grad), strict=True):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("kind", ["deconvnet", "fcn8s"])
def test_use_matmul_fc_keeps_the_model(kind):
    cfg = replace(get_preset("quick").model, pretrained=False)  # fc6: 3x3 kernel on the 3x3 pool5 map
    torch.manual_seed(0)
    model = build_model(cfg, kind).eval()
    fast = use_matmul_fc(copy.deepcopy(model))
    assert isinstance(fast.fc6[0], MatmulConv2d)
    assert kind == "fcn8s" or isinstance(fast.fc6_deconv[0], MatmulConvTranspose2d)
    assert fast.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        for side in (cfg.input_size, cfg.input_size + 32):  # the whole-map case, and the fallback
            x = torch.rand(2, 3, side, side)
            torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-6 * model(x).abs().max().item())
