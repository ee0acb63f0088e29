"""What the benchmarks share: timing, the machine named, its own matrix-multiply ceilings, FLOPs per image.

Every number a benchmark reports is measured in the run that reports it; FLOPs come from the layer shapes
(``deconvnet.model.summary``), never from a paper.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from deconvnet.book.runner import cpuinfo
from deconvnet.config import ModelConfig, get_preset
from deconvnet.files import atomic_path
from deconvnet.model.summary import layer_table

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` unmeasured ones.

    The warm-up pays for what happens once per shape (oneDNN / cuDNN picking kernels, first-touch page
    faults of the activations), which is not the network's steady cost.
    """
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


def model_config(preset: str, side: int | None = None) -> ModelConfig:
    """The preset's network with random weights (timing does not depend on them), at ``side`` if given."""
    cfg = replace(get_preset(preset).model, pretrained=False)
    return replace(cfg, input_size=side) if side else cfg


def forward_flops(cfg: ModelConfig, kind: str) -> int:
    """FLOPs of one image's forward pass (2 per multiply-accumulate), from the layer shapes."""
    return 2 * sum(r.macs for r in layer_table(cfg, kind))


def blas_ceiling(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """GFLOP/s of an n x n matrix multiply through ``torch.mm`` (MKL on the CPU, cuBLAS on a GPU)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, device, repeats=5) / 1e9


def onednn_ceiling(n: int, pixels: int = 4096) -> float:
    """GFLOP/s of the same product through oneDNN, as a channels-last 1x1 convolution (CPU only).

    The convolutions run on oneDNN, not on MKL's ``sgemm``, and on some CPUs oneDNN's kernel is the faster
    of the two; the practical ceiling is the better of both.
    """
    side = int(pixels**0.5)
    x = torch.randn(1, n, side, side).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = timed(lambda: torch.nn.functional.conv2d(x, w), torch.device("cpu"), repeats=5)
    return 2 * n * n * side * side / seconds / 1e9


def ceilings(device: torch.device) -> dict[str, float]:
    """The machine's matrix-multiply GFLOP/s, per precision; ``fp32_onednn`` on the CPU only."""
    if device.type == "cuda":
        return {"fp32": blas_ceiling(device, torch.float32, 4096), "bf16": blas_ceiling(device, torch.bfloat16, 8192)}
    return {"fp32": blas_ceiling(device, torch.float32, 2048), "fp32_onednn": onednn_ceiling(2048)}


def meminfo_mib(field: str) -> float | None:
    """One ``/proc/meminfo`` field (``MemTotal``, ``MemAvailable``...) in MiB; None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def hardware(device: torch.device) -> dict:
    """The machine in words and numbers, read from the machine itself: CPU model, cores, vector units, GPU."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    cpu = info.get("model name") or platform.processor() or platform.machine()
    total = meminfo_mib("MemTotal")
    out = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
           "vector_units": vector, "memory_gib": total / 1024 if total else None, "torch": torch.__version__,
           "onednn": torch.backends.mkldnn.is_available(), "device": device.type}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    out["name"] = out.get("gpu") or f"{cpu}, {out['cores']} cores"
    return out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: a run on a busy machine says so in its own results."""
    return [round(v, 2) for v in os.getloadavg()]


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically, so a reader never sees half a result file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
