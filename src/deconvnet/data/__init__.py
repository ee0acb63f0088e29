"""Data for the book: the generated SynthVOC scenes, the one VOC reader, proposals, the two stages' samples.

``make_data(cfg, root)`` is what ``python -m deconvnet make-data`` and the chapters call: it writes (or
reuses) the tree and caches its selective-search proposals. Modules:

* ``synthvoc``  - the scene generator, writing ``VOCdevkit/VOC2012`` (``shapes`` holds its 20 classes)
* ``voc``       - the reader for generated and real VOC 2012 (``sbd`` adds SBD's labels), the colour map
* ``proposals`` - selective search, cached per image
* ``samples``   - stage-1 crops and stage-2 windows as torch Datasets
"""

from __future__ import annotations

import time
from pathlib import Path

from deconvnet.config import DataConfig
from deconvnet.data.proposals import cached_proposals, proposal_recall, selective_search
from deconvnet.data.samples import Stage1Crops, Stage2Windows, context_window
from deconvnet.data.synthvoc import make_synthvoc
from deconvnet.data.voc import (
    METADATA,
    VOC_CLASSES,
    VOID,
    VOCSegmentation,
    class_and_scale_stats,
    tree_base,
    voc_colormap,
)

__all__ = [
    "VOC_CLASSES", "VOID", "Stage1Crops", "Stage2Windows", "VOCSegmentation", "cached_proposals",
    "class_and_scale_stats", "context_window", "make_data", "make_synthvoc", "proposal_recall",
    "selective_search", "voc_colormap",
]


def make_data(cfg: DataConfig, root: str | Path, *, proposals: bool = True, workers: int = 0,
              progress: bool | None = None) -> dict:
    """Write or reuse the SynthVOC tree under ``root`` and cache proposals for its train and val splits.

    ``root`` is the folder that holds (or will hold) ``VOCdevkit/``; its ``VOCdevkit`` or ``VOC2012`` folder
    is taken to mean the same tree, never a second one nested inside it. A reused tree is checked against its
    splits (every listed image, mask and split file present) and refused, naming the folder to delete, if it
    lost files. Returns ``{"voc_root": Path, "scenes_s": float, "proposals_s": float}`` (seconds spent; ~0
    when all was reused). The paper's data pipeline (Sec. 6.1) in one call; used by the CLI and chapter 4.
    """
    root = tree_base(root)
    check_root(root)
    start = time.perf_counter()
    voc_root = make_synthvoc(cfg, root, workers=workers, progress=progress)
    scenes_s = time.perf_counter() - start
    splits = {split: _checked_split(voc_root, split, root) for split in ("train", "val")}
    if proposals:
        for dataset in splits.values():
            cached_proposals(dataset, cfg, workers=workers, progress=progress)
    return {"voc_root": voc_root, "scenes_s": scenes_s, "proposals_s": time.perf_counter() - start - scenes_s}


def check_root(root: Path) -> None:
    """Refuse a root that is, or lies under, a file, before anything is written (one clear line)."""
    for path in (root, *root.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                where = "is a file" if path == root else f"lies under {path}, which is a file"
                raise NotADirectoryError(f"data root {root} {where}, not a folder; choose a folder for the "
                                         f"generated tree (make-data --root FOLDER)")
            return


def _checked_split(voc_root: Path, split: str, root: Path) -> VOCSegmentation:
    """The split as a dataset; a generated tree that lost files since it was made is named for deletion."""
    try:
        return VOCSegmentation(voc_root, split)
    except (FileNotFoundError, ValueError) as err:
        split_file = voc_root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not (voc_root / METADATA).is_file() or not split_file.is_file():
            raise  # not generated, or a missing split file, which the reader's message already covers
        raise FileNotFoundError(
            f"the generated tree {voc_root} does not match its record {METADATA} ({err}). Delete {voc_root.parent} "
            f"and run `python -m deconvnet make-data --root {root}` to make it again") from None
