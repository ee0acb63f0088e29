"""Named presets: one frozen, typed config per concern, picked by one name.

Every chapter's ``parameters`` cell sets ``preset = "quick"``; the book runner passes another name with
papermill. The core modules (``model``, ``pretrained``) receive config objects and never look at preset
names, so a reader can build any variant by hand::

    from deconvnet.config import get_preset
    cfg = get_preset("paper").model          # ModelConfig(width=1.0, input_size=224, ...)

Used in every chapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

VGG16_WIDTHS = (64, 128, 256, 512, 512)  # output channels of VGG16's five conv blocks (paper Fig. 2)
VGG16_DEPTHS = (2, 2, 3, 3, 3)  # convolutions per block
FC_WIDTH = 4096  # fc6 / fc7 channels in VGG16 and in the paper


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape (paper Sec. 3.1, Fig. 2). Used by ``model.DeconvNet`` and ``model.FCN8s``."""

    num_classes: int = 21  # PASCAL VOC: 20 object classes + background
    width: float = 1.0  # multiplier on every channel count; 1.0 is the paper, smaller is for CPU presets
    input_size: int = 224  # side of the square training crop; the paper crops 224 from 250
    fc_kernel: int = 7  # fc6 sees the whole 7x7 pool5 map of a 224 crop, so it acts as a fully connected layer
    batch_norm: bool = True  # the paper's answer to a deep decoder that otherwise trains badly (Sec. 4.1)
    conv_bias: bool = True  # the release keeps a bias before every BN; redundant, but it fixes the count
    init_std: float = 0.01  # Gaussian std of every new layer's weights, as in the paper (Sec. 4.1)
    pretrained: bool = True  # ImageNet VGG16 convs for the encoder (only possible at width 1.0)

    def __post_init__(self) -> None:
        problems = []
        if self.input_size <= 0 or self.input_size % 32:
            problems.append(f"input_size={self.input_size} must be a positive multiple of 32 (five 2x2 pools)")
        elif self.fc_kernel < 1 or self.fc_kernel > self.input_size // 32:
            problems.append(
                f"fc_kernel={self.fc_kernel} must lie in 1..{self.input_size // 32}: a {self.input_size} crop "
                f"gives a {self.input_size // 32}x{self.input_size // 32} pool5 map"
            )
        if self.width <= 0 or round(VGG16_WIDTHS[0] * self.width) < 1:
            problems.append(f"width={self.width} leaves conv1 without channels; use a width >= 1/64")
        if self.num_classes < 2:
            problems.append(f"num_classes={self.num_classes}: segmentation needs at least 2 classes")
        if self.pretrained and self.width != 1.0:
            problems.append(f"pretrained=True needs width=1.0 (ImageNet VGG16 has fixed widths), got {self.width}")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    def channels(self, n: int) -> int:
        """``n`` channels of the paper's network scaled by ``width`` (at least 1)."""
        return max(1, round(n * self.width))

    @property
    def block_widths(self) -> tuple[int, ...]:
        return tuple(self.channels(c) for c in VGG16_WIDTHS)

    @property
    def fc_width(self) -> int:
        return self.channels(FC_WIDTH)


@dataclass(frozen=True)
class RunConfig:
    """Where and how a chapter runs. Used by every chapter and by ``book``."""

    seed: int = 0  # every random draw in the book starts from here, so CPU runs repeat exactly
    device: str = "auto"  # "auto" takes CUDA when present, else the CPU
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default (one per core)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass(frozen=True)
class Preset:
    """A named bundle of the per-concern configs; chapters read only the parts they need."""

    name: str
    description: str
    model: ModelConfig = field(default_factory=ModelConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def replace(self, **changes) -> Preset:
        """A copy with some concerns replaced, e.g. ``preset.replace(model=ModelConfig(width=0.5))``."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="the whole book in minutes on 2 CPU cores; what the tests run",
        # 1/8 width and 96 px crops cost ~1/350 of the paper's FLOPs per crop; 96/32 = 3 -> fc6 is 3x3
        model=ModelConfig(width=0.125, input_size=96, fc_kernel=3, pretrained=False),
    ),
    "cpu": Preset(
        name="cpu",
        description="the committed book when no GPU is at hand: under an hour on 2 CPU cores",
        # 1/4 width and 160 px crops cost ~1/30 of the paper's FLOPs; 160/32 = 5 -> fc6 is 5x5
        model=ModelConfig(width=0.25, input_size=160, fc_kernel=5, pretrained=False),
    ),
    "paper": Preset(
        name="paper",
        description="the paper's sizes (full VGG16 width, 224 crops, ImageNet init); meant for a GPU",
        model=ModelConfig(),
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``"auto"`` means ``paper`` with CUDA and ``cpu`` without.

    Unknown names are refused with the list of valid ones, before anything runs.
    """
    if name == "auto":
        name = auto_preset_name()
    if name not in PRESETS:
        valid = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown preset {name!r}; valid presets are: {valid} (or 'auto')")
    return PRESETS[name]


def auto_preset_name() -> str:
    """The preset ``make book`` uses when none is given: the GPU preset when CUDA is available."""
    return "paper" if torch.cuda.is_available() else "cpu"
