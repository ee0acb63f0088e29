"""The one reader for PASCAL VOC 2012 segmentation trees, real or generated, plus SBD's extra labels.

A tree is ``VOCdevkit/VOC2012/`` with ``JPEGImages/ID.jpg``, ``SegmentationClass/ID.png`` and
``SegmentationObject/ID.png`` (palette PNGs: the pixel value is the class, resp. the instance number;
255 is "void", the band VOC leaves unlabelled around every object), ``Annotations/ID.xml`` and
``ImageSets/Segmentation/{train,val,trainval}.txt``. Samples come back as torchvision ``tv_tensors``, so a
``transforms.v2`` pipeline moves image, masks and boxes together (pass ``fill={tv_tensors.Mask: 255}`` to
geometric transforms so that new pixels are void, not background).

Used in chapters 4 (training), 5 (aggregation) and 6 (ensemble); the format is the paper's Sec. 6.1.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
VOID = 255  # VOC's "don't care" label: object boundaries and ambiguous pixels, ignored by the loss
METADATA = "synthvoc.json"  # present only in generated trees; carries their class names and parameters


def voc_colormap(n: int = 256) -> np.ndarray:
    """VOC's colour map ``(n, 3)`` uint8: class i's colour spreads i's bits over R, G, B (devkit's bitget).

    Class 0 is black, 1 dark red, 15 (person) pink, 255 (void) cream. Used by every mask figure.
    """
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for bit in range(7, -1, -1):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << bit
            c >>= 3
        cmap[i] = rgb
    return cmap


def save_index_png(path: Path, values: np.ndarray) -> None:
    """Write a ``(H, W)`` uint8 index map as a VOC palette PNG (mode "P")."""
    im = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8))  # (H, W) -> mode "L"
    im.putpalette(voc_colormap().ravel().tolist())  # turns the "L" image into a "P" image
    im.save(path, optimize=False)


def find_voc_root(root: str | Path, split: str) -> Path:
    """``root/VOCdevkit/VOC2012`` (or ``root`` itself if it is the VOC2012 folder), checked for ``split``.

    The error for a missing split says what to do: a generated tree (it has ``synthvoc.json``) that lost a
    file is to be deleted and made again, with ``make-data --root`` naming the folder *above* ``VOCdevkit``
    (never the VOC2012 folder itself, which would nest a second tree inside the first).
    """
    root = Path(root).expanduser()
    for candidate in (root / "VOCdevkit" / "VOC2012", root):
        split_file = candidate / "ImageSets" / "Segmentation" / f"{split}.txt"
        if split_file.is_file():
            return candidate
    voc = root if _is_voc2012_folder(root) else root / "VOCdevkit" / "VOC2012"
    base = tree_base(voc)
    expected = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    if (voc / METADATA).is_file():
        raise FileNotFoundError(
            f"the generated tree {voc} is damaged: it has no split file {expected}. Delete {voc.parent} "
            f"and run `python -m deconvnet make-data --root {base}` to make it again")
    if voc.is_dir():
        raise FileNotFoundError(
            f"no VOC 2012 segmentation split {split!r} in {voc}: the file {expected} is missing. Restore it "
            f"from the VOC 2012 devkit, or point root at a complete copy")
    what = "no such folder" if not root.exists() else f"no folder {voc}"
    raise FileNotFoundError(
        f"no VOC 2012 segmentation split {split!r} under {root} ({what}); expected the file {expected}. "
        f"Generate a tree with `python -m deconvnet make-data --root {base}` or point root at a VOC 2012 copy"
    )


def _is_voc2012_folder(path: Path) -> bool:
    """``path`` is a ``VOC2012`` folder (inside ``VOCdevkit``, or holding a generated tree's record)."""
    return (path.name == "VOC2012" and path.parent.name == "VOCdevkit") or (path / METADATA).is_file()


def tree_base(path: str | Path) -> Path:
    """The folder that holds ``VOCdevkit/``, whether ``path`` is it, its ``VOCdevkit`` or its ``VOC2012``.

    What ``make-data --root`` must be given: passing the VOC2012 folder would write
    ``VOC2012/VOCdevkit/VOC2012`` inside it.
    """
    path = Path(path).expanduser()
    if _is_voc2012_folder(path) and path.parent.name == "VOCdevkit":
        return path.parent.parent
    if path.name == "VOCdevkit" and (path / "VOC2012").is_dir():
        return path.parent
    return path


def read_annotation(path: Path, size_hw: tuple[int, int]) -> list[dict]:
    """The objects of a VOC XML file: name, 0-based XYXY box, truncated, difficult; boxes must fit the image."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise ValueError(f"cannot parse annotation {path}: {err}; fix or remove the file") from err
    h, w = size_hw
    objects = []
    for k, obj in enumerate(tree.getroot().iter("object"), start=1):
        x0, y0, x1, y1 = (_box_field(path, k, obj, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        if not (1 <= x0 <= x1 <= w and 1 <= y0 <= y1 <= h):  # VOC boxes are 1-based and inclusive
            raise ValueError(
                f"{path}: object {k} ({obj.findtext('name')}) has box xmin={x0:g} ymin={y0:g} xmax={x1:g} "
                f"ymax={y1:g} outside the {w}x{h} image (VOC boxes run from 1 to width/height); fix the box"
            )
        objects.append(dict(name=obj.findtext("name"), box=(x0 - 1, y0 - 1, x1, y1),
                            truncated=obj.findtext("truncated", "0") == "1",
                            difficult=obj.findtext("difficult", "0") == "1"))
    return objects


def _box_field(path: Path, k: int, obj: ET.Element, field: str) -> float:
    """One coordinate of object ``k``'s ``<bndbox>``; a missing or non-numeric one names file and field."""
    where = f"{path}: object {k} ({obj.findtext('name')})"
    text = obj.findtext(f"bndbox/{field}")
    if text is None:
        raise ValueError(f"{where} has no <bndbox><{field}>; every VOC object needs xmin, ymin, xmax and ymax "
                         f"(1-based pixels): fix or remove the object")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where} has <{field}>{text.strip()}</{field}>, not a number; VOC boxes are 1-based "
                         f"pixel numbers: fix the box") from None


