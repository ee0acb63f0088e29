"""How much training does DeconvNet need? Val accuracy against crops seen, for each design lever.

Every arm trains stage 1 (paper Sec. 4.2: crops centred on one object) on the same SynthVOC tree, the
``cpu`` preset's, with the same seed, batch and constant learning rate, and is scored after 500, 1k, 2k, 4k
... crops on the same val stage-1 crops: object accuracy (object pixels given their class; "what") and mean
IoU. A per-pixel classifier (a 1x1-convolution network: an MLP on one pixel's colour) is the floor that
says how much colour alone names a class. Arms differ in one lever at a time from a reference arm:

* initialisation: random weights at 1/8 and 3/8 width, or ImageNet VGG16 at full width (the paper's start),
  fine-tuned or frozen;
* crop size, learning rate and the model (DeconvNet against FCN-8s).

Results go to ``benchmarks/results/learning.json`` after every point (atomically), so a killed run resumes
where it stopped: each arm's run folder under ``runs/study/`` resumes exactly (``train.train``), and points
already measured are kept. The appendix "How much training does DeconvNet need?" plots this file.

    python benchmarks/learning.py                    # every arm, up to each arm's crop budget
    python benchmarks/learning.py --arms imagenet64  # some arms only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from common import RESULTS, hardware, write_json

from deconvnet.book.study import sparse
from deconvnet.config import ModelConfig, TrainConfig, get_preset
from deconvnet.data import Stage1Crops, VOCSegmentation
from deconvnet.data.datasets import voc_root
from deconvnet.infer.metrics import SegmentationMetrics, baseline_predictions, commonest_object_class
from deconvnet.model.network import build_model
from deconvnet.train.engine import evaluate_samples, train
from deconvnet.train.pipeline import RUNS

OUT = RESULTS / "learning.json"
VAL_CROPS = 300  # val stage-1 crops per point: +-3 points of accuracy, seconds to score
BATCH = 8  # crops per step (the paper's micro-batch, over which BN takes its statistics); arms compare at equal crops


def _arm(kind="deconvnet", width=0.125, size=128, pretrained=False, lr=0.01, freeze=False, max_crops=8000,
         decoder_init="gaussian", stage0=0, optimizer="sgd", stage0_lr=0.01, batch=BATCH):
    model = ModelConfig(width=width, input_size=size, fc_kernel=size // 32, pretrained=pretrained,
                        decoder_init=decoder_init)
    return dict(kind=kind, model=model, lr=lr, freeze=freeze, max_crops=max_crops, stage0=stage0,
                optimizer=optimizer, stage0_lr=stage0_lr, batch=batch)


# name -> one lever changed from another arm; the comment says which.
ARMS = {
    "scratch128": _arm(),  # the old cpu preset: 1/8 width, 128 px, random init (its stage 0 left out)
    "scratch96-w3/8": _arm(width=0.375, size=96),  # wide enough that deconv1 has 24 >= 21 channels
    "imagenet64": _arm(width=1.0, size=64, pretrained=True, max_crops=4000),  # the paper's start, small crops
    "imagenet64-spread": _arm(width=1.0, size=64, pretrained=True, decoder_init="spread", max_crops=4000),
    "imagenet64-identity": _arm(width=1.0, size=64, pretrained=True, decoder_init="identity", max_crops=4000),
    # fc6 and fc7 first trained as a classifier of the centred object (stage 0), on the ImageNet encoder:
    # the paper's fc6 / fc7 come from VGG16's ImageNet classifier, which does not ship offline
    "imagenet64-stage0": _arm(width=1.0, size=64, pretrained=True, stage0=2000, max_crops=4000),
    # the same at a tenth of stage 0's rate: at 0.01 its classifier's loss diverged (2.2 -> 12 in 50 steps)
    "imagenet64-stage0-lr0.001": _arm(width=1.0, size=64, pretrained=True, stage0=2000, stage0_lr=0.001,
                                      max_crops=4000),
    "imagenet64-frozen": _arm(width=1.0, size=64, pretrained=True, freeze=True, max_crops=4000),
    "imagenet64-adam": _arm(width=1.0, size=64, pretrained=True, lr=1e-4, optimizer="adam", max_crops=4000),
    "imagenet64-lr0.001": _arm(width=1.0, size=64, pretrained=True, lr=0.001, max_crops=4000),
    # 4x the crops per step (and per BN statistic: fc6/fc7 see 1x1 maps, so BN there averages over the batch only)
    "imagenet64-b32": _arm(width=1.0, size=64, pretrained=True, batch=32, max_crops=4000),
    "imagenet64-b4": _arm(width=1.0, size=64, pretrained=True, batch=4, max_crops=4000),  # twice the steps per crop
    "imagenet96": _arm(width=1.0, size=96, pretrained=True, max_crops=2000),  # larger crops, 2.3x the cost
    "fcn-imagenet64": _arm(kind="fcn8s", width=1.0, size=64, pretrained=True, max_crops=4000),
    "fcn-scratch128": _arm(kind="fcn8s"),
}
POINTS = (500, 1000, 2000, 4000, 8000, 16000)  # crops seen at which each arm is scored


def _load() -> dict:
    return json.loads(OUT.read_text()) if OUT.is_file() else {"arms": {}, "pixel_classifier": None}


def _save(results: dict) -> None:
    results["machine"] = hardware(torch.device("cpu"))
    write_json(OUT, results)


def run_arm(name: str, spec: dict, results: dict, root) -> None:
    """Train arm ``name`` point by point (resuming its run folder) and record each point's val scores."""
    preset = get_preset("cpu")
    torch.manual_seed(preset.run.seed)
    model = build_model(spec["model"], spec["kind"])
    crop = spec["model"].input_size
    train_crops = Stage1Crops(VOCSegmentation(root, "train"), preset.data, crop, seed=preset.run.seed)
    val_crops = Stage1Crops(VOCSegmentation(root, "val"), preset.data, crop, train=False)
    record = results["arms"].setdefault(name, {"spec": {**{k: v for k, v in spec.items() if k != "model"},
                                                        "model": dataclasses.asdict(spec["model"])},
                                                "points": []})
    done = {p["crops"] for p in record["points"]}
    run_dir = RUNS / "study" / name.replace("/", "_")
    todo = [p for p in POINTS if p <= spec["max_crops"] and p not in done]
    if not todo:
        return  # measured to its budget already
    if spec["stage0"] and not (run_dir / "final.pt").is_file():
        record["stage0"] = _stage0(model, spec, train_crops, val_crops, run_dir.with_name(run_dir.name + "-stage0"),
                                   preset.run.seed)
        print(f"{name:22s} stage 0: {record['stage0']}", flush=True)
    for crops in todo:  # each segment resumes from the previous point's checkpoint
        batch = spec.get("batch", BATCH)
        steps = crops // batch
        cfg = TrainConfig(iterations=steps, batch_size=batch, accumulate=1, lr=spec["lr"], lr_step=10**9,
                          log_every=max(1, steps // 10), val_every=10**9, checkpoint_every=steps, workers=1,
                          freeze_encoder=spec["freeze"], optimizer=spec.get("optimizer", "sgd"))
        tic = time.perf_counter()
        history = train(model, train_crops, cfg, run_dir, seed=preset.run.seed)
        seconds = time.perf_counter() - tic
        scores = evaluate_samples(model, val_crops, VAL_CROPS, per_item=True)
        train_seconds = sum(r["seconds"] for r in history["train"])
        record["points"].append({"crops": crops, "stage0_crops": spec["stage0"],
                                 "object_accuracy": scores["object_accuracy"],
                                 "mean_iou": scores["mean_iou"], "train_seconds": train_seconds,
                                 "crops_per_second": crops / train_seconds, "segment_seconds": seconds,
                                 "per_crop": sparse(scores["per_item"])})
        print(f"{name:22s} {crops:6d} crops  what {scores['object_accuracy']:.3f}  mIoU {scores['mean_iou']:.3f}"
              f"  {crops / train_seconds:.1f} crops/s", flush=True)
        _save(results)


def _stage0(model, spec: dict, train_crops, val_crops, run_dir, seed: int) -> dict:
    """Train fc6 and fc7 (on the arm's encoder) to name the centred object, then copy them into ``model``.

    Returns the classifier's last logged loss and its crop accuracy on (up to) the arms' val crops.
    """
    from deconvnet.model.pretrained import load_vgg16_encoder
    from deconvnet.train.stage0 import ObjectCrops, ShapeClassifier, crop_accuracy, transfer_pretrained

    torch.manual_seed(seed)
    classifier = ShapeClassifier(spec["model"])
    if spec["model"].pretrained:
        load_vgg16_encoder(classifier)
    steps = spec["stage0"] // BATCH
    cfg = TrainConfig(iterations=steps, batch_size=BATCH, accumulate=1, lr=spec.get("stage0_lr", spec["lr"]),
                      lr_step=10**9, log_every=max(1, steps // 10), val_every=10**9, checkpoint_every=steps, workers=1)
    history = train(classifier, ObjectCrops(train_crops), cfg, run_dir, seed=seed)
    transfer_pretrained(classifier, model)
    scored = crop_accuracy(classifier, ObjectCrops(val_crops))
    return {"last_loss": history["train"][-1]["loss"], **scored}


def baselines(root) -> dict:
    """All background, and the commonest object class on every object pixel, on the arms' val crops.

    The second is generous: it knows where the objects are and names them all with the commonest class.
    """
    preset = get_preset("cpu")
    val_crops = Stage1Crops(VOCSegmentation(root, "val"), preset.data, 64, train=False)
    labels = [val_crops[j][1] for j in range(min(VAL_CROPS, len(val_crops)))]
    commonest = commonest_object_class(labels, 21)
    out = {}
    for name in ("all background", "commonest class"):
        mats = []
        for y in labels:
            m = SegmentationMetrics(21)
            m.update(baseline_predictions(y, commonest)[name], y)
            mats.append(m.matrix.numpy().copy())
        total = SegmentationMetrics(21, torch.from_numpy(np.sum(mats, 0)))
        out[name] = {"object_accuracy": total.object_accuracy(), "mean_iou": total.mean_iou(),
                     "per_crop": sparse(mats)}
    return out


def pixel_classifier(root, pixels: int = 60_000) -> dict:
    """The colour-alone floor: an MLP on single pixels' RGB (a 1x1-convolution network), scored like the arms.

    Trained on pixels of train stage-1 crops, scored on the same val crops as the arms.
    """
    from sklearn.neural_network import MLPClassifier

    preset = get_preset("cpu")
    rng = np.random.default_rng(0)

    def pixels_of(crops, n_crops):
        xs, ys = [], []
        for j in range(n_crops):
            image, label = crops[j]
            xs.append(image.reshape(3, -1).T.numpy())
            ys.append(label.reshape(-1).numpy())
        x, y = np.concatenate(xs), np.concatenate(ys)
        keep = y != 255
        return x[keep], y[keep]

    train_crops = Stage1Crops(VOCSegmentation(root, "train"), preset.data, 64, seed=0)
    x, y = pixels_of(train_crops, 400)
    pick = rng.choice(len(y), size=min(pixels, len(y)), replace=False)
    mlp = MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=60, random_state=0).fit(x[pick], y[pick])
    val_crops = Stage1Crops(VOCSegmentation(root, "val"), preset.data, 64, train=False)
    xv, yv = pixels_of(val_crops, VAL_CROPS)
    metrics = SegmentationMetrics(21)
    metrics.update(torch.from_numpy(mlp.predict(xv)), torch.from_numpy(yv))
    return {"object_accuracy": metrics.object_accuracy(), "mean_iou": metrics.mean_iou(),
            "train_pixels": int(len(pick)), "val_pixels": int(len(yv))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="*", default=list(ARMS), help=f"arms to run, of: {', '.join(ARMS)}")
    parser.add_argument("--max-crops", type=int, default=0, help="cap every arm's budget (0: each arm's own)")
    args = parser.parse_args()
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; valid arms are: {', '.join(ARMS)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    root = voc_root(get_preset("cpu"))
    results = _load()
    if results.get("pixel_classifier") is None:
        results["pixel_classifier"] = pixel_classifier(root)
        print("pixel classifier", results["pixel_classifier"], flush=True)
        _save(results)
    if results.get("baselines") is None:
        results["baselines"] = baselines(root)
        _save(results)
    for name in args.arms:
        spec = ARMS[name] if not args.max_crops else replace_budget(ARMS[name], args.max_crops)
        run_arm(name, spec, results, root)


def replace_budget(spec: dict, cap: int) -> dict:
    return {**spec, "max_crops": min(spec["max_crops"], cap)}


if __name__ == "__main__":
    main()
