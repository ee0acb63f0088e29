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

from ..config import DataConfig
from .proposals import cached_proposals, proposal_recall, selective_search
from .samples import Stage1Crops, Stage2Windows, context_window
from .synthvoc import make_synthvoc
from .voc import VOC_CLASSES, VOID, VOCSegmentation, class_and_scale_stats, voc_colormap

__all__ = [
    "VOC_CLASSES", "VOID", "Stage1Crops", "Stage2Windows", "VOCSegmentation", "cached_proposals",
    "class_and_scale_stats", "context_window", "make_data", "make_synthvoc", "proposal_recall",
    "selective_search", "voc_colormap",
]


def make_data(cfg: DataConfig, root: str | Path, *, proposals: bool = True, workers: int = 0,
              progress: bool | None = None) -> dict:
    """Write or reuse the SynthVOC tree under ``root`` and cache proposals for its train and val splits.

    Returns ``{"voc_root": Path, "scenes_s": float, "proposals_s": float}`` (seconds spent; ~0 when all was
    reused). The paper's data pipeline (Sec. 6.1) in one call; used by the CLI and chapter 4.
    """
    start = time.perf_counter()
    voc_root = make_synthvoc(cfg, root, workers=workers, progress=progress)
    scenes_s = time.perf_counter() - start
    if proposals:
        for split in ("train", "val"):
            cached_proposals(VOCSegmentation(voc_root, split), cfg, workers=workers, progress=progress)
    return {"voc_root": voc_root, "scenes_s": scenes_s, "proposals_s": time.perf_counter() - start - scenes_s}
