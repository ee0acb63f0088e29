"""Throughput of DeconvNet and FCN-8s against the machine's own matrix-multiply ceiling.

    python benchmarks/throughput.py [--device cpu|cuda] [--presets quick paper] [--json out.json]

Prints a table and writes JSON: images/s and achieved GFLOP/s for forward and forward+backward, per model,
preset and precision (fp32 eager; on a GPU also bf16 autocast with channels_last). FLOPs are computed from the
layer shapes (``deconvnet.summary``), never copied. A benchmark, not a test: nothing here fails on a slow
machine.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from deconvnet.config import get_preset
from deconvnet.model import build_model
from deconvnet.summary import layer_table


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_ceiling(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """GFLOP/s of an n x n matrix multiply: the practical ceiling for convolution-heavy networks."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, repeats=5)
    return 2 * n**3 / seconds / 1e9


def measure(kind: str, preset: str, device: torch.device, batch: int, bf16: bool, repeats: int) -> dict:
    cfg = replace(get_preset(preset).model, pretrained=False)
    flops = 2 * sum(r.macs for r in layer_table(cfg, kind))  # per image, forward
    model = build_model(cfg, kind).to(device)
    x = torch.rand(batch, 3, cfg.input_size, cfg.input_size, device=device)
    y = torch.randint(0, cfg.num_classes, (batch, cfg.input_size, cfg.input_size), device=device)
    if bf16:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def forward():
        with torch.no_grad(), autocast:
            model.eval()(x)

    def train_step():
        model.train()
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fwd, step = timed(forward, device, repeats), timed(train_step, device, repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"model": kind, "preset": preset, "batch": batch, "precision": "bf16+cl" if bf16 else "fp32",
            "forward_img_s": batch / fwd, "forward_gflops": flops * batch / fwd / 1e9,
            "train_img_s": batch / step, "train_gflops": 3 * flops * batch / step / 1e9,  # backward ~ 2x forward
            "forward_ms_per_img": 1000 * fwd / batch, "train_ms_per_img": 1000 * step / batch,
            "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", default=["quick", "paper"])
    parser.add_argument("--models", nargs="+", default=["deconvnet", "fcn8s"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    ceiling = {"fp32": matmul_ceiling(device, torch.float32, 4096 if device.type == "cuda" else 2048)}
    if device.type == "cuda":
        ceiling["bf16"] = matmul_ceiling(device, torch.bfloat16, 8192)
    rows = []
    for preset in args.presets:
        for kind in args.models:
            for bf16 in ([False, True] if device.type == "cuda" else [False]):
                rows.append(measure(kind, preset, device, args.batch, bf16, args.repeats))
                r = rows[-1]
                top = ceiling["bf16" if bf16 else "fp32"]
                print(f"{kind:9s} {preset:6s} {r['precision']:7s} forward {r['forward_img_s']:8.1f} img/s "
                      f"{r['forward_gflops']:8.0f} GFLOP/s ({r['forward_gflops'] / top:5.1%}) | train "
                      f"{r['train_img_s']:7.1f} img/s {r['train_gflops']:8.0f} GFLOP/s ({r['train_gflops'] / top:5.1%})"
                      f" | peak {r['peak_mib'] or 0:.0f} MiB", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"device": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "matmul_gflops": ceiling, "rows": rows}
    print(json.dumps({"device": name, "matmul_gflops": ceiling}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