def _too_large(kind: str, path: Path, err: Exception) -> ValueError:
    size = str(err).split(", could be")[0].rstrip(".")  # PIL's "Image size (N pixels) exceeds limit of M pixels"
    return ValueError(f"{kind} {path} is too large to read safely ({size}); VOC images are about 500x375 pixels: "
                      f"shrink it or remove it from the split")


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except Image.DecompressionBombError as err:
        raise _too_large("image", path, err) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}. The file is damaged; copy it again "
                         f"or regenerate the tree") from err


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:  # reads the header only
            return im.height, im.width
    except Image.DecompressionBombError as err:
        raise _too_large("image", path, err) from None
    except (OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err}. The file is damaged; copy it again "
                         f"or regenerate the tree") from err


def _read_index_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"{path} is a {im.mode} image; VOC masks are palette ('P') PNGs whose "
                                 f"pixel values are class or instance numbers, not colours")
            return np.asarray(im)  # (H, W) uint8
    except Image.DecompressionBombError as err:
        raise _too_large("mask", path, err) from None
    except (OSError, SyntaxError) as err:
        raise ValueError(f"cannot read mask {path}: {err}. The file is damaged; copy it again") from err


def instances_from_masks(cls: np.ndarray, obj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instance of an object map: class (majority of its labelled pixels), mask, tight XYXY box.

    Returns ``labels (N,)``, ``masks (N, H, W)`` bool and ``boxes (N, 4)`` with exclusive right/bottom edges;
    an instance whose pixels are all void or background is dropped. Used by the reader and the samplers.
    """
    labels, masks, boxes = [], [], []
    for k in np.unique(obj):
        if k in (0, VOID):
            continue
        mask = obj == k
        votes = np.bincount(cls[mask & (cls != VOID)], minlength=1)
        label = int(votes[1:].argmax()) + 1 if votes[1:].any() else 0
        if label == 0:
            continue
        ys, xs = np.nonzero(mask)
        labels.append(label)
        masks.append(mask)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    h, w = cls.shape
    return (np.array(labels, np.int64), np.array(masks, bool).reshape(-1, h, w),
            np.array(boxes, np.float32).reshape(-1, 4))


class VOCSegmentation(Dataset):
    """A VOC 2012 segmentation split, real or generated (paper Sec. 6.1; chapters 4-6).

    ``dataset[i]`` is ``(image, target)``: ``image`` a ``tv_tensors.Image`` (3, H, W) uint8; ``target`` a
    dict with ``mask`` (class map, ``Mask`` (H, W) uint8, 255 void), ``masks`` (instances, ``Mask`` (N, H, W)
    uint8), ``boxes`` (``BoundingBoxes`` XYXY (N, 4)), ``labels`` (N,) int64, ``difficult`` (N,) bool and
    ``image_id``. ``transforms(image, target)`` is applied last. With ``sbd_root`` (the SBD release's
    ``dataset`` folder) the train split also takes SBD's labelled images, except those in VOC's val.
    """

    def __init__(self, root: str | Path, split: str = "train", *, transforms=None,
                 sbd_root: str | Path | None = None):
        self.root = find_voc_root(root, split)
        self.split, self.transforms = split, transforms
        meta = self.root / METADATA
        self.classes = tuple(json.loads(meta.read_text())["classes"]) if meta.is_file() else VOC_CLASSES
        self.ids = _read_ids(self.root / "ImageSets" / "Segmentation" / f"{split}.txt")
        self.sbd: Path | None = None
        if sbd_root is not None:
            from deconvnet.data.sbd import add_sbd_ids

            self.sbd, self.ids = add_sbd_ids(self.root, self.ids, Path(sbd_root), split)
        self._check_files()

    def _check_files(self) -> None:
        """Refuse a split that lists an image without its image or mask file, before any worker starts."""
        for image_id in self.ids:
            if self._sbd_only(image_id):
                continue  # labels come from SBD; sbd.add_sbd_ids checked them
            for folder, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png"), ("SegmentationObject", "png")):
                path = self.root / folder / f"{image_id}.{ext}"
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{image_id} is listed in ImageSets/Segmentation/{self.split}.txt but {path} is missing; "
                        f"restore the file or remove the id from the split file")

    def __len__(self) -> int:
        return len(self.ids)

    def _sbd_only(self, image_id: str) -> bool:
        return self.sbd is not None and not (self.root / "SegmentationClass" / f"{image_id}.png").is_file()

    def image_path(self, i: int) -> Path:
        """Where sample ``i``'s JPEG lies (VOC's ``JPEGImages``, or SBD's ``img`` for SBD-only ids)."""
        image_id = self.ids[i]
        if self._sbd_only(image_id) and not (self.root / "JPEGImages" / f"{image_id}.jpg").is_file():
            return self.sbd / "img" / f"{image_id}.jpg"
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def load_image(self, i: int) -> np.ndarray:
        """Sample ``i``'s RGB image ``(H, W, 3)`` uint8; a damaged file raises a ValueError naming it."""
        return _read_image(self.image_path(i))

    def load_masks(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Class map and instance map ``(H, W)`` uint8 of sample ``i``, checked against its image's size."""
        image_id = self.ids[i]
        if self._sbd_only(image_id):
            from deconvnet.data.sbd import read_sbd_masks

            cls, obj = read_sbd_masks(self.sbd, image_id)
        else:
            cls = _read_index_png(self.root / "SegmentationClass" / f"{image_id}.png")
            obj = _read_index_png(self.root / "SegmentationObject" / f"{image_id}.png")
        self.check_masks(image_id, _image_size(self.image_path(i)), cls, obj)
        return cls, obj

    def check_masks(self, image_id: str, size_hw: tuple[int, int], cls: np.ndarray, obj: np.ndarray) -> None:
        """Masks must match the image's size and hold only class numbers 0..20 and 255 (void)."""
        for name, m in (("SegmentationClass", cls), ("SegmentationObject", obj)):
            if m.shape != size_hw:
                raise ValueError(f"{name}/{image_id}.png is {m.shape[1]}x{m.shape[0]} but its image is "
                                 f"{size_hw[1]}x{size_hw[0]}; masks must have the image's size")
        bad = np.setdiff1d(np.unique(cls), [*range(len(self.classes)), VOID])
        if bad.size:
            raise ValueError(
                f"SegmentationClass/{image_id}.png holds values {bad.tolist()} outside 0..{len(self.classes) - 1} "
                f"and {VOID} (void); was it saved as colours instead of class numbers?")

    def annotation(self, i: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``labels (N,)``, ``boxes (N, 4)`` and image size ``(H, W)`` of sample ``i``, without the image."""
        cls, obj = self.load_masks(i)
        labels, _, boxes = instances_from_masks(cls, obj)
        return labels, boxes, cls.shape

    def __getitem__(self, i: int):
        image, (cls, obj) = self.load_image(i), self.load_masks(i)
        h, w = cls.shape
        labels, masks, boxes = instances_from_masks(cls, obj)
        xml = self.root / "Annotations" / f"{self.ids[i]}.xml"
        objects = read_annotation(xml, (h, w)) if xml.is_file() else []
        difficult = [objects[k]["difficult"] if k < len(objects) else False for k in range(len(labels))]
        target = {
            "mask": tv_tensors.Mask(torch.from_numpy(cls.copy())),  # (H, W)
            "masks": tv_tensors.Mask(torch.from_numpy(masks.astype(np.uint8))),  # (N, H, W)
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=(h, w)),
            "labels": torch.from_numpy(labels),
            "difficult": torch.tensor(difficult, dtype=torch.bool),
            "image_id": self.ids[i],
        }
        sample = tv_tensors.Image(torch.from_numpy(image.copy()).permute(2, 0, 1)), target  # (3, H, W)
        return self.transforms(*sample) if self.transforms is not None else sample


def _read_ids(path: Path) -> list[str]:
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split file {path} lists no images; regenerate the tree or fix the file")
    return ids


def class_and_scale_stats(dataset: VOCSegmentation) -> dict[str, np.ndarray]:
    """Instances per class ``(C,)`` and each instance's scale, sqrt(box area / image area) ``(N,)``.

    The paper argues that instance-wise inference copes with very small and very large objects (Sec. 5.1);
    these histograms show which scales a tree holds. Used in chapter 4's data gallery.
    """
    counts = np.zeros(len(dataset.classes), np.int64)
    scales = []
    for i in range(len(dataset)):
        labels, boxes, (h, w) = dataset.annotation(i)
        counts += np.bincount(labels, minlength=len(counts))
        scales.extend(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)))
    return {"class_counts": counts, "scales": np.array(scales, np.float32)}
