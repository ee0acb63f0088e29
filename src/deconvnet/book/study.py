"""The learning study's results, read back: what ``benchmarks/learning.py`` measured, with intervals.

The study trains stage 1 with one design lever changed at a time and scores each arm on val stage-1 crops
after 500, 1,000, 2,000 ... crops (appendix "How much training does DeconvNet need?"). Its result file keeps
each point's per-crop confusion matrices in a sparse form (``sparse`` / ``dense``), so that every number read
from it comes with a bootstrap interval over the val crops (``intervals``).

Used by the study's appendix page and by chapter 4's table of what the small presets change, and why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deconvnet.infer.intervals import interval

STUDY = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "learning.json"
MEASURES = ("object_accuracy", "mean_iou")


def sparse(matrices) -> list:
    """Per-crop confusion matrices as ``[[i, j, count], ...]`` lists: a few entries each, for the bootstrap."""
    return [[[int(i), int(j), int(m[i, j])] for i, j in zip(*np.nonzero(m), strict=True)] for m in matrices]


def dense(entries: list, classes: int = 21) -> list[np.ndarray]:
    """The inverse of ``sparse``: ``(C, C)`` matrices, one per crop."""
    out = []
    for crop in entries:
        m = np.zeros((classes, classes), np.int64)
        for i, j, n in crop:
            m[i, j] = n
        out.append(m)
    return out


def load_study(path: Path = STUDY) -> dict:
    """The study's result file; a clear error if the study has not been run on this checkout."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/learning.py` to measure it")
    return json.loads(path.read_text())


def scored(entry: dict, resamples: int = 400) -> dict:
    """Object accuracy and mean IoU of one study point or baseline, each ``{"value", "low", "high"}``."""
    mats = dense(entry["per_crop"])
    return {how: interval(mats, how, resamples=resamples) for how in MEASURES}


def point(study: dict, arm: str, crops: int) -> dict | None:
    """The point of ``arm`` after ``crops`` crops, with its intervals and speed; None if not measured."""
    for p in study["arms"].get(arm, {}).get("points", []):
        if p["crops"] == crops:
            return {**scored(p), "crops": crops, "crops_per_second": p["crops_per_second"]}
    return None


def last_point(study: dict, arm: str) -> dict | None:
    """The arm's largest measured point (its budget)."""
    points = study["arms"].get(arm, {}).get("points", [])
    return point(study, arm, max(p["crops"] for p in points)) if points else None


def describe(p: dict | None, how: str = "object_accuracy") -> str:
    """``"62% [58%, 66%]"`` for a point's measure, or ``"not measured"``."""
    if p is None:
        return "not measured"
    v = p[how]
    return f"{v['value']:.0%} [{v['low']:.0%}, {v['high']:.0%}]"


def _crops(tc) -> str:
    return f"{tc.iterations:,} steps x {tc.global_batch} = {tc.iterations * tc.global_batch:,} crops"


def _drops(cfg) -> int:
    """How many times a stage's learning rate drops (``StepLR``: after every ``lr_step`` steps)."""
    return (cfg.iterations - 1) // cfg.lr_step


def _low_share(cfg) -> float:
    """The share of a stage's steps after its first drop of the learning rate."""
    return max(0.0, 1 - cfg.lr_step / cfg.iterations)


def _start(m) -> str:
    return "ImageNet VGG16" if m.pretrained else "random (Gaussian)"


