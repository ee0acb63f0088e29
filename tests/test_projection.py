"""Zeiler & Fergus projection: each step is its layer's adjoint, and the whole is the deconvnet rule's gradient."""

from __future__ import annotations

import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from deconvnet.config import ModelConfig
from deconvnet.explain import projection, saliency
from deconvnet.model.layers import Pool, pool, unpool
from deconvnet.model.network import DeconvNet, VGGEncoder


def small_encoder() -> VGGEncoder:
    """VGG16's structure (convs, in-place ReLUs, pools with switches) at 1/8 width, random weights."""
    torch.manual_seed(0)
    encoder = VGGEncoder(ModelConfig(width=0.125, batch_norm=False, pretrained=False)).eval()
    for conv in encoder.convs():  # He init keeps units alive through 13 layers, as trained weights do
        nn.init.kaiming_normal_(conv.weight)
        nn.init.normal_(conv.bias, std=0.1)
    return encoder


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


def test_conv_step_is_the_adjoint_of_the_convolution():
    """<A x, y> = <x, A^T y> with A the convolution without bias, A^T the transposed filters."""
    conv = small_encoder().convs()[2].double()  # conv2_1, 8 -> 16 channels
    x, y = torch.randn(2, 8, 13, 11, dtype=torch.double), torch.randn(2, 16, 13, 11, dtype=torch.double)
    ax = F.conv2d(x, conv.weight, padding=conv.padding)
    torch.testing.assert_close(inner(ax, y), inner(x, projection.project_step(conv, y, x.shape)),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("size", [(13, 11), (12, 12)])
def test_strided_conv_step_recovers_odd_sizes(size):
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False).double()
    x = torch.randn(1, 3, *size, dtype=torch.double)
    y = torch.randn_like(conv(x))
    torch.testing.assert_close(inner(conv(x), y), inner(x, projection.project_step(conv, y, x.shape)),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
def test_unpool_is_the_adjoint_of_pooling_with_fixed_switches(size):
    """With the switches fixed, pooling picks one entry per window (A) and unpooling puts it back (A^T)."""
    features = torch.randn(2, 3, *size, dtype=torch.double)
    pooled, switches = pool(features)
    x = torch.randn_like(features)
    ax = x.flatten(2).gather(2, switches.flatten(2)).view_as(pooled)  # x read at the switches
    y = torch.randn_like(pooled)
    step = projection.project_step(Pool(), y, features.shape, switches)
    torch.testing.assert_close(step, unpool(y, switches, features.shape))
    torch.testing.assert_close(inner(ax, y), inner(x, step), rtol=1e-12, atol=0)


def test_relu_and_batch_norm_steps():
    y = torch.randn(2, 4, 5, 5, dtype=torch.double)
    torch.testing.assert_close(projection.project_step(nn.ReLU(inplace=True), y, y.shape), y.clamp(min=0))
    bn = nn.BatchNorm2d(4).double().eval()
    nn.init.normal_(bn.weight), nn.init.uniform_(bn.running_var, 0.5, 2)
    x = torch.randn_like(y)
    linear = bn(x) - bn(torch.zeros_like(x))  # BN without its shift
    torch.testing.assert_close(inner(linear, y), inner(x, projection.project_step(bn, y, y.shape)))


@pytest.mark.parametrize("layer", ["conv3_3", "pool4", "conv5_3"])
def test_projection_is_the_deconvnet_gradient_of_the_unit(layer):
    """Switch unpooling, transposed filters and rectified signal are exactly the deconvnet rule's backward."""
    encoder = small_encoder()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    (act,) = projection.strongest(encoder, images, layer, [1], k=1)
    ours = projection.project(encoder, images, act)

    class Unit(nn.Module):  # the layer's maps, flattened: the "class" is the unit's flat index
        def __init__(self):
            super().__init__()
            self.steps = nn.ModuleList(projection._up_to(encoder, layer))

        def forward(self, x):
            for step in self.steps:
                x = step(x)[0] if isinstance(step, Pool) else step(x)
            return x.flatten(1)

    maps, _ = projection.trace(encoder, images, layer)
    index = (act.channel * maps.shape[2] + act.row) * maps.shape[3] + act.col
    grad = saliency.deconvnet(Unit(), images[act.image : act.image + 1], index)
    torch.testing.assert_close(ours.pixels, act.value * grad[0], rtol=1e-4, atol=1e-6 * float(grad.abs().max()))
    assert ours.pixels.abs().max() > 0


def test_strongest_finds_each_images_maximum():
    encoder = small_encoder()
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    maps, _ = projection.trace(encoder, images, "conv4_3")  # (4, 64, 8, 8)
    found = projection.strongest(encoder, images, "conv4_3", [3, 7], k=2)
    assert [a.channel for a in found] == [3, 3, 7, 7]
    for a in found:
        assert a.value == pytest.approx(float(maps[a.image, a.channel].max()))
        assert a.value == pytest.approx(float(maps[a.image, a.channel, a.row, a.col]))
    assert found[0].value >= found[1].value


def test_receptive_fields_of_vgg16():
    encoder = small_encoder()
    sides = {"conv1_1": 3, "pool1": 6, "conv3_3": 40, "conv4_3": 92, "conv5_3": 196, "pool5": 212}
    for layer, side in sides.items():
        top, left, bottom, right = projection.receptive_field(encoder, layer, 3, 2)
        assert bottom - top == side and right - left == side
    assert projection.receptive_field(encoder, "conv5_3", 0, 0, (224, 224)) == (0, 0, 106, 106)  # centred on pixel 8


def test_projection_stays_in_its_receptive_field_and_patch_matches_box():
    encoder = small_encoder()
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    (act,) = projection.strongest(encoder, images, "conv3_3", [5], k=1)
    p = projection.project(encoder, images, act)
    top, left, bottom, right = p.box
    outside = p.pixels.clone()
    outside[:, top:bottom, left:right] = 0
    assert outside.abs().max() == 0 and p.crop().abs().max() > 0
    torch.testing.assert_close(p.patch, images[act.image, :, top:bottom, left:right])


def test_models_with_an_encoder_and_bad_input():
    net = DeconvNet(width=0.125, input_size=96, fc_kernel=3)
    images = torch.rand(1, 3, 96, 96)
    (act,) = projection.strongest(net, images, "conv2_2", [0], k=1)
    assert projection.project(net, images, act).pixels.shape == (3, 96, 96)  # BN steps included
    with pytest.raises(ValueError, match="valid layers are: conv1_1, conv1_2, pool1, conv2_1"):
        projection.strongest(net, images, "conv6_1", [0])
    with pytest.raises(ValueError, match="out of range"):
        projection.strongest(net, images, "conv1_1", [8])
    with pytest.raises(ValueError, match="expected a VGGEncoder"):
        projection.strongest(nn.Conv2d(3, 3, 1), images, "conv1_1", [0])


def test_imagenet_vgg16_projection_on_real_photos():
    """The chapter 2 use: a conv5_3 channel's strongest unit on two photos, projected back (Z&F Fig. 2)."""
    from deconvnet.explain.classifier import preprocess
    from deconvnet.explain.imagenet import imagenet_vgg16

    vgg = imagenet_vgg16()
    images = torch.cat([preprocess(skimage.data.chelsea()), preprocess(skimage.data.coffee())])
    found = projection.strongest(vgg, images, "conv5_3", [0], k=2)
    p = projection.project(vgg, images, found[0])
    assert found[0].value > 0 and p.crop().abs().max() > 0
    assert p.patch.shape[1:] == p.crop().shape[1:]


def test_project_all_equals_one_at_a_time():
    encoder = small_encoder()
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    found = projection.strongest(encoder, images, "conv5_3", [1, 4], k=3)
    found += projection.strongest(encoder, images, "conv3_3", [2], k=2)
    batched = projection.project_all(encoder, images, found, chunk=4)
    assert [p.activation for p in batched] == found
    for p in batched:
        one = projection.project(encoder, images, p.activation)
        torch.testing.assert_close(p.pixels, one.pixels, rtol=1e-5, atol=1e-6 * float(one.pixels.abs().max()))
        assert p.box == one.box
        torch.testing.assert_close(p.patch, one.patch)


def test_switches_from_another_image_reroute_the_projection():
    encoder = small_encoder()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    (act,) = projection.strongest(encoder, images, "pool2", [3], k=1)
    own, other = projection.project_all(encoder, images, [act, act], switches_from=[act.image, 1 - act.image])
    torch.testing.assert_close(own.pixels, projection.project(encoder, images, act).pixels)
    assert not torch.allclose(own.pixels, other.pixels), "other switches send the signal elsewhere"
    assert own.box == other.box and torch.equal(own.patch, other.patch), "the unit and its patch stay the same"
    with pytest.raises(ValueError, match="switches_from has 1 entries for 2 activations"):
        projection.project_all(encoder, images, [act, act], switches_from=[0])


def test_edge_agreement_is_high_where_the_projection_follows_the_edges():
    patch = torch.zeros(3, 40, 40)
    patch[:, :, 20:] = 1  # one vertical edge
    on_edge = torch.zeros(3, 40, 40)
    on_edge[:, :, 19:21] = 1
    off_edge = torch.zeros(3, 40, 40)
    off_edge[:, :, 4:6] = 1
    act = projection.Activation("conv1_1", 0, 0, 0, 0, 1.0)
    box = (0, 0, 40, 40)
    high = projection.edge_agreement(projection.Projection(act, on_edge, box, patch))
    low = projection.edge_agreement(projection.Projection(act, off_edge, box, patch))
    assert high > 0.6 and low < 0  # the blur (2 px) widens the strength beyond the 2 px Sobel edge
    flat = projection.Projection(act, on_edge, box, torch.zeros(3, 40, 40))
    assert projection.edge_agreement(flat) == 0.0
