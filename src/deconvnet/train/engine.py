"""The training engine: the paper's SGD recipe with exact resume, on a CPU, a GPU, or many under torchrun.

Recipe (paper Sec. 4.1, 6.1): SGD with momentum 0.9 and weight decay 5e-4, a step learning-rate schedule,
and an effective batch built by gradient accumulation. The loss is per-pixel cross-entropy with void (255)
ignored, summed and divided by the number of pixels of the process's share of the step (DDP then averages
the processes' gradients), so the same global batch gives the same gradient whether it is split over
accumulation steps or over processes.

Which crops make up each step depends only on the seed and the step number (an epoch's permutation, then a
slice), and a crop's random augmentation only on (seed, epoch, index): a run resumed from a checkpoint sees
exactly the crops it would have seen, and on the CPU ends with exactly the same weights.

Used in chapter 4 (two-stage training), and for FCN-8s in chapter 6.
"""

from __future__ import annotations

import contextlib
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm  # the plain bar: notebooks capture stderr, and widgets need ipywidgets

from deconvnet.config import TrainConfig
from deconvnet.files import atomic_path
from deconvnet.infer.metrics import VOID, SegmentationMetrics
from deconvnet.infer.whole import segment_whole, to_tensor
from deconvnet.train.checkpoint import load_checkpoint, save_checkpoint, signature
from deconvnet.train.distributed import World, barrier, init_world, mean_over_world


def pixel_loss(scores: torch.Tensor, labels: torch.Tensor, pixels: int) -> torch.Tensor:
    """Cross-entropy summed over non-void pixels, divided by ``pixels`` (all pixels of the global batch)."""
    return F.cross_entropy(scores.float(), labels, ignore_index=VOID, reduction="sum") / pixels


class _EpochIndexed(Dataset):
    """Sample number ``k`` -> item ``k % n`` of ``dataset`` in epoch ``k // n`` (its augmentation seed)."""

    def __init__(self, dataset: Dataset):
        self.dataset, self.n = dataset, len(dataset)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(k // self.n)
        return self.dataset[k % self.n]


class StepBatches:
    """The micro-batches of steps ``start..iterations`` that fall to one process, as sample numbers.

    Step ``s`` uses global samples ``s*G .. s*G + G-1`` (G = batch x accumulate x processes); sample ``k`` is
    item ``perm_e[k % n]`` of epoch ``e = k // n``, each epoch's permutation drawn from (seed, e). Micro-batch
    ``m`` of process ``r`` is global micro-batch ``m * processes + r``.
    """

    def __init__(self, n: int, cfg: TrainConfig, seed: int, start: int, world: World):
        self.n, self.cfg, self.seed, self.start, self.world = n, cfg, seed, start, world
        self._perms: dict[int, torch.Tensor] = {}

    def _item(self, k: int) -> int:
        epoch = k // self.n
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}  # one epoch at a time in memory
        return epoch * self.n + int(self._perms[epoch][k % self.n])

    def __len__(self) -> int:
        return (self.cfg.iterations - self.start) * self.cfg.accumulate

    def __iter__(self):
        b, a, w = self.cfg.batch_size, self.cfg.accumulate, self.world.size
        for step in range(self.start, self.cfg.iterations):
            for m in range(a):
                first = step * b * a * w + (m * w + self.world.rank) * b
                yield [self._item(k) for k in range(first, first + b)]


def _optimiser(model: torch.nn.Module, cfg: TrainConfig):
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)


@torch.no_grad()
def evaluate(model: torch.nn.Module, val_set, max_images: int = 0, progress: bool = False) -> dict:
    """Mean IoU, accuracies, per-class IoU and the confusion matrix on whole val images (paper Sec. 6).

    BN runs in inference mode, on its running statistics.

    ``val_set`` is a ``data.VOCSegmentation``; ``max_images`` > 0 takes its first images only.
    """
    was_training = model.training
    model.eval()
    metrics = SegmentationMetrics(model.cfg.num_classes)
    count = len(val_set) if max_images <= 0 else min(max_images, len(val_set))
    for i in tqdm(range(count), desc="validate", disable=not progress, leave=False):
        labels = torch.from_numpy(val_set.load_masks(i)[0].astype("int64"))
        scores = segment_whole(model, to_tensor(val_set.load_image(i)))  # (C, H, W)
        metrics.update(scores.argmax(0), labels)
    model.train(was_training)
    return {**metrics.summary(getattr(val_set, "classes", None)), "confusion": metrics.matrix.tolist()}