def preset_changes(preset, paper, study: dict) -> list[dict]:
    """Chapter 4's table: each way ``preset`` differs from ``paper``, why, and the study's number for it."""
    at = {arm: last_point(study, arm) for arm in study.get("arms", {})}
    speed = {arm: f"{p['crops_per_second']:.1f} crops/s" for arm, p in at.items() if p}

    def evidence(*arms: str) -> str:
        """Each arm's "what" at the largest budget all of them reached, so the numbers compare."""
        arms = [a for a in arms if at.get(a)]
        if not arms:
            return "not measured"
        budgets = set.intersection(*({p["crops"] for p in study["arms"][a]["points"]} for a in arms))
        crops = max(budgets) if budgets else None
        return "; ".join(f"`{a}`: what {describe(point(study, a, crops) if crops else at[a])} after "
                         f"{crops or at[a]['crops']:,} crops, {speed[a]}" for a in arms)

    m, pm = preset.model, paper.model
    rows = [
        ("crop side (px)", pm.input_size, m.input_size,
         "a full-width network's cost per crop grows with the crop's area; a smaller crop keeps ImageNet's "
         "features at a fraction of the paper's cost", evidence("imagenet64", "imagenet96")),
        ("fc6 / fc6-deconv kernel", pm.fc_kernel, m.fc_kernel,
         "fc6 covers the whole pool5 map of a crop (crop side / 32), as the paper's 7x7 does at 224", "-"),
        ("width (channel multiplier)", pm.width, m.width,
         "ImageNet's weights exist only at full width; narrower networks from random weights learn slower",
         evidence("scratch128", "scratch96-w3/8", "imagenet64")),
        ("encoder starts from", _start(pm), _start(m),
         "what the paper starts from, and the study's strongest lever", evidence("imagenet64", "scratch128")),
        ("decoder's 3x3 deconvolutions start", pm.decoder_init, m.decoder_init,
         "a spread start lets fc6-deconv's class evidence reach every pixel from the first step",
         evidence("imagenet64", "imagenet64-spread")),
        ("optimiser", paper.stage1.optimizer, preset.stage1.optimizer, "the study's faster learner",
         evidence("imagenet64", "imagenet64-adam")),
        ("encoder during training", "fine-tuned" if not paper.stage1.freeze_encoder else "frozen",
         "fine-tuned" if not preset.stage1.freeze_encoder else "frozen", "frozen skips the encoder's backward pass",
         evidence("imagenet64", "imagenet64-frozen")),
        ("learning rate", paper.stage1.lr, preset.stage1.lr, "the study's better rate",
         evidence("imagenet64", "imagenet64-lr0.001", "imagenet64-adam")),
        ("stage 0: fc6 and fc7 learn to name objects", "VGG16's own, trained on ImageNet",
         # no stage 0 (the paper preset): no row; chapter 4 says its fc6 and fc7 then start from the Gaussian
         "VGG16's own, trained on ImageNet" if preset.pretrain is None
         else f"{_crops(preset.pretrain)} at lr {preset.pretrain.lr:g}",
         "VGG16's fc6 and fc7 do not ship offline; a short classification stage on stage-1 crops trains new ones "
         "(at lr 0.01 they diverged)", evidence("imagenet64", "imagenet64-stage0", "imagenet64-stage0-lr0.001")),
        ("stage 1", _crops(paper.stage1), _crops(preset.stage1),
         "what two CPU cores train in minutes", evidence("imagenet64")),
        ("stage 2", _crops(paper.stage2), _crops(preset.stage2), "as stage 1", evidence("imagenet64")),
        ("crops per step", paper.stage1.global_batch, preset.stage1.global_batch,
         "the study's batch: every arm trains with it; at a fixed number of crops, more steps",
         evidence("imagenet64-b4", "imagenet64", "imagenet64-b32")),
        ("learning rate x0.1 every (steps, stage 1 / 2)", f"{paper.stage1.lr_step:,} / {paper.stage2.lr_step:,}",
         f"{preset.stage1.lr_step:,} / {preset.stage2.lr_step:,}",
         f"{_drops(preset.stage1)} / {_drops(preset.stage2)} drops, for the last {_low_share(preset.stage1):.0%} / "
         f"{_low_share(preset.stage2):.0%} of the steps (the paper: {_drops(paper.stage1)} / {_drops(paper.stage2)}), "
         "so both stages end at a low rate as the paper's do; not varied in the study", "-"),
        ("train / val scenes", f"{paper.data.train_images:,} / {paper.data.val_images:,} at {paper.data.image_size} px",
         f"{preset.data.train_images:,} / {preset.data.val_images:,} at {preset.data.image_size} px",
         "SynthVOC scenes; fewer and smaller, so proposals and whole-image validation fit the budget", "-"),
    ]
    return [{"what": w, "the paper": str(a), "this preset": str(b), "why": why, "study": ev}
            for w, a, b, why, ev in rows if str(a) != str(b)]
