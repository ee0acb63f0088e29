"""Trained models on demand: "the stage-2 DeconvNet of this configuration" from disk, or trained now.

A model is found under ``runs/<name>/<recipe>-stage<k>-<key>/final.pt``, where ``key`` hashes everything
that made it (model, data and training configs, the stage it started from, the seed and the training code;
see ``checkpoint.cache_key``). Change any of these and the key changes, so a stale model is never reused;
an interrupted training resumes from its ``last.pt``.

Recipes (paper Sec. 4.2 and the ablations of chapter 4):

* ``two_stage``   - stage 1 on ground-truth-centred crops, then stage 2 on proposal windows (the paper);
* ``stage2_only`` - proposal windows in both stages, same steps and schedule (what most ports do);
* ``no_bn``       - the paper's two stages without batch normalisation.

Where a preset has a stage 0 (``Preset.pretrain``; the CPU presets), every recipe and FCN-8s start from one
classifier trained on stage-1 crops (``shape_pretraining``), cached under ``runs/<name>/pretrain-<key>/``, as
every recipe of the paper starts from one ImageNet VGG16 classifier. With ``ModelConfig.pretrained`` that
classifier's encoder starts from ImageNet VGG16, so stage 0 trains the fc6 and fc7 that do not ship offline.

Data: ``datasets.voc_root(preset)``, the preset's generated SynthVOC tree or the real VOC 2012 tree that
``--voc-root`` names; a real tree's identity enters every cache key (``datasets.data_key_parts``).

Used in chapters 3-7.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from deconvnet.config import Preset, TrainConfig
from deconvnet.data.datasets import DATA, data_key_parts, exclusive, real_voc, voc_root
from deconvnet.files import work_root
from deconvnet.model.network import build_model
from deconvnet.model.pretrained import load_vgg16_encoder
from deconvnet.train.checkpoint import cache_key
from deconvnet.train.engine import load_trained, train
from deconvnet.train.stage0 import ObjectCrops, ShapeClassifier, transfer_pretrained

RUNS_ENV = "DECONVNET_RUNS_DIR"  # another folder for trained models (e.g. a test's temporary one)
RUNS = Path(os.environ.get(RUNS_ENV) or work_root() / "runs")  # trained models, logs (git-ignored)
RECIPES = ("two_stage", "stage2_only", "no_bn")
PRETRAIN = "pretrain"  # run-folder prefix of stage 0, the shape classifier
# TrainConfig fields that change the bookkeeping of a run, never its weights: left out of the cache key.
BOOKKEEPING = ("workers", "log_every", "val_every", "val_images", "checkpoint_every")
WORKERS_ENV = "DECONVNET_WORKERS"  # overrides TrainConfig.workers for this machine; results do not change


@dataclass(frozen=True)
class Trained:
    """A trained model and where it came from."""

    model: torch.nn.Module
    run_dir: Path
    history: dict  # {"train": [{step, loss, lr, seconds}], "val": [{step, mean_iou, ...}]}
    reused: bool  # True when loaded from disk, False when trained by this call


def _samples(preset: Preset, stage: int, root: Path, seed: int, sbd: Path | None = None):
    from deconvnet.data import Stage1Crops, Stage2Windows, VOCSegmentation, cached_proposals

    train_set = VOCSegmentation(root, "train", sbd_root=sbd)
    crop = preset.model.input_size
    if stage == 0:  # classification: stage 1's crops, one class each; scored on val crops, not val images
        return ObjectCrops(Stage1Crops(train_set, preset.data, crop, seed=seed)), None
    if stage == 1:
        samples = Stage1Crops(train_set, preset.data, crop, seed=seed)
    else:
        samples = Stage2Windows(train_set, cached_proposals(train_set, preset.data), preset.data, crop, seed=seed)
    return samples, VOCSegmentation(root, "val")


def _plan(preset: Preset, recipe: str) -> list[tuple[int, TrainConfig]]:
    """The stages a recipe trains, as (sample kind, config).

    Every recipe runs the same two segments with the same steps and learning-rate drops; ``stage2_only``
    only swaps stage 1's centred crops for proposal windows, so the comparison changes the samples alone.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes are: {', '.join(RECIPES)}")
    first = 2 if recipe == "stage2_only" else 1
    return [(first, preset.stage1), (2, preset.stage2)]


def trained_model(preset: Preset, recipe: str = "two_stage", stage: int = 2, kind: str = "deconvnet", *,
                  progress: bool | None = None, runs: Path = RUNS, data_root: Path = DATA) -> Trained:
    """The ``kind`` model after ``stage`` of ``recipe`` for ``preset``: loaded if cached, else trained.

    Stage 2 starts from the stage-1 weights (training stage 1 first if needed), as in the paper.
    """
    plan = _plan(preset, recipe)
    if not 1 <= stage <= len(plan):
        raise ValueError(f"recipe {recipe!r} has stages 1..{len(plan)}, not {stage}")
    model_cfg = dataclasses.replace(preset.model, batch_norm=recipe != "no_bn")
    root = voc_root(preset, data_root, progress)
    real = real_voc()
    data_key = data_key_parts(real)
    parent, result = None, None
    if preset.pretrain is not None:
        parent = pretrained_classifier(preset, progress=progress, runs=runs, data_root=data_root).run_dir
    for k, (samples_kind, cfg) in enumerate(plan[:stage], start=1):
        decisive = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in BOOKKEEPING}
        key = cache_key(kind=kind, model=model_cfg, data=preset.data, samples=samples_kind, train=decisive,
                        parent=parent and parent.name, seed=preset.run.seed, **data_key)  # the name holds its key
        run_dir = runs / preset.name / f"{recipe}-stage{k}-{key}"
        with exclusive(run_dir.with_name(f".{run_dir.name}.lock")):
            result = _train_or_load(kind, model_cfg, samples_kind, cfg, run_dir, parent, preset, root, progress,
                                    real and real.sbd)
        parent = run_dir
    return result