@torch.no_grad()
def evaluate_samples(model: torch.nn.Module, samples, max_items: int = 0, batch_size: int = 16,
                     per_item: bool = False) -> dict:
    """The scores of ``evaluate`` on training-style samples (e.g. val ``Stage1Crops`` with ``train=False``).

    Cheaper than whole images, and what the learning study (appendix) plots against crops seen. With
    ``per_item``, ``"per_item"`` holds each sample's confusion matrix, for a bootstrap over samples.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    metrics = SegmentationMetrics(model.cfg.num_classes)
    items = []
    count = len(samples) if max_items <= 0 else min(max_items, len(samples))
    for first in range(0, count, batch_size):
        images, labels = zip(*(samples[j] for j in range(first, min(first + batch_size, count))), strict=True)
        predicted = model(torch.stack(images).to(device)).argmax(1).cpu()  # (B, S, S)
        for pred, label in zip(predicted, labels, strict=True):
            one = SegmentationMetrics(model.cfg.num_classes)
            one.update(pred, label)
            metrics.matrix += one.matrix
            if per_item:
                items.append(one.matrix.numpy().copy())
    model.train(was_training)
    return {**metrics.summary(), **({"per_item": items} if per_item else {})}


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "seconds"])
        writer.writeheader()
        writer.writerows(rows)


def _describe(device: torch.device) -> str:
    """Where a model was trained, kept in its history (a GPU-trained model is bf16-trained)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _prepare(model: torch.nn.Module, cfg: TrainConfig, world: World):
    model.to(world.device)  # keeps the channels-last weights every model is built with (fastpath.py)
    if world.size == 1:
        return model
    if world.device.type == "cuda" and cfg.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [world.device.index] if world.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def train(model: torch.nn.Module, dataset: Dataset, cfg: TrainConfig, run_dir: Path, *, val_set=None,
          seed: int = 0, device: torch.device | None = None, progress: bool = False) -> dict:
    """Train ``model`` on ``dataset`` for ``cfg.iterations`` steps, resuming from ``run_dir/last.pt``.

    Writes ``last.pt`` every ``checkpoint_every`` steps, ``log.csv`` (step, mean loss since the previous
    row, lr, seconds since the previous row) and, at the end, ``final.pt`` (weights, signature, history).
    Returns the history: ``{"train": rows, "val": [...]}``.
    """
    run_dir = Path(run_dir)
    world = init_world(device or torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    sig = signature(model)
    net = _prepare(model, cfg, world)
    opt, sched = _optimiser(model, cfg)
    history: dict = {"train": [], "val": [], "device": _describe(world.device)}
    start = 0
    if (run_dir / "last.pt").is_file():
        state = load_checkpoint(run_dir / "last.pt", sig)  # on the CPU: the RNG state must stay there
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, history = state["step"], state["history"]
    loader = DataLoader(_EpochIndexed(dataset), batch_sampler=StepBatches(len(dataset), cfg, seed, start, world),
                        num_workers=cfg.workers, pin_memory=world.device.type == "cuda")
    batches = iter(loader)
    amp = world.device.type == "cuda" and cfg.amp
    bar = tqdm(total=cfg.iterations, initial=start, desc="train", disable=not (progress and world.main))
    window, tic = [], time.perf_counter()
    for step in range(start, cfg.iterations):
        model.train()
        if cfg.freeze_encoder:
            model.encoder.eval()  # its BNs keep the statistics they started with
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for m in range(cfg.accumulate):
            images, labels = next(batches)
            images = images.to(world.device, non_blocking=True)
            labels = labels.to(world.device, non_blocking=True)
            pixels = labels.numel() * cfg.accumulate  # DDP then averages over processes
            sync = contextlib.nullcontext() if world.size == 1 or m == cfg.accumulate - 1 else net.no_sync()
            with sync, torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = pixel_loss(net(images), labels, pixels)
                loss.backward()
            step_loss += loss.item()
        opt.step()
        sched.step()
        window.append(mean_over_world(step_loss, world))
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.iterations:
            now = time.perf_counter()
            history["train"].append({"step": done, "loss": sum(window) / len(window),
                                     "lr": opt.param_groups[0]["lr"], "seconds": now - tic})
            window, tic = [], now
            bar.set_postfix(loss=f"{history['train'][-1]['loss']:.4f}")
        if val_set is not None and world.main and (done % cfg.val_every == 0 or done == cfg.iterations):
            history["val"].append({"step": done, **evaluate(model, val_set, cfg.val_images)})
        if world.main and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
            save_checkpoint(run_dir / "last.pt", {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": torch.get_rng_state(), "step": done, "history": history, "signature": sig})
            _write_log(run_dir / "log.csv", history["train"])
        bar.update(1)
    bar.close()
    if world.main:
        save_checkpoint(run_dir / "final.pt", {"model": model.state_dict(), "signature": sig, "history": history})
    barrier(world)
    return history


def load_trained(model: torch.nn.Module, path: Path) -> dict:
    """Load ``final.pt`` or ``last.pt`` weights into ``model`` (signature checked); returns the history."""
    state = load_checkpoint(path, signature(model))
    model.load_state_dict(state["model"])
    return state["history"]
