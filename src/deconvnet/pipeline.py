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

Data: the preset's generated SynthVOC tree (``data/synthvoc-<preset>/``), or a real PASCAL VOC 2012 tree
(with SBD's extra training labels) when ``DECONVNET_VOC_ROOT`` (and ``DECONVNET_SBD_ROOT``) name one. The
book's runner and the CLI set them from ``--voc-root`` / ``--sbd-root`` (``use_voc``), so the chapters, whose
notebooks only call ``voc_root(preset)``, read the real tree without a parameter of their own. A real tree's
identity (its splits' ids and file sizes) enters every cache key, so a model trained on one dataset is never
served for another.

Used in chapters 3-7.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import cache_key
from .config import Preset, TrainConfig
from .model import build_model
from .pretrained import load_vgg16_encoder
from .shape_pretraining import ObjectCrops, ShapeClassifier, transfer_pretrained
from .train import load_trained, train

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"  # generated scenes and proposals, one tree per preset (git-ignored)
RUNS_ENV = "DECONVNET_RUNS_DIR"  # another folder for trained models (e.g. a test's temporary one)
RUNS = Path(os.environ.get(RUNS_ENV) or ROOT / "runs")  # trained models, logs (git-ignored)
VOC_ENV = "DECONVNET_VOC_ROOT"  # a real VOC 2012 tree for every chapter and command (set by --voc-root)
SBD_ENV = "DECONVNET_SBD_ROOT"  # SBD's release, whose labels join VOC's train split (set by --sbd-root)
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


@contextlib.contextmanager
def _exclusive(lock: Path):
    """One process at a time (e.g. two notebooks under pytest-xdist asking for the same model).

    Under torchrun the processes of one run must work together, so there is no lock.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RealVOC:
    """A real VOC 2012 tree, checked: its ``VOC2012`` folder and SBD's ``dataset`` folder (or None)."""

    voc: Path
    sbd: Path | None

    def train_set(self):
        from .data import VOCSegmentation

        return VOCSegmentation(self.voc, "train", sbd_root=self.sbd)

    def val_set(self):
        from .data import VOCSegmentation

        return VOCSegmentation(self.voc, "val")


def check_voc(voc: str | Path, sbd: str | Path | None = None, *, voc_what: str = "--voc-root",
              sbd_what: str = "--sbd-root") -> RealVOC:
    """``voc`` (the folder above ``VOCdevkit``, ``VOCdevkit`` or ``VOC2012``) and ``sbd`` as a checked ``RealVOC``.

    Both splits are opened, so a missing split file, image or mask is refused now, in one line that names the
    option, the file and what to do, not in the middle of a chapter. ``voc_what`` / ``sbd_what`` name where the
    paths came from (an option or an environment variable).
    """
    from .data import VOCSegmentation
    from .data.sbd import _sbd_folder
    from .data.voc import tree_base

    voc_path = Path(voc).expanduser()
    if not voc_path.is_dir():
        what = "does not exist" if not voc_path.exists() else "is a file"
        raise FileNotFoundError(f"{voc_what} {voc} {what}; give the folder that holds VOC 2012 (its VOCdevkit "
                                f"folder, the folder above it, or VOCdevkit/VOC2012)")
    base = tree_base(voc_path)
    found = None
    for candidate in (base / "VOCdevkit" / "VOC2012", voc_path / "VOC2012", voc_path):
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            found = candidate
            break
    if found is None:
        raise FileNotFoundError(
            f"{voc_what} {voc} is not a VOC 2012 tree: found no ImageSets/Segmentation in it, in VOCdevkit/VOC2012 "
            f"or in VOC2012 under it; give the folder that holds VOCdevkit (as the devkit unpacks) or VOC2012 itself")
    sbd_path = None
    if sbd is not None:
        sbd_path = Path(sbd).expanduser()
        try:
            sbd_path = _sbd_folder(sbd_path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{sbd_what} {sbd} is not an SBD release: expected its train.txt in it, in dataset/ or in "
                f"benchmark_RELEASE/dataset/ under it; give the release's benchmark_RELEASE or dataset folder"
            ) from None
    try:  # every listed file of both splits, with SBD's labels in train
        VOCSegmentation(found, "train", sbd_root=sbd_path)
        VOCSegmentation(found, "val")
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"{voc_what} {voc}: {err}") from None
    return RealVOC(found.absolute(), sbd_path and sbd_path.absolute())


def real_voc() -> RealVOC | None:
    """The real tree that ``DECONVNET_VOC_ROOT`` / ``DECONVNET_SBD_ROOT`` name, checked; None for SynthVOC."""
    voc = os.environ.get(VOC_ENV)
    if not voc:
        if os.environ.get(SBD_ENV):
            raise ValueError(f"{SBD_ENV} is set but {VOC_ENV} is not: SBD only adds labels to a VOC 2012 tree; "
                             f"give --voc-root too, or unset {SBD_ENV}")
        return None
    return _checked_from_env(voc, os.environ.get(SBD_ENV) or None)


@functools.lru_cache(maxsize=4)
def _checked_from_env(voc: str, sbd: str | None) -> RealVOC:
    """``check_voc`` once per process and tree: a chapter asks for its tree many times."""
    return check_voc(voc, sbd, voc_what=VOC_ENV, sbd_what=SBD_ENV)


def use_voc(voc: str | Path | None, sbd: str | Path | None = None) -> RealVOC | None:
    """Make every later ``voc_root`` (here and in the processes this one starts) read this real tree.

    Checked first (``check_voc``); ``voc=None`` with ``sbd=None`` changes nothing. What ``--voc-root`` and
    ``--sbd-root`` do for ``book``, ``train``, ``segment`` and ``make-data``.
    """
    if voc is None:
        if sbd is not None:
            raise ValueError(f"--sbd-root {sbd} needs --voc-root: SBD only adds labels to a VOC 2012 tree")
        return real_voc()
    real = check_voc(voc, sbd)
    os.environ[VOC_ENV] = str(real.voc.absolute())
    if real.sbd is None:
        os.environ.pop(SBD_ENV, None)
    else:
        os.environ[SBD_ENV] = str(real.sbd.absolute())
    return real


@functools.lru_cache(maxsize=4)
def data_identity(real: RealVOC | None) -> dict | None:
    """What a real tree is, for cache keys: its name, split sizes and a hash of its ids and file sizes.

    The ids and the byte sizes of every image and mask of both splits (SBD's included) change with any other
    copy or version of the data, while a copy of the same files elsewhere keeps the identity (no paths, no
    dates). None for the generated SynthVOC, whose ``DataConfig`` already says everything.
    """
    if real is None:
        return None
    digest = hashlib.sha256()
    sizes = {}
    for split, dataset in (("train", real.train_set()), ("val", real.val_set())):
        sizes[split] = len(dataset)
        for i, image_id in enumerate(dataset.ids):
            if dataset._sbd_only(image_id):
                labels = [dataset.sbd / "cls" / f"{image_id}.mat", dataset.sbd / "inst" / f"{image_id}.mat"]
            else:
                labels = [dataset.root / f / f"{image_id}.png" for f in ("SegmentationClass", "SegmentationObject")]
            files = [dataset.image_path(i), *labels]
            digest.update(f"{split}/{image_id}:{','.join(str(f.stat().st_size) for f in files)}\n".encode())
    return {"dataset": describe_data(real, short=True), **sizes, "files": digest.hexdigest()[:16]}


def describe_data(real: RealVOC | None, short: bool = False) -> str:
    """The dataset in words, for provenance notes: no paths (they are this machine's)."""
    from .data.voc import METADATA

    if real is None:
        return "SynthVOC (generated)"
    name = "SynthVOC tree" if (real.voc / METADATA).is_file() else "PASCAL VOC 2012"
    name += " + SBD" if real.sbd is not None else ""
    if short:
        return name
    train, val = real.train_set(), real.val_set()
    return f"{name} ({len(train):,} train, {len(val):,} val images)"


def voc_root(preset: Preset, data_root: Path = DATA, progress: bool | None = None) -> Path:
    """The tree the chapters read, with the preset's proposals cached: the real one ``DECONVNET_VOC_ROOT``
    names, else the preset's generated SynthVOC tree (made once, then reused)."""
    from .data import make_data

    real = real_voc()
    if real is not None:
        return voc_proposals(preset, real, progress=progress)
    folder = data_root / f"synthvoc-{preset.name}"
    with _exclusive(data_root / f".synthvoc-{preset.name}.lock"):
        return make_data(preset.data, folder, progress=progress)["voc_root"]


def voc_proposals(preset: Preset, real: RealVOC, *, workers: int = 0, progress: bool | None = None) -> Path:
    """Selective search for every train (SBD's included) and val image of a real tree, at the preset's
    settings, cached beside the data (``proposals/`` next to ``VOCdevkit``); returns the ``VOC2012`` folder.

    What ``make-data`` does for a generated tree; computed once, then read from disk.
    """
    from .data import cached_proposals
    from .data.proposals import proposal_dir
    from .files import check_folder

    datasets = real.val_set(), real.train_set()
    folder = proposal_dir(datasets[0], preset.data)
    if not _missing(folder, datasets):
        return real.voc  # all cached: a read-only copy of the data with its proposals is fine
    check_folder(folder, f"the proposals' folder {folder}",
                 "proposals are cached beside the VOC tree: make that folder writable, or copy the tree to a "
                 "place you can write to")
    with _exclusive(folder.with_name(f".{folder.name}.lock")):
        for dataset in datasets:
            cached_proposals(dataset, preset.data, workers=workers, progress=progress)
    return real.voc


def missing_proposals(preset: Preset, real: RealVOC) -> int:
    """How many train (SBD's included) and val images of a real tree have no cached proposals for ``preset``."""
    from .data.proposals import proposal_dir

    datasets = real.val_set(), real.train_set()
    return _missing(proposal_dir(datasets[0], preset.data), datasets)


def _missing(folder: Path, datasets) -> int:
    """Images of ``datasets`` without a cached proposal file in ``folder``."""
    return sum(not (folder / f"{image_id}.npy").is_file() for dataset in datasets for image_id in set(dataset.ids))


def _datasets(preset: Preset, stage: int, root: Path, seed: int, sbd: Path | None = None):
    from .data import Stage1Crops, Stage2Windows, VOCSegmentation, cached_proposals

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
        with _exclusive(run_dir.with_name(f".{run_dir.name}.lock")):
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
    with _exclusive(run_dir.with_name(f".{run_dir.name}.lock")):
        return _train_or_load("classifier", model_cfg, 0, preset.pretrain, run_dir, None, preset, root, progress,
                              real and real.sbd)


def data_key_parts(real: RealVOC | None) -> dict:
    """The cache key's part for the data beyond ``DataConfig``: ``{"dataset": identity}`` for a real tree.

    Empty for SynthVOC, so the keys of generated-data models stay as they were and a real tree's never match
    them. Shared with ``__main__.needed_runs``.
    """
    identity = data_identity(real)
    return {} if identity is None else {"dataset": identity}


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
    if kind == "classifier" and model_cfg.pretrained:  # ImageNet's encoder under a new fc6, fc7 and fc8
        load_vgg16_encoder(model)
    if (run_dir / "final.pt").is_file():
        return Trained(model.eval(), run_dir, load_trained(model, run_dir / "final.pt"), reused=True)
    if parent is not None:
        _initialise(model, parent)
    samples, val_set = _datasets(preset, samples_kind, root, preset.run.seed, sbd)
    if os.environ.get(WORKERS_ENV):
        cfg = dataclasses.replace(cfg, workers=int(os.environ[WORKERS_ENV]))
    history = train(model, samples, cfg, run_dir, val_set=val_set, seed=preset.run.seed,
                    device=preset.run.torch_device(), progress=bool(progress))
    return Trained(model.eval(), run_dir, history, reused=False)
