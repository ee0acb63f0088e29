"""Object proposals: selective search (Uijlings et al. 2013) from opencv-contrib, computed once and cached.

The paper takes ~2000 EdgeBoxes per image and keeps the top 50 at inference (Sec. 5.1, 6.1). OpenCV's
EdgeBoxes needs a trained edge model that cannot be fetched here, so we use OpenCV's selective search in its
"fast" mode: two colour spaces, two segmentation scales and two similarity mixes, ~0.4-1.5k boxes on our
images, ranked as the method prescribes (hierarchy level times a random factor). The random factor comes from
C's ``rand()``, which we seed before every image, so the ranking is deterministic.

Boxes are cached per image as ``<cache>/<image id>.npy`` ``(N, 4)`` float32 XYXY in image pixels.
Used in chapter 4 (stage-2 windows) and chapter 5 (instance-wise inference).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm  # the plain bar: notebooks capture stderr, and widgets need ipywidgets

from deconvnet.config import DataConfig
from deconvnet.data.voc import VOCSegmentation, _read_image

RANK_SEED = 0  # C rand() restarts here for every image, so selective search's ranking repeats


def _seed_c_rand(seed: int) -> None:
    libc = ctypes.CDLL("msvcrt") if sys.platform == "win32" else ctypes.CDLL(None)
    libc.srand(ctypes.c_uint(seed))


def selective_search(image: np.ndarray, mode: str = "fast", max_side: int = 320, max_boxes: int = 2000) -> np.ndarray:
    """Selective search boxes of an RGB image ``(H, W, 3)`` as ``(N, 4)`` float32 XYXY, best first.

    The image is shrunk so that its longer side is at most ``max_side`` (cost grows with the area); boxes
    come back in the original pixels, duplicates removed, at most ``max_boxes``. Paper Sec. 5.1; chapters 4-5.
    """
    if not hasattr(cv2, "ximgproc"):
        raise ImportError("cv2 has no ximgproc: selective search needs opencv-contrib-python-headless. Another "
                          "OpenCV wheel shadows it; run `pip install --force-reinstall --no-deps "
                          "opencv-contrib-python-headless`")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image
    if scale < 1:
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(small[..., ::-1]))  # OpenCV works in BGR
    {"fast": ss.switchToSelectiveSearchFast, "quality": ss.switchToSelectiveSearchQuality,
     "single": ss.switchToSingleStrategy}[mode]()
    _seed_c_rand(RANK_SEED)
    rects = ss.process().astype(np.float32)  # (N, 4) as x, y, w, h
    sx, sy = w / small.shape[1], h / small.shape[0]  # per axis: rounding the small size bends the ratio
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) * np.array([sx, sy, sx, sy])
    boxes = np.minimum(boxes, np.array([w, h, w, h], np.float32)).astype(np.float32)
    _, first = np.unique(boxes, axis=0, return_index=True)
    return np.ascontiguousarray(boxes[np.sort(first)][:max_boxes])  # (N, 4)


def proposal_dir(dataset: VOCSegmentation, cfg: DataConfig) -> Path:
    """Default cache folder: ``proposals/<method>`` next to the tree's ``VOCdevkit`` folder."""
    name = f"selective_search_{cfg.proposal_mode}_{cfg.proposal_side}px_{cfg.max_proposals}"
    return dataset.root.parent.parent / "proposals" / name


def _compute(job: tuple[Path, Path, str, int, int]) -> None:
    image_path, out, mode, side, max_boxes = job
    cv2.setNumThreads(1)  # one process per core already
    boxes = selective_search(_read_image(image_path), mode, side, max_boxes)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, boxes)
    os.replace(tmp, out)  # a killed run never leaves a half-written cache file


def cached_proposals(dataset: VOCSegmentation, cfg: DataConfig, cache_dir: str | Path | None = None, *,
                     workers: int = 0, progress: bool | None = None) -> list[np.ndarray]:
    """Selective search boxes for every image of ``dataset``, computed where missing, then read from disk.

    Returns one ``(N_i, 4)`` float32 XYXY array per image, in the dataset's order. ``workers`` processes
    compute missing ones (0: one per core). Paper Sec. 5.1, 6.1; chapters 4 (stage 2) and 5 (inference).
    """
    folder = Path(cache_dir) if cache_dir is not None else proposal_dir(dataset, cfg)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{image_id}.npy" for image_id in dataset.ids]
    jobs = [(dataset.image_path(i), p, cfg.proposal_mode, cfg.proposal_side, cfg.max_proposals)
            for i, p in enumerate(paths) if not p.is_file()]
    show = sys.stderr.isatty() if progress is None else progress
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    with tqdm(total=len(jobs), desc="selective search", unit="img", disable=not show or not jobs) as bar:
        if workers <= 1:
            for job in jobs:
                _compute(job)
                bar.update()
        else:
            # spawn, not fork: forked children can deadlock in their first cv2 call (see synthvoc._write_tree)
            with mp.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_compute, jobs, chunksize=2):
                    bar.update()
    return [np.load(p) for p in paths]


def proposal_recall(proposals: list[np.ndarray], gt_boxes: list[np.ndarray], top_k: int = 50,
                    iou: float = 0.5) -> float:
    """Fraction of ground-truth boxes that one of the first ``top_k`` proposals covers with IoU >= ``iou``.

    The paper segments the top 50 proposals per image (Sec. 5.1): an object none of them covers can only be
    found by the other windows' context. Used in chapters 4 and 5.
    """
    hit = total = 0
    for props, gt in zip(proposals, gt_boxes, strict=True):
        total += len(gt)
        if len(gt) and len(props):
            best = box_iou(torch.as_tensor(gt), torch.as_tensor(props[:top_k])).max(dim=1).values  # (G,)
            hit += int((best >= iou).sum())
    if total == 0:
        raise ValueError("no ground-truth boxes given: recall is undefined")
    return hit / total
