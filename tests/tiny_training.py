"""A tiny, fast training setup shared by the engine's tests and its torchrun worker."""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deconvnet.config import ModelConfig, TrainConfig
from deconvnet.model.network import DeconvNet

MODEL = ModelConfig(width=0.0625, input_size=64, fc_kernel=1, pretrained=False, num_classes=3)


class Squares(Dataset):
    """Random squares of class 1 or 2 on noise, a void band around each; augmentation seeded per epoch."""

    def __init__(self, n=12, side=64, seed=0):
        self.n, self.side, self.seed, self.epoch = n, side, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, j):
        rng = np.random.default_rng([self.seed, j])
        image = rng.random((3, self.side, self.side), dtype=np.float32) * 0.3
        label = np.zeros((self.side, self.side), dtype=np.int64)
        y, x = rng.integers(0, self.side - 12, size=2)
        cls = 1 + j % 2
        label[y - 1 : y + 13, x - 1 : x + 13] = 255
        label[y : y + 12, x : x + 12] = cls
        image[cls - 1, y : y + 12, x : x + 12] += 0.6
        if np.random.default_rng([self.seed, self.epoch, j]).random() < 0.5:  # the epoch's mirror
            image, label = image[..., ::-1].copy(), label[..., ::-1].copy()
        return torch.from_numpy(image), torch.from_numpy(label)


def config(**changes):
    base = dict(iterations=6, batch_size=2, accumulate=2, lr=0.01, lr_step=4, log_every=1, val_every=100,
                checkpoint_every=2, workers=0)
    return TrainConfig(**{**base, **changes})


def model():
    torch.manual_seed(0)
    return DeconvNet(MODEL)


if __name__ == "__main__":  # torchrun worker: python tiny_training.py RUN_DIR OUT.json
    from deconvnet.train.engine import train

    history = train(model(), Squares(), config(accumulate=1), Path(sys.argv[1]), device=torch.device("cpu"))
    if torch.distributed.get_rank() == 0:
        Path(sys.argv[2]).write_text(json.dumps(history["train"]))
