"""The data every chapter reads: the preset's generated SynthVOC tree, or a real PASCAL VOC 2012 tree.

* ``voc_root(preset)`` - the tree the chapters open: the preset's SynthVOC tree (``data/synthvoc-<preset>/``,
  generated once), or the real VOC 2012 tree (with SBD's extra training labels) that ``DECONVNET_VOC_ROOT``
  (and ``DECONVNET_SBD_ROOT``) name, with the preset's proposals cached beside it;
* ``check_voc`` / ``use_voc`` - a real tree checked up front (every listed file of both splits), in one line
  that names the option, the file and what to do; ``use_voc`` is what ``--voc-root`` / ``--sbd-root`` do for
  ``book``, ``train``, ``segment`` and ``make-data``, so notebooks, which only call ``voc_root(preset)``,
  need no parameter of their own;
* ``data_identity`` - a real tree's identity (its splits' ids and file sizes), which enters every cache key
  (``pipeline.trained_model``), so a model trained on one dataset is never served for another.

Used by ``pipeline`` (chapters 3-7), the book runner and the CLI.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from deconvnet.config import Preset
from deconvnet.files import work_root

DATA = work_root() / "data"  # generated scenes and proposals, one tree per preset (git-ignored)
VOC_ENV = "DECONVNET_VOC_ROOT"  # a real VOC 2012 tree for every chapter and command (set by --voc-root)
SBD_ENV = "DECONVNET_SBD_ROOT"  # SBD's release, whose labels join VOC's train split (set by --sbd-root)


@contextlib.contextmanager
def exclusive(lock: Path):
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
        from deconvnet.data import VOCSegmentation

        return VOCSegmentation(self.voc, "train", sbd_root=self.sbd)

    def val_set(self):
        from deconvnet.data import VOCSegmentation

        return VOCSegmentation(self.voc, "val")


def check_voc(voc: str | Path, sbd: str | Path | None = None, *, voc_what: str = "--voc-root",
              sbd_what: str = "--sbd-root") -> RealVOC:
    """``voc`` (the folder above ``VOCdevkit``, ``VOCdevkit`` or ``VOC2012``) and ``sbd`` as a checked ``RealVOC``.

    Both splits are opened, so a missing split file, image or mask is refused now, in one line that names the
    option, the file and what to do, not in the middle of a chapter. ``voc_what`` / ``sbd_what`` name where the
    paths came from (an option or an environment variable).
    """
    from deconvnet.data import VOCSegmentation
    from deconvnet.data.sbd import _sbd_folder
    from deconvnet.data.voc import tree_base

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
    from deconvnet.data.voc import METADATA

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
    from deconvnet.data import make_data

    real = real_voc()
    if real is not None:
        return voc_proposals(preset, real, progress=progress)
    folder = data_root / f"synthvoc-{preset.name}"
    with exclusive(data_root / f".synthvoc-{preset.name}.lock"):
        return make_data(preset.data, folder, progress=progress)["voc_root"]


def voc_proposals(preset: Preset, real: RealVOC, *, workers: int = 0, progress: bool | None = None) -> Path:
    """Selective search for every train (SBD's included) and val image of a real tree, at the preset's
    settings, cached beside the data (``proposals/`` next to ``VOCdevkit``); returns the ``VOC2012`` folder.

    What ``make-data`` does for a generated tree; computed once, then read from disk.
    """
    from deconvnet.data import cached_proposals
    from deconvnet.data.proposals import proposal_dir
    from deconvnet.files import check_folder

    datasets = real.val_set(), real.train_set()
    folder = proposal_dir(datasets[0], preset.data)
    if not _missing(folder, datasets):
        return real.voc  # all cached: a read-only copy of the data with its proposals is fine
    check_folder(folder, f"the proposals' folder {folder}",
                 "proposals are cached beside the VOC tree: make that folder writable, or copy the tree to a "
                 "place you can write to")
    with exclusive(folder.with_name(f".{folder.name}.lock")):
        for dataset in datasets:
            cached_proposals(dataset, preset.data, workers=workers, progress=progress)
    return real.voc


def missing_proposals(preset: Preset, real: RealVOC) -> int:
    """How many train (SBD's included) and val images of a real tree have no cached proposals for ``preset``."""
    from deconvnet.data.proposals import proposal_dir

    datasets = real.val_set(), real.train_set()
    return _missing(proposal_dir(datasets[0], preset.data), datasets)


def _missing(folder: Path, datasets) -> int:
    """Images of ``datasets`` without a cached proposal file in ``folder``."""
    return sum(not (folder / f"{image_id}.npy").is_file() for dataset in datasets for image_id in set(dataset.ids))


def data_key_parts(real: RealVOC | None) -> dict:
    """The cache key's part for the data beyond ``DataConfig``: ``{"dataset": identity}`` for a real tree.

    Empty for SynthVOC, so the keys of generated-data models stay as they were and a real tree's never match
    them. Shared with ``__main__.needed_runs``.
    """
    identity = data_identity(real)
    return {} if identity is None else {"dataset": identity}
