"""pool keeps switches; unpool puts each maximum back at its argmax and zeros the rest (paper Sec. 3.1.1)."""

import pytest
import torch

from deconvnet.model.layers import pool, unpool


def reference_unpool(x, h, w):
    """Pool and unpool by hand with Python loops: the independent implementation."""
    n, c = x.shape[:2]
    pooled = torch.zeros(n, c, h // 2, w // 2)
    out = torch.zeros(n, c, h, w)
    for i in range(h // 2):
        for j in range(w // 2):
            window = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(n, c, 4)
            value, arg = window.max(dim=-1)
            pooled[:, :, i, j] = value
            for b in range(n):
                for k in range(c):
                    out[b, k, 2 * i + arg[b, k] // 2, 2 * j + arg[b, k] % 2] = value[b, k]
    return pooled, out


@pytest.mark.parametrize("h, w", [(4, 4), (6, 8), (5, 7), (9, 4)])
def test_unpool_of_pool_matches_loops(h, w):
    x = torch.randn(2, 3, h, w)  # continuous values: no ties inside a window
    pooled, switches = pool(x)
    restored = unpool(pooled, switches, x.shape)
    ref_pooled, ref_restored = reference_unpool(x, h, w)
    assert restored.shape == x.shape, "output_size makes odd sides exact"
    torch.testing.assert_close(pooled, ref_pooled)
    torch.testing.assert_close(restored, ref_restored)


def test_unpool_keeps_each_window_maximum_and_zeros_elsewhere():
    x = torch.randn(1, 4, 8, 10)
    pooled, switches = pool(x)
    restored = unpool(pooled, switches, x.shape)
    windows = restored.unfold(2, 2, 2).unfold(3, 2, 2).reshape(1, 4, 4, 5, 4)
    assert ((windows != 0).sum(-1) == 1).all(), "exactly one value survives per window"
    torch.testing.assert_close(windows.sum(-1), pooled)
    # switches are flat indices into the unpooled map
    torch.testing.assert_close(x.flatten(2).gather(2, switches.flatten(2)), pooled.flatten(2))


def test_odd_row_and_column_are_zero():
    x = torch.randn(1, 1, 5, 5)
    pooled, switches = pool(x)
    restored = unpool(pooled, switches, x.shape)
    assert (restored[..., 4, :] == 0).all() and (restored[..., :, 4] == 0).all()
