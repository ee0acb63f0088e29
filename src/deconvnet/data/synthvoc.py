"""SynthVOC: scenes of 20 shape classes written as a PASCAL VOC 2012 segmentation tree.

No copy of VOC can be fetched here, so the book trains on scenes it draws. Each scene is a crop of a real
photo with 1-6 objects pasted on it; an object is one of the 20 shapes of ``shapes`` made of its class's
material (``materials``: ten texture families, two shape classes each), so that, as in VOC, a class shows in
its appearance and its outline together, and the two classes of a family differ only in shape. Objects range
from a few pixels to larger than the image, hide each other in part, and get VOC's void band (255) around
their boundaries. The tree is byte-identical for a seed, whatever the number of worker processes.

``make_synthvoc(cfg, root)`` writes ``root/VOCdevkit/VOC2012`` atomically and reuses a tree made with the same
parameters. Used in chapter 4 (training) and by every later chapter through ``voc.VOCSegmentation``.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm  # the plain bar: notebooks capture stderr, and widgets need ipywidgets

from deconvnet.config import DataConfig
from deconvnet.data.materials import CLASS_FAMILY, texture
from deconvnet.data.shapes import SHAPE_NAMES, draw_shape, shape_extent, shape_transform
from deconvnet.data.voc import METADATA, VOID, save_index_png

VERSION = 2  # bump when the drawing changes, so that trees made by older code are regenerated
# v2: objects made of per-class materials (v1: patches of the background photos, so only the outline told)
CLASSES = ("background", *SHAPE_NAMES)
SCENE_FIELDS = ("seed", "train_images", "val_images", "image_size", "min_instances", "max_instances", "min_scale",
                "max_scale", "class_skew", "min_visible", "void_px", "jpeg_quality")  # the fields that change files
MIN_PIXELS = 12  # an object with fewer visible pixels is unreadable even to a person; it is moved or dropped


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    """Real photos shipped with scikit-image, scikit-learn and matplotlib, each ``(H, W, 3)`` uint8.

    They are the backgrounds only: no object is made of them (v2).
    """
    import matplotlib.cbook
    from skimage import data
    from sklearn.datasets import load_sample_image

    images = [getattr(data, name)() for name in ("astronaut", "brick", "camera", "chelsea", "coffee", "coins",
                                                 "grass", "gravel", "immunohistochemistry", "moon", "rocket")]
    images.append(data.stereo_motorcycle()[0])
    images += [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images.append(np.asarray(Image.open(f).convert("RGB")))
    return tuple(np.ascontiguousarray(np.dstack([im] * 3) if im.ndim == 2 else im[..., :3]) for im in images)


def _patch(rng: np.random.Generator, photo: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A random crop of ``photo`` resized to ``size_hw``, flipped, channels permuted, contrast jittered."""
    h, w = size_hw
    ph, pw = photo.shape[:2]
    zoom = rng.uniform(0.25, 1.0)  # fraction of the photo's shorter side the crop spans
    ch = max(8, round(zoom * min(ph, pw) * min(1.0, h / w)))
    cw = max(8, min(pw, round(ch * w / h)))
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    patch = cv2.resize(photo[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = patch[..., rng.permutation(3)]  # backgrounds in any colours, so no hue means "background"
    gain, offset = rng.uniform(0.6, 1.3), rng.uniform(-40, 40)
    return np.clip(patch * gain + offset, 0, 255)  # (H, W, 3) float32


def _class_weights(cfg: DataConfig) -> np.ndarray:
    ranks = np.arange(1, len(SHAPE_NAMES) + 1, dtype=float)
    weights = ranks ** -cfg.class_skew  # class 1 (disk) commonest, class 20 (key) rarest
    return weights / weights.sum()


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` plus its void band: every pixel within ``px`` of it."""
    if px == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def labelled(masks: list[np.ndarray], void_px: int) -> list[np.ndarray]:
    """The pixels that keep each object's label when painted back to front, each object with its void band.

    A later (front) object and its band cover earlier ones; an object's own band never covers its own thin
    parts, so they stay labelled for the loss.
    """
    covered = np.zeros_like(masks[0]) if masks else None
    out = []
    for m in reversed(masks):
        out.append(m & ~covered)
        covered = covered | _grow(m, void_px)
    return out[::-1]


def _legible(masks: list[np.ndarray], cfg: DataConfig) -> bool:
    kept = labelled(masks, cfg.void_px)
    return all(k.sum() >= max(MIN_PIXELS, cfg.min_visible * m.sum()) for m, k in zip(masks, kept, strict=True))


def layout(rng: np.random.Generator, cfg: DataConfig, size_hw: tuple[int, int]) -> list[dict]:
    """Objects of one scene, back to front: class, pixel affine, full mask; every one stays legible.

    Larger objects go behind smaller ones, as in a photo where near small things hide parts of the scene.
    """
    h, w = size_hw
    n = rng.integers(cfg.min_instances, cfg.max_instances + 1)
    labels = rng.choice(len(SHAPE_NAMES), size=n, p=_class_weights(cfg)) + 1
    scales = np.sort(np.exp(rng.uniform(math.log(cfg.min_scale), math.log(cfg.max_scale), n)))[::-1]
    objects: list[dict] = []
    for label, scale in zip(labels, scales, strict=True):
        for _ in range(10):  # a few placements before giving up on this object
            center = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
            affine = shape_transform(center, scale * min(h, w) / 2, rng.uniform(-30, 30),
                                     math.exp(rng.uniform(-0.3, 0.3)))
            mask = draw_shape(SHAPE_NAMES[label - 1], size_hw, affine)
            if _legible([o["mask"] for o in objects] + [mask], cfg):
                objects.append(dict(label=int(label), affine=affine, mask=mask))
                break
    return objects


def render(rng: np.random.Generator, cfg: DataConfig, size_hw: tuple[int, int], objects: list[dict]):
    """Paint a scene: the image ``(H, W, 3)`` uint8, class map and instance map ``(H, W)`` uint8 with void."""
    bank = photos()
    background = int(rng.integers(len(bank)))
    image = _patch(rng, bank[background], size_hw)
    for obj in objects:
        radius = math.sqrt(abs(np.linalg.det(obj["affine"][:, :2])))  # the object's size in pixels
        fill = texture(CLASS_FAMILY[SHAPE_NAMES[obj["label"] - 1]], rng, size_hw, radius)
        alpha = cv2.GaussianBlur(obj["mask"].astype(np.float32), (3, 3), 0.6)[..., None]  # soft edge, as a lens
        image = image * (1 - alpha) + fill * alpha
    cls = np.zeros(size_hw, np.uint8)
    inst = np.zeros(size_hw, np.uint8)
    for k, obj in enumerate(objects, start=1):  # painter's order: band first, then the object over it
        band = _grow(obj["mask"], cfg.void_px) & ~obj["mask"]
        cls[band], inst[band] = VOID, VOID
        cls[obj["mask"]], inst[obj["mask"]] = obj["label"], k
    return np.round(image).astype(np.uint8), cls, inst


def scene(cfg: DataConfig, index: int):
    """Scene ``index`` of the tree: image, class map, instance map, and its objects for the XML.

    Depends only on ``(cfg.seed, index)``, so images can be drawn in any order by any number of processes.
    """
    rng = np.random.default_rng([cfg.seed, index])
    short = round(cfg.image_size * rng.uniform(0.75, 1.0))
    size_hw = (short, cfg.image_size) if rng.random() < 0.7 else (cfg.image_size, short)  # mostly landscape
    for _ in range(100):  # VOC has no empty images; a scene whose every object failed to fit is redrawn
        objects = layout(rng, cfg, size_hw)
        if objects:
            break
    else:
        raise ValueError(f"no object fits a {size_hw[1]}x{size_hw[0]} image with {cfg}; raise image_size or min_scale")
    image, cls, inst = render(rng, cfg, size_hw, objects)
    h, w = size_hw
    for k, obj in enumerate(objects, start=1):
        ys, xs = np.nonzero(inst == k)
        x0, y0, x1, y1 = shape_extent(SHAPE_NAMES[obj["label"] - 1], obj["affine"])
        obj["box"] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        obj["truncated"] = bool(x0 < 0 or y0 < 0 or x1 > w or y1 > h)
        # VOC's "difficult": hard to recognise, here tiny or mostly hidden
        obj["difficult"] = bool(max(np.ptp(xs), np.ptp(ys)) < 8 or len(xs) < 0.5 * obj["mask"].sum())
    return image, cls, inst, objects


def _annotation_xml(image_id: str, size_hw: tuple[int, int], objects: list[dict]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "SynthVOC"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", size_hw[1]), ("height", size_hw[0]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = CLASSES[obj["label"]]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = str(int(obj["truncated"]))
        ET.SubElement(node, "difficult").text = str(int(obj["difficult"]))
        box = ET.SubElement(node, "bndbox")
        x0, y0, x1, y1 = obj["box"]
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):  # 1-based, inclusive
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def image_id(index: int) -> str:
    return f"synth_{index:06d}"


def _write_scene(job: tuple[DataConfig, Path, int]) -> None:
    cfg, out, index = job
    image, cls, inst, objects = scene(cfg, index)
    name = image_id(index)
    Image.fromarray(image).save(out / "JPEGImages" / f"{name}.jpg", quality=cfg.jpeg_quality)
    save_index_png(out / "SegmentationClass" / f"{name}.png", cls)
    save_index_png(out / "SegmentationObject" / f"{name}.png", inst)
    (out / "Annotations" / f"{name}.xml").write_bytes(_annotation_xml(name, cls.shape, objects))


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only compete


def metadata(cfg: DataConfig) -> dict:
    """What ``synthvoc.json`` records: generator version, the parameters that shape the files, class names."""
    params = {f: getattr(cfg, f) for f in SCENE_FIELDS}
    return {"name": "SynthVOC", "version": VERSION, "params": params, "classes": list(CLASSES)}


def read_metadata(voc_root: Path) -> dict | None:
    path = Path(voc_root) / METADATA
    return json.loads(path.read_text()) if path.is_file() else None


def make_synthvoc(cfg: DataConfig, root: str | Path, *, workers: int = 0, progress: bool | None = None) -> Path:
    """Write SynthVOC for ``cfg`` as ``root/VOCdevkit/VOC2012`` and return that folder (paper Sec. 6.1's data).

    A tree made with the same parameters and generator version is reused as is; a stale one is replaced.
    Files are written into a temporary folder under ``root`` that is renamed into place only when complete,
    so an interrupted run never leaves a tree that looks finished. ``workers`` processes draw the scenes
    (0: one per core); ``progress`` shows a bar (default: only on a terminal). Used in chapter 4.
    """
    root = Path(root).expanduser()
    final = root / "VOCdevkit"
    existing = read_metadata(final / "VOC2012") if final.exists() else None
    if final.exists() and existing is None:
        raise ValueError(f"{final} exists but is no SynthVOC tree (it has no VOC2012/{METADATA}); it may be real "
                         f"VOC data, so it is left alone: choose another root for the generated tree")
    if existing == metadata(cfg) and _complete(final / "VOC2012", cfg):
        return final / "VOC2012"
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".synthvoc-tmp-{os.getpid()}-", dir=root))
    try:
        _write_tree(cfg, tmp / "VOCdevkit" / "VOC2012", workers, progress)
        _swap_in(tmp / "VOCdevkit", final, cfg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "VOC2012"


def _complete(tree: Path, cfg: DataConfig) -> bool:
    """Whether a tree that carries the right record still holds every file and split list it was made with.

    A tree that lost files (a half-copied folder, a deleted split list) is rebuilt rather than trusted.
    """
    n = cfg.train_images + cfg.val_images
    ids = [image_id(i) for i in range(n)]
    splits = {"train": ids[:cfg.train_images], "val": ids[cfg.train_images:], "trainval": ids}
    for split, names in splits.items():
        path = tree / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not path.is_file() or path.read_text().split() != names:
            return False
    files = (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png"),
             ("Annotations", ".xml"))
    return all((tree / folder / f"{name}{ext}").is_file() for name in ids for folder, ext in files)


def _write_tree(cfg: DataConfig, out: Path, workers: int, progress: bool | None) -> None:
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations", "ImageSets/Segmentation"):
        (out / folder).mkdir(parents=True)
    n = cfg.train_images + cfg.val_images
    jobs = [(cfg, out, i) for i in range(n)]
    workers = min(n, workers or os.cpu_count() or 1)
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=n, desc="SynthVOC scenes", unit="img", disable=not show) as bar:
        if workers == 1:
            for job in jobs:
                _write_scene(job)
                bar.update()
        else:
            # spawn, not fork: a forked child inherits OpenCV's thread pool in whatever state the parent's threads
            # left it, and its first cv2 call can wait forever on a lock nobody holds (tests hung this way)
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_write_scene, jobs, chunksize=4):
                    bar.update()
    ids = [image_id(i) for i in range(n)]
    splits = {"train": ids[:cfg.train_images], "val": ids[cfg.train_images:], "trainval": ids}
    for split, names in splits.items():
        (out / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{x}\n" for x in names))
    (out / METADATA).write_text(json.dumps(metadata(cfg), indent=2) + "\n")  # written last: marks completion


def _swap_in(new: Path, final: Path, cfg: DataConfig) -> None:
    """Rename the finished tree into place; a stale tree and its cached proposals go only after that."""
    old = None
    if final.exists():
        old = final.with_name(f".synthvoc-old-{os.getpid()}")
        os.replace(final, old)
        shutil.rmtree(final.parent / "proposals", ignore_errors=True)  # boxes of the old images
    try:
        os.rename(new, final)
    except OSError:
        if read_metadata(final / "VOC2012") != metadata(cfg):  # else a concurrent run finished the same tree first
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_abandoned(root: Path) -> None:
    """Delete temporary folders left by runs that were killed (their process no longer exists)."""
    for path in root.glob(".synthvoc-*-*"):
        try:
            pid = int(path.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
