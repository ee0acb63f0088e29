"""Throughput of DeconvNet and FCN-8s against the machine's own matrix-multiply ceiling.

    python benchmarks/throughput.py [--device cpu|cuda] [--presets quick paper] [--side 224] [--json out.json]

Prints a table and writes JSON: images/s and achieved GFLOP/s for forward and forward+backward, per model,
preset and variant. Every model is built on the CPU fast path (``deconvnet.model.fastpath``: channels-last, fc6 /
fc6-deconv as matrix products); on the CPU the variants are that network as shipped, the reference path it
replaced (NCHW, PyTorch's own convolutions: the "before") and channels-last alone; on a GPU fp32 and bf16
autocast, as shipped. On the CPU a per-layer-kind split of one forward pass says where the time goes. FLOPs
are computed from the layer shapes (``deconvnet.model.summary``), never copied; backward is counted as twice the
forward. A benchmark, not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch
from common import ceilings, forward_flops, hardware, load_average, model_config, sync, timed, write_json
from torch import nn

from deconvnet.model.fastpath import use_channels_last, use_fast_path, use_reference_path
from deconvnet.model.layers import Pool, Unpool
from deconvnet.model.network import build_model

# name -> (precision, layout, what the table calls it); the layouts are the functions of deconvnet.model.fastpath
VARIANTS = {
    "fp32": ("fp32", "shipped", "fp32 as shipped (channels-last, fc as matmul)"),
    "fp32-nchw": ("fp32", "reference", "fp32, NCHW, plain convolutions (before)"),
    "fp32-cl": ("fp32", "channels-last", "fp32, channels-last, plain convolutions"),
    "bf16": ("bf16", "shipped", "bf16 autocast as shipped"),
}
CPU_VARIANTS, GPU_VARIANTS = ("fp32-nchw", "fp32-cl", "fp32"), ("fp32", "bf16")
FC_LAYERS = ("fc6", "fc7", "fc6_deconv", "score_fr")
SHIPPED = "fp32"  # the variant every model of the package runs as


def prepare(model: nn.Module, variant: str) -> nn.Module:
    """The model in ``variant``'s layout, converted in place from whatever layout it had before."""
    layout = VARIANTS[variant][1]
    use_reference_path(model)
    if layout == "channels-last":
        use_channels_last(model)
    elif layout == "shipped":
        use_fast_path(model)
    return model


def layer_kind(module: nn.Module) -> str | None:
    """The bucket a leaf module's time goes to in the split, or None for containers."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return "fc6, fc7, fc6-deconv" if getattr(module, "paper_name", "") in FC_LAYERS else "convolutions"
    if isinstance(module, (nn.BatchNorm2d, nn.ReLU)):
        return "BN + ReLU"
    if isinstance(module, (Pool, Unpool)):
        return "pool + unpool"
    return None


def split_forward(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Seconds per layer kind of one (warm) forward pass, plus ``rest`` (input normalisation, Python)."""
    seconds: dict[str, float] = defaultdict(float)
    starts: dict[nn.Module, float] = {}

    def before(module, _):
        starts[module] = time.perf_counter()

    def after(module, _, __):
        seconds[layer_kind(module)] += time.perf_counter() - starts[module]

    leaves = [m for m in model.modules() if layer_kind(m)]
    handles = [h for m in leaves for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        with torch.no_grad():
            model.eval()(x)  # warm
            seconds.clear()
            start = time.perf_counter()
            model(x)
            total = time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()
    return dict(seconds) | {"rest": total - sum(seconds.values()), "total": total}


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, variant: str, flops: int, repeats: int,
            train: bool) -> dict:
    """Images/s and GFLOP/s of forward (eval, no grad) and, if ``train``, of forward+backward."""
    device, batch = x.device, x.shape[0]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=VARIANTS[variant][0] == "bf16")

    def forward():
        with torch.no_grad(), autocast:
            model.eval()(x)

    def train_step():
        model.train()
        model.zero_grad(set_to_none=True)  # as in training: gradients are made anew each step
        with autocast:
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fwd = timed(forward, device, repeats)
    row = {"forward_img_s": batch / fwd, "forward_gflops": flops * batch / fwd / 1e9,
           "forward_ms_per_img": 1000 * fwd / batch}
    if train:
        step = timed(train_step, device, max(1, repeats - 1))
        model.zero_grad(set_to_none=True)  # give the gradients' memory back before the next variant
        row |= {"train_img_s": batch / step, "train_gflops": 3 * flops * batch / step / 1e9,  # backward ~ 2x forward
                "train_ms_per_img": 1000 * step / batch}
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def model_rows(kind: str, preset: str, side: int, device: torch.device, batch: int, variants: tuple[str, ...],
               repeats: int, train_variants: tuple[str, ...], split: bool) -> list[dict]:
    """One row per variant for one model and preset; the model is built once and converted in place."""
    cfg = model_config(preset, side)
    flops = forward_flops(cfg, kind)
    torch.manual_seed(0)
    model = build_model(cfg, kind).to(device)
    x = torch.rand(batch, 3, side, side, device=device)
    y = torch.randint(0, cfg.num_classes, (batch, side, side), device=device)
    rows = []
    for variant in variants:  # the batch stays NCHW: each model's normalise converts it, as in use
        prepare(model, variant)
        row = {"model": kind, "preset": preset, "side": side, "batch": batch, "precision": variant,
               "variant": VARIANTS[variant][2], "shipped": variant == SHIPPED, "flops_per_img": flops}
        row |= measure(model, x, y, variant, flops, repeats, train=variant in train_variants)
        if split and device.type == "cpu":
            row["forward_split_s"] = split_forward(model, x)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(r: dict) -> str:
    train = (f" | train {r['train_img_s']:7.2f} img/s {r['train_gflops']:8.1f} GFLOP/s"
             if "train_img_s" in r else "")
    return (f"{r['model']:9s} {r['preset']:6s} {r['side']}px b{r['batch']:<3d} {r['precision']:11s} forward "
            f"{r['forward_img_s']:8.2f} img/s {r['forward_gflops']:8.1f} GFLOP/s{train}")


def run(device: torch.device, presets: list[str], models: list[str], side: int, batch: dict[str, int],
        repeats: int, variants: tuple[str, ...] | None = None, train_variants: tuple[str, ...] | None = None,
        split: bool = True) -> dict:
    """Ceilings, then every model x preset x variant: the ``throughput`` part of ``make bench``."""
    torch.backends.cudnn.benchmark = device.type == "cuda"
    variants = variants or (GPU_VARIANTS if device.type == "cuda" else CPU_VARIANTS)
    top = ceilings(device)
    print("matrix-multiply ceiling (GFLOP/s):", {k: round(v, 1) for k, v in top.items()}, flush=True)
    rows = []
    for preset in presets:
        for kind in models:
            rows += model_rows(kind, preset, side, device, batch[preset], variants, repeats,
                               train_variants or variants, split)
    hw = hardware(device)
    return {"device": hw["name"], "hardware": hw, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "matmul_gflops": top, "rows": rows, "load_average": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", default=["quick", "paper"])
    parser.add_argument("--models", nargs="+", default=["deconvnet", "fcn8s"])
    parser.add_argument("--side", type=int, default=224, help="input side in pixels (the issue's 224x224)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=None, choices=sorted(VARIANTS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    out = run(device, args.presets, args.models, args.side, dict.fromkeys(args.presets, args.batch), args.repeats,
              tuple(args.variants) if args.variants else None)
    sync(device)
    print(json.dumps({"device": out["device"], "matmul_gflops": out["matmul_gflops"]}))
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
