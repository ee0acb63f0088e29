"""``make bench``: every cost benchmark on this machine's CPU, then the book's "Cost" appendix page.

    python benchmarks/bench.py [--page-only]

Runs, sized to finish in under 10 minutes on 2 free cores: training memory (fresh processes, first, while
this process is still small), the SegNet-sized step, throughput of both networks at 224x224 for the
``quick`` and ``paper`` presets, instance-wise inference of one image with 50 proposals, and training steps at
the ``cpu`` preset's crop and batch. Writes
``benchmarks/results/cpu.json`` and ``book/cost.md`` (from every JSON in ``benchmarks/results``), both
atomically. Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import instance
import memory
import throughput
import torch
from common import RESULTS, hardware, load_average, model_config, write_json

from deconvnet.book.cost import write_cost_page
from deconvnet.config import get_preset
from deconvnet.model.network import build_model
from deconvnet.model.summary import layer_rows

PAGE = Path(__file__).resolve().parent.parent / "book" / "cost.md"
# The run's size. Paper-size work dominates: a paper forward pass is 65 GFLOP per image, ~0.5 s here.
SETTINGS = {
    "side": 224,  # the input size for every preset
    "batch": {"quick": 8, "paper": 4},  # paper: 4 crops keep each timed call to seconds on 2 cores
    "repeats": 3,  # timed forward passes per variant (after one warm-up); training steps get one fewer
    "train_variants": ("fp32-nchw", "fp32"),  # before the fast path, and as shipped
    "memory_batches": [2, 8, 16, 64],  # 64 is the paper's effective batch; run only if it fits
    "top_n": 50,  # windows per image, as the paper
}


def segnet_flops(preset: str, size: tuple[int, int] = memory.SEGNET_SIZE) -> int:
    """Forward FLOPs of the preset's DeconvNet on one ``size`` image, from the layer shapes (meta device)."""
    with torch.device("meta"):
        rows = layer_rows(build_model(model_config(preset)), size)
    return 2 * sum(r.macs for r in rows)


def measure_all(preset: str = "paper") -> dict:
    """Every part in turn, each printing its own lines as it goes; ``preset`` is the network to weigh.

    ``part_s`` keeps each part's wall time, so that a run over budget shows what to trim.
    """
    cpu = torch.device("cpu")
    out = {"hardware": hardware(cpu), "load_average_start": load_average(), "settings": SETTINGS, "part_s": {}}

    def part(name: str, fn) -> None:
        start = time.perf_counter()
        out[name] = fn()
        out["part_s"][name] = time.perf_counter() - start

    part("memory", lambda: memory.training_memory(preset, SETTINGS["memory_batches"]))
    part("segnet", lambda: segnet_part(preset))
    part("throughput", lambda: throughput.run(
        cpu, sorted({"quick", preset}, reverse=True), ["deconvnet", "fcn8s"], SETTINGS["side"], SETTINGS["batch"],
        SETTINGS["repeats"], train_variants=SETTINGS["train_variants"]))
    part("instance", lambda: instance.run(preset, SETTINGS["top_n"]))
    part("training_setting", training_setting)
    out["load_average"] = load_average()
    return out


def training_setting(preset: str = "cpu") -> list[dict]:
    """Training steps at the setting the ``cpu`` preset trains with (its crop, its batch): crops/s per model.

    The learning study picks the setting; this is its price on this machine, against the same ceiling.
    """
    p = get_preset(preset)
    rows = []
    for kind in ("deconvnet", "fcn8s"):
        rows += throughput.model_rows(kind, preset, p.model.input_size, torch.device("cpu"), p.stage1.batch_size,
                                      ("fp32",), SETTINGS["repeats"], ("fp32",), split=False)
    return rows


def segnet_part(preset: str) -> dict | None:
    """The SegNet-sized step with our FLOP count for it; None if the step could not run."""
    segnet = memory.segnet_comparison(preset)
    return segnet | {"flops": segnet_flops(preset)} if segnet else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page-only", action="store_true", help="rewrite the page from the JSON files")
    parser.add_argument("--part", choices=["training_setting"],
                        help="measure only this part and update it in the existing results file")
    parser.add_argument("--preset", default="paper", help="the network weighed (quick: a one-minute smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu.json")
    parser.add_argument("--page", type=Path, default=PAGE)
    args = parser.parse_args()
    if args.part:
        out = json.loads(args.out.read_text()) if args.out.is_file() else {"hardware": hardware(torch.device("cpu"))}
        start = time.perf_counter()
        out[args.part] = training_setting()
        out.setdefault("part_s", {})[args.part] = time.perf_counter() - start
        out.setdefault("part_created", {})[args.part] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        write_json(args.out, out)
    elif not args.page_only:
        start = time.perf_counter()
        out = measure_all(args.preset)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out |= {"wall_s": time.perf_counter() - start, "created": created}
        write_json(args.out, out)
        print(f"wrote {args.out} after {out['wall_s']:.0f} s")
    write_cost_page(args.out.parent, args.page)
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
