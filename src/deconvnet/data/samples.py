"""The training samples of the paper's two stages (Sec. 4.2, two-stage training; Sec. 6.1, data construction).

* Stage 1 - ``Stage1Crops``: one window per ground-truth instance, centred on its box and enlarged 1.2x;
  only that instance keeps its class, every other pixel is background (void stays void). Easy examples:
  one object, centred, at one scale.
* Stage 2 - ``Stage2Windows``: windows around object proposals whose IoU with some ground-truth box is at
  least ``cfg.window_iou`` (0.5), enlarged by the same ``cfg.context`` as stage 1 so that both stages and
  instance-wise inference (chapter 5) cut alike; every object in the window keeps its class, so objects are
  off-centre, cut, and several. Windows of classes rarer than the median are repeated (at most ``cfg.balance_cap``
  times) to balance the classes.

Both resize each window to ``resize_ratio x crop_size`` (paper: 250 for a 224 crop), take a random
``crop_size`` crop and mirror at random. Pixels outside the image are void in the label and the mean colour
in the image. Randomness depends only on ``(seed, epoch, index)``, so samples repeat with any number of
DataLoader workers; call ``set_epoch`` between epochs (workers must not be persistent).

Used in chapter 4 (training).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms.v2 import functional as F

from deconvnet.config import DataConfig
from deconvnet.data.voc import VOID, VOCSegmentation, instances_from_masks

PAD_RGB = (124, 116, 104)  # ImageNet mean colour: padding that normalises to ~0, i.e. "no signal"


def context_window(box: np.ndarray, context: float, square: bool = True) -> np.ndarray:
    """The box ``(x0, y0, x1, y1)`` scaled ``context`` times about its centre; square: the longer side.

    Stage 1 and 2 and instance-wise inference (chapter 5) cut the same windows (paper Sec. 5.1, 6.1).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = (x1 - x0) * context, (y1 - y0) * context
    if square:
        w = h = max(w, h, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def cut_window(image: torch.Tensor, label: torch.Tensor, window: np.ndarray, side: int):
    """Cut ``window`` from image ``(3, H, W)`` uint8 and label ``(H, W)``, resized to ``(side, side)``.

    Parts of the window outside the image become ``PAD_RGB`` and void, as the paper's stage-2 windows.
    """
    h, w = label.shape
    x0, y0, x1, y1 = (int(round(v)) for v in window)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    pad = [ix0 - x0, iy0 - y0, x1 - ix1, y1 - iy1]  # left, top, right, bottom
    if ix1 <= ix0 or iy1 <= iy0:  # window wholly outside: nothing to show
        img = torch.tensor(PAD_RGB, dtype=torch.uint8).view(3, 1, 1).expand(3, y1 - y0, x1 - x0)
        lab = torch.full((y1 - y0, x1 - x0), VOID, dtype=label.dtype)
    else:
        img = F.pad(image[:, iy0:iy1, ix0:ix1], pad, fill=list(PAD_RGB))
        lab = F.pad(label[iy0:iy1, ix0:ix1][None], pad, fill=VOID)[0]
    img = F.resize(tv_tensors.Image(img), [side, side], antialias=True)  # (3, side, side)
    lab = F.resize(tv_tensors.Mask(lab), [side, side])  # nearest for masks: labels stay labels
    return img, lab


class _Windows(Dataset):
    """Windows ``(image index, window box)`` turned into ``(image, label)`` crops; subclasses say the label."""

    def __init__(self, dataset: VOCSegmentation, cfg: DataConfig, crop_size: int, train: bool, seed: int):
        self.dataset, self.cfg, self.crop_size, self.train, self.seed = dataset, cfg, crop_size, train, seed
        self.epoch = 0
        self.items: list[tuple[int, int, np.ndarray]] = []  # (image index, instance index or -1, window)

    def set_epoch(self, epoch: int) -> None:
        """New random crops and flips for ``epoch`` (the samples stay the same for a given epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def label_map(self, cls: np.ndarray, obj: np.ndarray, instance: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, j: int):
        i, instance, window = self.items[j]
        image = torch.from_numpy(self.dataset.load_image(i).copy()).permute(2, 0, 1)  # (3, H, W)
        label = torch.from_numpy(self.label_map(*self.dataset.load_masks(i), instance).astype(np.int64))
        big = round(self.crop_size * self.cfg.resize_ratio)
        img, lab = cut_window(image, label, window, big)
        rng = np.random.default_rng([self.seed, self.epoch, j])
        top, left = ((rng.integers(0, big - self.crop_size + 1, size=2)) if self.train
                     else ((big - self.crop_size) // 2,) * 2)
        img = F.crop(img, int(top), int(left), self.crop_size, self.crop_size)
        lab = F.crop(lab, int(top), int(left), self.crop_size, self.crop_size)
        if self.train and self.cfg.mirror and rng.random() < 0.5:
            img, lab = F.horizontal_flip(img), F.horizontal_flip(lab)
        return F.to_dtype(img, torch.float32, scale=True), lab  # (3, S, S) in [0, 1], (S, S) int64


class Stage1Crops(_Windows):
    """Stage-1 samples: a window per ground-truth instance, only that instance labelled (paper Sec. 4.2).

    ``crop_size`` is the network's input side (``ModelConfig.input_size``); ``train=False`` takes the centre
    crop without mirroring, for figures and validation. Used in chapter 4.
    """

    def __init__(self, dataset: VOCSegmentation, cfg: DataConfig, crop_size: int, *, train: bool = True,
                 seed: int = 0):
        super().__init__(dataset, cfg, crop_size, train, seed)
        for i in range(len(dataset)):
            _, boxes, _ = dataset.annotation(i)
            for k, box in enumerate(boxes):
                self.items.append((i, k, context_window(box, cfg.context, cfg.square_windows)))

    def label_map(self, cls: np.ndarray, obj: np.ndarray, instance: int) -> np.ndarray:
        labels, masks, _ = instances_from_masks(cls, obj)
        out = np.where(masks[instance], labels[instance], 0)  # (H, W): the rest is background
        out[cls == VOID] = VOID  # boundaries stay unknown, whichever object they belong to
        return out


def stage2_windows(annotations: list[tuple[np.ndarray, np.ndarray]], proposals: list[np.ndarray],
                   iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proposals whose best IoU with a ground-truth box is >= ``iou``: image index, box, matched class.

    ``annotations`` holds ``(labels (N,), boxes (N, 4))`` per image. Paper Sec. 4.2; chapter 4.
    """
    index, boxes, classes = [], [], []
    for i, ((labels, gt), props) in enumerate(zip(annotations, proposals, strict=True)):
        if len(gt) == 0 or len(props) == 0:
            continue
        best, match = box_iou(torch.as_tensor(props), torch.as_tensor(gt)).max(dim=1)  # (P,)
        keep = (best >= iou).numpy()
        index += [i] * int(keep.sum())
        boxes.append(props[keep])
        classes.append(labels[match.numpy()[keep]])
    if not index:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    return np.array(index, np.int64), np.concatenate(boxes), np.concatenate(classes)


def balance_repeats(classes: np.ndarray, cap: int) -> np.ndarray:
    """How often to repeat each window so that classes under the median count catch up, at most ``cap``.

    The paper duplicates examples of rare classes in stage 2 (Sec. 6.1). Returns ``(M,)`` int64 >= 1.
    """
    present, counts = np.unique(classes, return_counts=True)
    if present.size == 0:
        return np.zeros(0, np.int64)
    repeat = np.clip(np.round(np.median(counts) / counts), 1, cap).astype(np.int64)
    lookup = dict(zip(present.tolist(), repeat.tolist(), strict=True))
    return np.array([lookup[c] for c in classes.tolist()], np.int64)


class Stage2Windows(_Windows):
    """Stage-2 samples: proposal windows with every class labelled, rare classes repeated (paper Sec. 4.2).

    ``proposals`` is ``proposals.cached_proposals(dataset, cfg)``. ``classes`` holds each sample's matched
    class (after repetition), e.g. for a histogram. Used in chapter 4.
    """

    def __init__(self, dataset: VOCSegmentation, proposals: list[np.ndarray], cfg: DataConfig, crop_size: int, *,
                 train: bool = True, seed: int = 0):
        super().__init__(dataset, cfg, crop_size, train, seed)
        if len(proposals) != len(dataset):
            raise ValueError(f"got proposals for {len(proposals)} images but the dataset has {len(dataset)}; "
                             f"compute them with proposals.cached_proposals(dataset, cfg)")
        annotations = [dataset.annotation(i)[:2] for i in range(len(dataset))]
        index, boxes, classes = stage2_windows(annotations, proposals, cfg.window_iou)
        repeats = balance_repeats(classes, cfg.balance_cap)
        for i, box, r in zip(index.tolist(), boxes, repeats.tolist(), strict=True):
            self.items += [(i, -1, context_window(box, cfg.context, cfg.square_windows))] * r
        self.classes = np.repeat(classes, repeats)

    def label_map(self, cls: np.ndarray, obj: np.ndarray, instance: int) -> np.ndarray:
        return cls  # all classes keep their labels
