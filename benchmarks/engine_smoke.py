"""The training engine end to end on whatever device is here: throughput of ``train.train`` itself.

    python benchmarks/engine_smoke.py [--preset paper] [--steps 40] [--batch 16] [--accumulate 1]

Trains the preset's DeconvNet (random init) on synthetic 21-class squares for a few steps, with the engine's
own data loading, bf16 autocast and channels_last on a GPU, checkpointing and logging; prints crops/s and the
loss curve. On a GPU this is the check that the CUDA path of the engine runs; on the CPU, a timing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import write_json
from torch.utils.data import Dataset

from deconvnet.config import TrainConfig, get_preset
from deconvnet.model.network import build_model
from deconvnet.train.engine import train


class Squares(Dataset):
    """A filled square of class 1..20 on noise, per item; the class sets the square's size pattern."""

    def __init__(self, n: int, side: int):
        self.n, self.side = n, side

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, j: int):
        rng = np.random.default_rng(j)
        image = rng.random((3, self.side, self.side), dtype=np.float32) * 0.5
        label = np.zeros((self.side, self.side), dtype=np.int64)
        cls = 1 + j % 20
        s = self.side // 8 + cls * self.side // 40
        y, x = rng.integers(0, self.side - s, size=2)
        image[:, y : y + s, x : x + s] += 0.5
        label[y : y + s, x : x + s] = cls
        return torch.from_numpy(image), torch.from_numpy(label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.steps < 10:  # crops/s is timed between log rows (every 5 steps), leaving out the first
        parser.error(f"--steps {args.steps}: give at least 10, so that two log rows of 5 steps can be timed")
    preset = get_preset(args.preset)
    cfg = TrainConfig(iterations=args.steps, batch_size=args.batch, accumulate=args.accumulate, lr_step=10**6,
                      log_every=5, val_every=10**6, checkpoint_every=args.steps, workers=args.workers)
    torch.manual_seed(0)
    model = build_model(replace(preset.model, pretrained=False))
    data = Squares(4096, preset.model.input_size)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        history = train(model, data, cfg, Path(run_dir))
        total = time.perf_counter() - start
        resumed = train(build_model(replace(preset.model, pretrained=False)), data, cfg, Path(run_dir))
    rows = history["train"]
    steady = list(itertools.pairwise(rows))  # the first row includes cudnn autotuning and worker start-up
    crops = sum((b["step"] - a["step"]) * cfg.global_batch for a, b in steady)
    crops_s = crops / sum(b["seconds"] for _, b in steady)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    out = {"device": device, "preset": args.preset, "steps": args.steps, "global_batch": cfg.global_batch,
           "crops_per_s": crops_s, "total_s": total, "losses": [r["loss"] for r in rows],
           "resume_is_noop": resumed["train"] == rows,
           "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None}
    print(json.dumps(out, indent=1))
    assert rows[-1]["loss"] < rows[0]["loss"], "the loss should fall"
    if args.json:
        write_json(Path(args.json), out)


if __name__ == "__main__":
    main()