def pretrained_classifier(preset: Preset, *, progress: bool | None = None, runs: Path = RUNS,
                          data_root: Path = DATA) -> Trained:
    """Stage 0 of ``preset``: the ``shape_pretraining.ShapeClassifier`` its networks start from (chapter 4).

    Always with BN, like the networks of two of the three recipes; ``no_bn`` gets its BNs folded in. Its
    encoder starts from ImageNet VGG16 when ``preset.model.pretrained``, from the Gaussian otherwise.
    """
    if preset.pretrain is None:
        raise ValueError(f"preset {preset.name!r} has no stage 0 (Preset.pretrain is None): its networks start "
                         "from ImageNet VGG16's encoder or from random weights")
    model_cfg = dataclasses.replace(preset.model, batch_norm=True)
    root = voc_root(preset, data_root, progress)
    real = real_voc()
    decisive = {k: v for k, v in dataclasses.asdict(preset.pretrain).items() if k not in BOOKKEEPING}
    key = cache_key(kind="classifier", model=model_cfg, data=preset.data, samples="objects", train=decisive,
                    parent=None, seed=preset.run.seed, **data_key_parts(real))
    run_dir = runs / preset.name / f"{PRETRAIN}-{key}"
    with exclusive(run_dir.with_name(f".{run_dir.name}.lock")):
        return _train_or_load("classifier", model_cfg, 0, preset.pretrain, run_dir, None, preset, root, progress,
                              real and real.sbd)


def _initialise(model: torch.nn.Module, parent: Path) -> None:
    """Start ``model`` from the previous stage's weights, or from stage 0's classifier."""
    if parent.name.startswith(PRETRAIN):
        classifier = ShapeClassifier(dataclasses.replace(model.cfg, batch_norm=True))
        load_trained(classifier, parent / "final.pt")
        transfer_pretrained(classifier, model)
    else:
        load_trained(model, parent / "final.pt")


def _train_or_load(kind, model_cfg, samples_kind, cfg, run_dir: Path, parent: Path | None, preset: Preset,
                   root: Path, progress, sbd: Path | None = None) -> Trained:
    torch.manual_seed(preset.run.seed)
    model = ShapeClassifier(model_cfg) if kind == "classifier" else build_model(model_cfg, kind)
    if (run_dir / "final.pt").is_file():
        return Trained(model.eval(), run_dir, load_trained(model, run_dir / "final.pt"), reused=True)
    if kind == "classifier" and model_cfg.pretrained:  # ImageNet's encoder under a new fc6, fc7 and fc8
        load_vgg16_encoder(model)
    if parent is not None:
        _initialise(model, parent)
    samples, val_set = _samples(preset, samples_kind, root, preset.run.seed, sbd)
    if os.environ.get(WORKERS_ENV):
        cfg = dataclasses.replace(cfg, workers=int(os.environ[WORKERS_ENV]))
    history = train(model, samples, cfg, run_dir, val_set=val_set, seed=preset.run.seed,
                    device=preset.run.torch_device(), progress=bool(progress))
    # A finished run is served from final.pt alone; last.pt (weights, momentum, RNG: twice final.pt's size) only
    # resumes an interrupted run, and kept it would treble the disk a preset's runs take (quick: 7.5 GB, not 2.5)
    (run_dir / "last.pt").unlink(missing_ok=True)
    return Trained(model.eval(), run_dir, history, reused=False)


def needed_runs(preset, kinds, runs=None) -> list[tuple[str, object]]:
    """``(what, run folder)`` of every model ``trained_model(preset, kind=k)`` loads or trains, k in ``kinds``.

    Mirrors ``trained_model`` for the default recipe (two_stage, stage 2); a test checks the two agree.
    """
    import dataclasses

    runs = RUNS if runs is None else runs
    model_cfg = dataclasses.replace(preset.model, batch_norm=True)  # two_stage keeps BN
    data_key = data_key_parts(real_voc())  # a real VOC tree's identity, as trained_model's

    def decisive(cfg) -> dict:
        return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in BOOKKEEPING}

    found, start = [], None
    if preset.pretrain is not None:
        key = cache_key(kind="classifier", model=model_cfg, data=preset.data, samples="objects",
                        train=decisive(preset.pretrain), parent=None, seed=preset.run.seed, **data_key)
        start = runs / preset.name / f"{PRETRAIN}-{key}"
        found.append(("the stage-0 shape classifier", start))
    for kind in kinds:
        parent = start
        for k, (samples, cfg) in enumerate(_plan(preset, "two_stage"), start=1):
            key = cache_key(kind=kind, model=model_cfg, data=preset.data, samples=samples, train=decisive(cfg),
                            parent=parent and parent.name, seed=preset.run.seed, **data_key)
            parent = runs / preset.name / f"two_stage-stage{k}-{key}"
            found.append((f"{kind} stage {k}", parent))
    return found
