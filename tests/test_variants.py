"""Unpooling without switches (the exercises' decoder variants), checked against loops and torch."""

import pytest
import torch
import torch.nn.functional as F

from deconvnet.model.layers import pool, unpool
from deconvnet.model.network import DeconvNet
from deconvnet.model.variants import HOWS, Upsample, fixed_switches, upsample, without_switches


def loop_fixed(pooled: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Each value at the top-left cell of its window, written with Python loops."""
    out = torch.zeros(*pooled.shape[:2], h, w)
    for i in range(pooled.shape[-2]):
        for j in range(pooled.shape[-1]):
            out[:, :, 2 * i, 2 * j] = pooled[:, :, i, j]
    return out


@pytest.mark.parametrize("h, w", [(4, 6), (5, 7), (9, 4)])
def test_fixed_puts_every_value_top_left_whatever_the_input(h, w):
    x = torch.randn(2, 3, h, w)
    pooled, _ = pool(x)
    torch.testing.assert_close(upsample(pooled, None, x.shape, "fixed"), loop_fixed(pooled, h, w))
    assert fixed_switches(pooled.shape, x.shape).shape == pooled.shape


@pytest.mark.parametrize("h, w", [(4, 6), (5, 7)])
def test_nearest_and_bilinear_fill_the_windows_and_keep_the_size(h, w):
    x = torch.randn(1, 2, h, w)
    pooled, switches = pool(x)
    near = upsample(pooled, switches, x.shape, "nearest")
    assert near.shape == x.shape
    # every cell of window (i, j) holds the window's maximum; the row / column no window saw is zero
    torch.testing.assert_close(near[..., : 2 * (h // 2), : 2 * (w // 2)],
                               pooled.repeat_interleave(2, -2).repeat_interleave(2, -1))
    assert (near[..., 2 * (h // 2):, :] == 0).all() and (near[..., :, 2 * (w // 2):] == 0).all()
    bil = upsample(pooled, switches, x.shape, "bilinear")
    assert bil.shape == x.shape
    expected = F.interpolate(pooled, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(bil[..., : 2 * (h // 2), : 2 * (w // 2)], expected)


def test_switches_is_the_paper_unpooling_and_needs_switches():
    x = torch.randn(1, 2, 6, 6)
    pooled, switches = pool(x)
    torch.testing.assert_close(upsample(pooled, switches, x.shape, "switches"), unpool(pooled, switches, x.shape))
    with pytest.raises(ValueError, match="needs the switches"):
        upsample(pooled, None, x.shape, "switches")
    with pytest.raises(ValueError, match="valid ones are"):
        upsample(pooled, switches, x.shape, "cubic")


def test_without_switches_swaps_the_decoder_and_leaves_the_model_alone():
    torch.manual_seed(0)
    net = DeconvNet(width=0.0625, input_size=64, fc_kernel=1, num_classes=3).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        outputs = {how: without_switches(net, how)(x) for how in HOWS}
    torch.testing.assert_close(outputs["switches"], before)  # same weights, same switches
    assert all(out.shape == before.shape for out in outputs.values())
    assert (outputs["bilinear"] - before).abs().max() > 1e-2 * before.abs().max()  # the switches mattered
    assert isinstance(without_switches(net).unpool, Upsample) and not isinstance(net.unpool, Upsample)
    assert without_switches(net).state_dict().keys() == net.state_dict().keys()
    with pytest.raises(TypeError, match="no unpooling layer"):
        without_switches(torch.nn.Linear(2, 2))
