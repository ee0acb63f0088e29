"""One process or many: what the training engine needs to know about ``torchrun``.

Under ``torchrun --nproc_per_node N python -m deconvnet train ...`` each process reads its rank from the
environment, joins a process group (NCCL on GPUs, gloo on the CPU) and trains on its share of every global
batch. Without ``torchrun`` everything here is a no-op. Used by ``train`` (chapter 4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0  # this process's number; 0 writes checkpoints and logs
    size: int = 1  # number of processes sharing each global batch
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_world(device: torch.device) -> World:
    """Join the process group that ``torchrun`` describes in the environment, or stay alone."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, device)


def mean_over_world(value: float, world: World) -> float:
    """The average of ``value`` over all processes (for logging a global loss)."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
