"""Instance-wise inference of one image (paper Sec. 5.1): where the seconds go, batched or window by window.

    python benchmarks/instance.py [--preset paper] [--top-n 50] [--json out.json]

One generated VOC-sized scene (``data.synthvoc.scene``) goes through the whole pipeline of
``aggregate.segment_instances``: selective search, the top-N windows cut and resized, the network, the
aggregation (Eq. 1, maximum), then the fully connected CRF (``ensemble.dense_crf``, the release's settings).
The network step runs twice, all windows in one batch and then one window per forward pass, on the same
proposals; the other steps do not depend on it. Random weights: the cost of a pass does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
from common import load_average, model_config, write_json

from deconvnet.config import get_preset
from deconvnet.data.proposals import selective_search
from deconvnet.data.synthvoc import scene
from deconvnet.infer.aggregate import segment_instances
from deconvnet.infer.ensemble import RELEASE_CRF, dense_crf
from deconvnet.model.network import build_model

STEPS = ("proposals", "crop", "network", "aggregate", "crf")


def pipeline(model, image, preset, boxes, proposals_s: float, top_n: int, batch: int) -> dict:
    """Seconds per step of one image, with ``batch`` windows per forward pass; the CRF on its output."""
    infer = replace(get_preset(preset).infer, top_n=top_n, batch_size=batch, uncovered="background")
    result = segment_instances(model, image, get_preset(preset).data, infer, proposals=boxes)
    start = time.perf_counter()
    dense_crf(image, result.probabilities, RELEASE_CRF)
    steps = {"proposals": proposals_s, "crop": result.timings["crop"], "network": result.timings["network"],
             "aggregate": result.timings["aggregate"], "crf": time.perf_counter() - start}
    return {"batch": batch, "windows": len(result.windows), "seconds": steps, "total_s": sum(steps.values())}


def run(preset: str = "paper", top_n: int = 50, batches: tuple[int, ...] = (50, 1)) -> dict:
    """The pipeline's split for each batch size on one scene of the preset's data (500 px for ``paper``)."""
    data = get_preset(preset).data
    image = scene(data, 0)[0]  # (H, W, 3) uint8
    start = time.perf_counter()
    boxes = selective_search(image, data.proposal_mode, data.proposal_side, data.max_proposals)
    proposals_s = time.perf_counter() - start
    torch.manual_seed(0)
    model = build_model(model_config(preset)).eval()
    runs = []
    for batch in batches:
        runs.append(pipeline(model, image, preset, boxes, proposals_s, top_n, batch))
        s = runs[-1]["seconds"]
        print(f"instance {preset} {runs[-1]['windows']} windows, {batch} per pass: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in s.items()), flush=True)
    return {"preset": preset, "image_hw": list(image.shape[:2]), "top_n": top_n, "proposals_found": len(boxes),
            "runs": runs, "load_average": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--batches", nargs="+", type=int, default=[50, 1])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out = run(args.preset, args.top_n, tuple(args.batches))
    print(json.dumps(out, indent=1))
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
