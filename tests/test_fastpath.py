"""The CPU fast path (channels-last, fc6 / fc6-deconv as matrix products) against PyTorch's own layers."""

import copy

import pytest
import torch
import torch.nn.functional as F

from deconvnet.config import ModelConfig
from deconvnet.model.fastpath import (
    MatmulConv2d,
    MatmulConvTranspose2d,
    _patches_fit,
    patch_conv,
    spread,
    use_reference_path,
)
from deconvnet.model.network import build_model
from deconvnet.train.stage0 import ShapeClassifier


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
@pytest.mark.parametrize("side", [(1, 1), (3, 4)])  # fc6-deconv of a crop, and of a whole image's fc7 map
def test_spread_is_the_transposed_convolution(channels_last, side):
    x, w, b = _inputs((3, 5, *side), (5, 6, 4, 4), channels_last)  # ConvTranspose2d weight: (in, out, k, k)
    ours, ref = spread(x, w, b), F.conv_transpose2d(x, w, b)
    torch.testing.assert_close(ours, ref)
    if channels_last:  # the layer after it gets the format the model was converted to
        assert ours.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, (x, w, b), grad), torch.autograd.grad(ref, (x, w, b), grad), strict=True):
        torch.testing.assert_close(a, r)


def test_patches_only_where_the_weight_dominates():
    fc6, conv1_1 = torch.empty(4096, 512, 7, 7), torch.empty(64, 3, 3, 3)
    assert _patches_fit(torch.empty(8, 512, 7, 7), fc6, 0)  # DeconvNet's fc6 on crops: one patch per image
    assert _patches_fit(torch.empty(1, 512, 15, 15), fc6, 0)  # sliding over a 500 px image's pool5
    assert not _patches_fit(torch.empty(1, 3, 224, 224), conv1_1, 1)  # im2col would be 9x the input
    assert not _patches_fit(torch.empty(1, 512, 5, 5), fc6, 0)  # smaller than the kernel: no output


# a narrow network of the old quick preset's sizes: the fast path's properties hold at any width
SMALL = ModelConfig(width=0.125, input_size=96, fc_kernel=3, pretrained=False)


def _build(kind, cfg):
    return ShapeClassifier(cfg) if kind == "classifier" else build_model(cfg, kind)


@pytest.mark.parametrize("kind", ["deconvnet", "fcn8s", "classifier"])
def test_models_are_built_on_the_fast_path(kind):
    cfg = SMALL
    model = _build(kind, cfg)
    assert isinstance(model.fc6[0], MatmulConv2d)
    assert kind != "deconvnet" or isinstance(model.fc6_deconv[0], MatmulConvTranspose2d)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert model.normalise(torch.rand(2, 3, 96, 96)).is_contiguous(memory_format=torch.channels_last)
    reference = use_reference_path(copy.deepcopy(model))
    assert type(reference.fc6[0]) is torch.nn.Conv2d and not reference.channels_last
    assert all(m.weight.is_contiguous() for m in reference.modules() if isinstance(m, torch.nn.Conv2d))
    assert reference.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("kind", ["deconvnet", "fcn8s", "classifier"])
def test_fast_path_is_the_reference_network(kind):
    """Forward (crop and larger input) and one training step's gradients equal plain NCHW convolutions."""
    cfg = SMALL  # fc6: 3x3 kernel on the 3x3 pool5 map
    torch.manual_seed(0)
    fast = _build(kind, cfg)
    for m in fast.modules():  # weights of unit scale, so that differences are not lost under rounding
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(m.weight)
    reference = use_reference_path(copy.deepcopy(fast))
    with torch.no_grad():
        for side in (cfg.input_size, cfg.input_size + 64):  # the whole-map case, and the sliding one
            x = torch.rand(2, 3, side, side + 32)
            ours, ref = fast.eval()(x), reference.eval()(x)
            assert kind == "classifier" or ours.is_contiguous()  # the classifier spreads (expands) its scores
            torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
    # Gradients in eval mode: train-mode BN over fc7's 4 values (batch 4, 1x1 map) would amplify rounding
    # differences to percents, in either layout. Even so, a pre-ReLU value within rounding of zero may pass
    # its gradient in one network and not the other (a kink, not an error): that moves a layer's gradient by
    # about 1e-3 of its norm, where a wrong product or layout would move it by its whole size.
    x, y = torch.rand(4, 3, cfg.input_size, cfg.input_size), torch.randint(0, cfg.num_classes, (4, 96, 96))
    for model in (fast, reference):
        F.cross_entropy(model(x), y).backward()
    for (name, a), b in zip(fast.named_parameters(), reference.parameters(), strict=True):
        assert (a.grad - b.grad).norm() <= 1e-2 * b.grad.norm(), name
