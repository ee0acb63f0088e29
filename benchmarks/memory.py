"""Peak memory of a training step, each batch size in a fresh process (peak resident set size).

    python benchmarks/memory.py [--preset paper] [--batches 4 8 16 64] [--json out.json]

A child process builds the network, gives SGD its momentum buffers (the paper's solver: momentum 0.9,
weight decay 5e-4), then runs one training step (forward, backward, update) and reports its peak resident
set size (``getrusage``'s ``ru_maxrss``). On the CPU that is the honest number: PyTorch has no CPU
allocator statistics and ``tracemalloc`` does not see its tensors. A fresh process per batch size keeps one
measurement's peak out of the next.

The peak grows with the batch by the activations kept for the backward pass (counted per image on the
meta device, and measured between the two largest batches run); a batch whose predicted peak would not
fit in the memory available is extrapolated, never run, and labelled so.

``--segnet`` measures what the SegNet paper reports for DeconvNet (Badrinarayanan et al. 2017, Table 6):
one 352x480 image (the nearest size to their 360x480 that our network takes), forward and backward
seconds of a warm step, training and inference peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import load_average, meminfo_mib, model_config, write_json
from torch import nn

from deconvnet.model.network import build_model

SEGNET_SIZE = (352, 480)  # SegNet timed 360x480; our network takes multiples of 32


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's resident set size now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def available_mib() -> float:
    """Memory the kernel says a new process can take without swapping (MemAvailable)."""
    available = meminfo_mib("MemAvailable")
    return float("inf") if available is None else available


def solver(model: nn.Module) -> torch.optim.Optimizer:
    """The paper's SGD, with its momentum buffers already allocated, as they are from the second step on."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: the buffers appear, the weights barely move (weight decay only)
    opt.zero_grad(set_to_none=True)
    return opt


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """One step; returns (forward seconds, backward + update seconds)."""
    model.train()
    opt.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    middle = time.perf_counter()
    loss.backward()
    opt.step()
    return middle - start, time.perf_counter() - middle


def child(preset: str, batch: int, size: tuple[int, int], steps: int, inference: bool) -> dict:
    """What one fresh process measures: baseline and peak memory of ``steps`` training steps."""
    cfg = model_config(preset)
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.rand(batch, 3, *size)
    y = torch.randint(0, cfg.num_classes, (batch, *size))
    out = {"preset": preset, "batch": batch, "size": list(size), "model_mib": rss_mib()}
    if inference:  # before any training: ru_maxrss only grows
        with torch.no_grad():
            model.eval()(x)
        out["inference_peak_mib"] = peak_rss_mib()
    opt = solver(model)
    out["baseline_mib"] = rss_mib()  # weights, momentum, the libraries
    timings = [train_step(model, opt, x, y) for _ in range(steps)]
    out |= {"peak_mib": peak_rss_mib(), "forward_s": timings[-1][0], "backward_s": timings[-1][1]}
    return out


