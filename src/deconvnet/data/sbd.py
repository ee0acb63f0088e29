"""SBD's extra labels (Hariharan et al. 2011) for the VOC reader: the paper's stage 2 trains on VOC + SBD.

SBD's ``dataset`` folder holds ``img/ID.jpg``, ``cls/ID.mat`` (struct ``GTcls``, field ``Segmentation``: the
class map), ``inst/ID.mat`` (struct ``GTinst``, field ``Segmentation``: the instance map) and
``train.txt`` / ``val.txt``. SBD draws no void band, so its masks hold only 0..20.

Used through ``voc.VOCSegmentation(..., sbd_root=...)`` in chapter 4 (paper Sec. 6.1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _sbd_folder(sbd_root: Path) -> Path:
    for candidate in (sbd_root, sbd_root / "dataset", sbd_root / "benchmark_RELEASE" / "dataset"):
        if (candidate / "train.txt").is_file():
            return candidate
    raise FileNotFoundError(f"no SBD release under {sbd_root}: expected {sbd_root / 'train.txt'} (the "
                            f"release's benchmark_RELEASE/dataset folder); pass that folder as sbd_root")


def add_sbd_ids(voc_root: Path, voc_ids: list[str], sbd_root: Path, split: str) -> tuple[Path, list[str]]:
    """VOC's ``split`` ids plus SBD's train and val ids, minus VOC's val ids (the usual "train_aug").

    Only the train split takes SBD: adding it elsewhere would leak training images into evaluation.
    """
    if split != "train":
        raise ValueError(f"SBD adds training labels only; use sbd_root with split='train', not {split!r}")
    sbd = _sbd_folder(sbd_root)
    val_file = voc_root / "ImageSets" / "Segmentation" / "val.txt"
    voc_val = set(val_file.read_text().split()) if val_file.is_file() else set()
    extra = set()
    for name in ("train.txt", "val.txt"):
        if (sbd / name).is_file():
            extra |= set((sbd / name).read_text().split())
    extra -= voc_val | set(voc_ids)
    for image_id in sorted(extra):
        for path in (sbd / "cls" / f"{image_id}.mat", sbd / "inst" / f"{image_id}.mat"):
            if not path.is_file():
                raise FileNotFoundError(f"{image_id} is listed in SBD's split files but {path} is missing; "
                                        f"restore the file or use a complete SBD release")
        if not (voc_root / "JPEGImages" / f"{image_id}.jpg").is_file() and not (
                sbd / "img" / f"{image_id}.jpg").is_file():
            raise FileNotFoundError(f"no image for SBD id {image_id}: looked for {sbd / 'img' / image_id}.jpg "
                                    f"and {voc_root / 'JPEGImages' / image_id}.jpg")
    return sbd, list(voc_ids) + sorted(extra)


def _mat_field(path: Path, struct: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(path, squeeze_me=True, struct_as_record=False)
        return np.asarray(data[struct].Segmentation, dtype=np.uint8)  # (H, W)
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"cannot read {struct}.Segmentation from {path}: {err}; the file is damaged") from err


def read_sbd_masks(sbd: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Class map and instance map ``(H, W)`` uint8 of an SBD image."""
    return _mat_field(sbd / "cls" / f"{image_id}.mat", "GTcls"), _mat_field(sbd / "inst" / f"{image_id}.mat", "GTinst")
