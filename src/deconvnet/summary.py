"""The layer table of a model: name, output shape, parameters and multiply-accumulates per layer.

It reproduces the paper's architecture table (Table 1 of the paper's supplementary / Fig. 2) from the code
itself, so the table can never disagree with the network. Multiply-accumulates (MACs) are computed from
each layer's shapes; ``tests/test_summary.py`` checks them against ``torch.utils.flop_counter``.

Used in chapter 1 (architecture) and by ``python -m deconvnet summary``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .config import ModelConfig
from .infer import quiet_even_same_padding
from .layers import Pool, Unpool


@dataclass(frozen=True)
class LayerRow:
    name: str  # the paper's name: conv1_1, pool1, fc6, fc6_deconv, unpool5, deconv5_1, score ...
    kind: str  # conv, pool, fc, deconv, unpool, score
    output_shape: tuple[int, ...]  # (C, H, W) for one image
    params: int  # weights + bias + the BN that follows
    macs: int  # multiply-accumulates for one image

    @property
    def group(self) -> str:
        """Where the layer sits: encoder, fc (fc6, fc7, fc6_deconv), decoder or score."""
        if self.name in ("fc6", "fc7", "fc6_deconv", "score_fr"):
            return "fc"
        if self.name.startswith(("conv", "pool")):
            return "encoder"
        return "score" if self.name.startswith("score") or self.name.startswith("upscore") else "decoder"


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """MACs of one image through a convolution or transposed convolution (bias and BN not counted)."""
    if isinstance(module, nn.ConvTranspose2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return inp[0].numel() * module.out_channels * k  # every input value is spread over a k x k x C_out patch
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return out[0].numel() * (module.in_channels // module.groups) * k
    return 0


def _own_params(model: nn.Module) -> dict[nn.Module, int]:
    """Parameters per convolution, counting the BN that follows it as part of it."""
    counts: dict[nn.Module, int] = {}
    last = None
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            counts[m] = sum(p.numel() for p in m.parameters(recurse=False))
            last = m
        elif isinstance(m, nn.BatchNorm2d) and last is not None:
            counts[last] += sum(p.numel() for p in m.parameters(recurse=False))
    return counts


def layer_rows(model: nn.Module, input_size: tuple[int, int]) -> list[LayerRow]:
    """Run one random image through ``model`` and record a row per convolution, pool and unpool."""
    params, rows, unpools = _own_params(model), [], [5, 4, 3, 2, 1]

    def hook(module, inputs, output):
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(module, Unpool):
            name, kind = f"unpool{unpools.pop(0)}", "unpool"
        else:
            name = getattr(module, "paper_name", type(module).__name__.lower())
            kind = "pool" if isinstance(module, Pool) else _kind(name)
        rows.append(LayerRow(name, kind, tuple(out.shape[1:]), params.get(module, 0), _macs(module, inputs[0], out)))

    watched = (nn.Conv2d, nn.ConvTranspose2d, Pool, Unpool)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, watched)]
    try:
        with torch.no_grad(), quiet_even_same_padding():
            model.eval()(torch.rand(1, 3, *input_size))
    finally:
        for h in handles:
            h.remove()
    return rows


def _kind(name: str) -> str:
    for prefix, kind in (("conv", "conv"), ("fc6_deconv", "deconv"), ("fc", "fc"), ("deconv", "deconv")):
        if name.startswith(prefix):
            return kind
    return "score"


def layer_table(cfg: ModelConfig, kind: str = "deconvnet", input_size: int | None = None) -> list[LayerRow]:
    """The layer table of the ``kind`` model for ``cfg`` at its crop size.

    Built on PyTorch's ``meta`` device: shapes and counts without allocating the paper's 1 GB of weights.
    """
    from .model import build_model

    side = input_size or cfg.input_size
    with torch.device("meta"):
        model = build_model(replace(cfg, pretrained=False), kind)
        return layer_rows(model, (side, side))


def group_totals(rows: list[LayerRow]) -> dict[str, dict[str, int]]:
    """Parameters and MACs per group (encoder, fc, decoder, score), in table order."""
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = totals.setdefault(row.group, {"params": 0, "macs": 0})
        entry["params"] += row.params
        entry["macs"] += row.macs
    return totals


def format_table(rows: list[LayerRow]) -> str:
    """The table as fixed-width text, with totals: what ``python -m deconvnet summary`` prints."""
    lines = [f"{'layer':<14} {'output (C, H, W)':<20} {'parameters':>14} {'GMACs':>8}"]
    for r in rows:
        shape = " x ".join(str(s) for s in r.output_shape)
        lines.append(f"{r.name:<14} {shape:<20} {r.params:>14,} {r.macs / 1e9:>8.3f}")
    total_p, total_m = sum(r.params for r in rows), sum(r.macs for r in rows)
    lines.append("-" * len(lines[0]))
    for group, t in group_totals(rows).items():
        lines.append(f"{group:<14} {'':<20} {t['params']:>14,} {t['macs'] / 1e9:>8.3f}  ({t['params'] / total_p:.1%})")
    lines.append(f"{'total':<14} {'':<20} {total_p:>14,} {total_m / 1e9:>8.3f}")
    return "\n".join(lines)