def run_child(preset: str, batch: int, size: tuple[int, int], steps: int = 1, inference: bool = False) -> dict | None:
    """``child`` in a fresh interpreter, so that its peak is its own; None if it died (e.g. out of memory)."""
    cmd = [sys.executable, __file__, "--child", "--preset", preset, "--batches", str(batch),
           "--size", *map(str, size), "--steps", str(steps)] + (["--inference"] if inference else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        print(f"memory child for batch {batch} ended with {done.returncode}: {done.stderr.strip()[-300:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def saved_mib_per_image(preset: str) -> float:
    """Activations autograd keeps for the backward pass, MiB per image: counted on the meta device, not run.

    The difference between batches 4 and 2, so that the weights (which the convolutions also save) cancel.
    """
    cfg = model_config(preset)

    def saved(batch: int) -> int:
        kept: dict[int, int] = {}  # by tensor: a map saved by two operations (BN, then in-place ReLU) is one

        def pack(t: torch.Tensor) -> torch.Tensor:
            kept[id(t)] = t.numel() * t.element_size()
            return t  # held by the graph until the end of the block, so ids are not reused

        with torch.device("meta"), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            build_model(cfg).train()(torch.rand(batch, 3, cfg.input_size, cfg.input_size))
        return sum(kept.values())

    return (saved(4) - saved(2)) / 2 / 2**20


def growth(points: list[tuple[int, float]]) -> float | None:
    """MiB per image between the two largest measured batches (None with fewer than two)."""
    if len(points) < 2:
        return None
    (b0, m0), (b1, m1) = sorted(points)[-2:]
    return (m1 - m0) / (b1 - b0)


def predict(points: list[tuple[int, float]], per_image: float, batch: int) -> float | None:
    """Peak at ``batch`` from the largest measured one, growing by ``per_image`` MiB: a lower bound, since the
    growth per image rises with the batch (small batches peak while the gradients are made, large ones while
    the activations are held)."""
    if len(points) < 2:
        return None
    last_batch, last_peak = max(points)
    return last_peak + (batch - last_batch) * max(per_image, growth(points))


def training_memory(preset: str, batches: list[int], margin: float = 0.95, safety: float = 1.05) -> dict:
    """Peak memory per batch size: measured where ``safety`` x the prediction fits in ``margin`` of
    MemAvailable, else extrapolated (and labelled so) rather than risk the out-of-memory killer.

    The prediction is a lower bound, and ``safety`` its allowance: on a 24 GB machine the paper's batch 64
    peaks at about 20.2 GB against a prediction of 18.5-19.6 GB, which 1.05 x still lets run where 1.1 x
    would not. Should a run be killed all the same, only the child goes, and its row says so.
    """
    size = (model_config(preset).input_size,) * 2
    saved = saved_mib_per_image(preset)
    rows, measured = [], []
    for batch in sorted(batches):
        predicted = predict(measured, saved, batch)
        if predicted is not None and safety * predicted > margin * available_mib():
            rows.append({"batch": batch, "peak_mib": predicted, "measured": False})
            print(f"memory {preset} batch {batch}: {predicted:,.0f} MiB or more predicted; does not fit, not run",
                  flush=True)
            continue
        row = run_child(preset, batch, size)
        if row is None:  # killed, most likely by the out-of-memory killer: say so, keep the prediction
            rows.append({"batch": batch, "peak_mib": predicted, "measured": False, "killed": True})
            continue
        rows.append(row | {"measured": True})
        measured.append((batch, row["peak_mib"]))
        print(f"memory {preset} batch {batch}: peak {row['peak_mib']:,.0f} MiB (baseline {row['baseline_mib']:,.0f})",
              flush=True)
    return {"preset": preset, "size": list(size), "rows": rows, "growth_mib_per_image": growth(measured),
            "saved_mib_per_image": saved, "available_mib": available_mib()}


def segnet_comparison(preset: str = "paper") -> dict:
    """SegNet's Table 6 quantities for our DeconvNet: one 352x480 image, a warm step, memory."""
    row = run_child(preset, 1, SEGNET_SIZE, steps=2, inference=True)
    if row is None:
        return {}
    print(f"segnet size {SEGNET_SIZE}: forward {row['forward_s'] * 1000:.0f} ms, backward "
          f"{row['backward_s'] * 1000:.0f} ms, training peak {row['peak_mib']:,.0f} MiB", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batches", nargs="+", type=int, default=[4, 8, 16, 64])
    parser.add_argument("--size", nargs=2, type=int, default=None, help="input height and width (child only)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--inference", action="store_true")
    parser.add_argument("--segnet", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.child:
        size = tuple(args.size) if args.size else (model_config(args.preset).input_size,) * 2
        print(json.dumps(child(args.preset, args.batches[0], size, args.steps, args.inference)))
        return
    out = {"training": training_memory(args.preset, args.batches), "load_average": load_average()}
    if args.segnet:
        out["segnet"] = segnet_comparison(args.preset)
    print(json.dumps(out, indent=1))
    if args.json:
        write_json(Path(args.json), out)


if __name__ == "__main__":
    main()
