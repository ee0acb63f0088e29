"""DeconvNet and FCN-8s: exact parameter counts, shapes, switches, clear errors (paper Sec. 3.1)."""

import pytest
import torch

from deconvnet.config import ModelConfig
from deconvnet.model.network import DECODER_STAGES, DeconvNet, FCN8s, build_model

SMALL = dict(width=0.125, input_size=96, fc_kernel=3)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_parameter_count_with_and_without_bias_before_bn():
    with torch.device("meta"):  # the count needs no memory
        assert n_params(DeconvNet(num_classes=21)) == 251_805_653
        assert n_params(DeconvNet(num_classes=21, conv_bias=False)) == 251_788_949


def test_paper_count_on_real_tensors_and_bn_layers():
    model = DeconvNet()
    assert n_params(model) == 251_805_653
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 29
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())


def test_encoder_is_torchvision_vgg16():
    from torchvision.models import vgg16_bn

    ours = [tuple(c.weight.shape) for c in DeconvNet(conv_bias=False).encoder.convs()]
    theirs = [tuple(m.weight.shape) for m in vgg16_bn().features if isinstance(m, torch.nn.Conv2d)]
    assert ours == theirs


@pytest.mark.parametrize("h, w", [(96, 96), (96, 160), (128, 96), (224, 288)])
def test_output_has_the_input_size(h, w):
    model = DeconvNet(**SMALL).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, h, w)).shape == (2, 21, h, w)


def test_paper_network_at_224_and_larger():
    model = DeconvNet(width=0.0625, input_size=224, fc_kernel=7).eval()
    for size in (224, 256):
        with torch.no_grad():
            out, stages = model(torch.rand(1, 3, size, size), return_stages=True)
        assert out.shape == (1, 21, size, size)
    assert stages["fc7"].shape[-2:] == (2, 2)  # 256 / 32 = 8, minus 6 for the 7x7 fc6


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 100, 96), "multiples of 32"),
    ((1, 3, 64, 64), "at least 96"),
    ((1, 1, 96, 96), "RGB batch"),
    ((3, 96, 96), "RGB batch"),
])
def test_bad_input_sizes_are_refused_clearly(shape, message):
    with pytest.raises(ValueError, match=message):
        DeconvNet(**SMALL)(torch.rand(*shape))


def test_unpooled_maps_are_nonzero_only_at_switches():
    model = DeconvNet(**SMALL).eval()
    with torch.no_grad():
        _, stages = model(torch.rand(1, 3, 96, 96), return_stages=True)
    for stage, _ in DECODER_STAGES:
        sparse = stages[f"unpool{stage}"]  # (1, C, h, w)
        windows = sparse.unfold(2, 2, 2).unfold(3, 2, 2)
        assert ((windows != 0).sum((-1, -2)) <= 1).all(), f"unpool{stage}: one value per 2x2 window at most"
        assert stages[f"deconv{stage}"].shape[-2:] == sparse.shape[-2:]


def test_init_is_gaussian_with_paper_std():
    model = DeconvNet(**SMALL)
    w = model.decoder[0][0][0].weight
    assert abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001


def test_fcn8s_shapes_and_bilinear_start():
    model = FCN8s(**SMALL).eval()
    for h, w in [(96, 96), (128, 160)]:
        with torch.no_grad():
            assert model(torch.rand(2, 3, h, w)).shape == (2, 21, h, w)
    # upscore8 starts as bilinear interpolation: a constant map stays constant away from the border
    const = torch.ones(1, 21, 6, 6)
    up = model.upscore8(const)
    assert up.shape[-1] == 48 and torch.allclose(up[..., 8:-8, 8:-8], torch.ones(1), atol=1e-6)


def test_build_model_refuses_unknown_kind():
    with pytest.raises(ValueError, match="valid kinds are: deconvnet, fcn8s"):
        build_model(ModelConfig(**SMALL, pretrained=False), "segnet")


def test_spread_decoder_start_adds_a_box_on_the_channel_diagonal_and_nothing_else():
    torch.manual_seed(3)
    gaussian = DeconvNet(**SMALL, pretrained=False)
    torch.manual_seed(3)
    spread = DeconvNet(**SMALL, pretrained=False, decoder_init="spread")
    for stage_g, stage_s in zip(gaussian.decoder, spread.decoder, strict=True):
        for block_g, block_s in zip(stage_g, stage_s, strict=True):
            diff = block_s[0].weight - block_g[0].weight  # (in, out, 3, 3)
            n = min(diff.shape[:2])
            expected = torch.zeros_like(diff)
            expected[range(n), range(n)] = 1 / 9
            assert torch.allclose(diff, expected, atol=1e-7)
    assert torch.equal(gaussian.fc6_deconv[0].weight, spread.fc6_deconv[0].weight), "only the 3x3 deconvolutions"
    with pytest.raises(ValueError, match="decoder_init=.bilinear.: use .gaussian., .spread. or .identity."):
        DeconvNet(**SMALL, pretrained=False, decoder_init="bilinear")
