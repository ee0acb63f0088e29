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
    # How the decoder's 3x3 deconvolutions start: "gaussian" (the paper) or "spread", the Gaussian plus each
    # channel copied to itself through a 3x3 box, so that from the first step the unpooled class evidence of
    # fc6-deconv reaches every pixel, as FCN's upsamplers start as bilinear interpolation; "identity": the
    # same with the Gaussian a tenth as strong, so the copy dominates (learning study)
    decoder_init: str = "gaussian"
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
        if self.decoder_init not in ("gaussian", "spread", "identity"):
            problems.append(f"decoder_init={self.decoder_init!r}: use 'gaussian', 'spread' or 'identity'")
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
class DataConfig:
    """Generated scenes and the samples of the two training stages (paper Sec. 4.2, 6.1). Used by ``data``.

    Defaults are the ``paper`` preset's: VOC-sized images and counts.
    """

    seed: int = 0  # scenes depend on this seed alone, not on the run's, so all runs of a preset share one tree
    train_images: int = 10582  # VOC 2012 train + SBD ("train_aug"), the images behind the paper's stage 2
    val_images: int = 1449  # VOC 2012 val, where the paper runs its ablations
    image_size: int = 500  # longer side in pixels, as VOC's JPEGs; the shorter side is 75-100% of it
    min_instances: int = 1  # at least one object, so every image yields stage-1 crops
    max_instances: int = 6  # enough for occlusion and clutter while every object stays readable
    min_scale: float = 0.05  # object side / shorter image side: ~20 px at 500 px, where FCN fails (Sec. 6.2)
    max_scale: float = 1.1  # up to filling and overflowing the image, FCN's other failure case
    class_skew: float = 0.7  # Zipf exponent of class frequency: 20**0.7 ~ 8x commonest/rarest, like VOC's
    min_visible: float = 0.3  # an object hidden more than 70% by later ones is moved or dropped: it must stay legible
    void_px: int = 4  # void band outside every object boundary; VOC's band is ~5 px on 500 px images
    jpeg_quality: int = 90  # close to VOC's JPEGs, so compression artefacts are part of the input
    context: float = 1.2  # crop windows enlarge boxes 1.2x to show some context (paper Sec. 6.1)
    square_windows: bool = True  # a square window is resized to the square crop without stretching the shape
    resize_ratio: float = 250 / 224  # windows go to this x crop size, then a random crop (paper: 250 -> 224)
    mirror: bool = True  # random horizontal flips as in the paper; a mirrored shape keeps its class
    window_iou: float = 0.5  # stage 2 keeps a proposal whose IoU with a ground-truth box is >= 0.5 (PASCAL's rule)
    balance_cap: int = 8  # stage 2 repeats windows of classes under the median count, at most this many times
    proposal_mode: str = "fast"  # selective search's "fast" strategy: ~1-2k boxes per image, offline, ~0.5 s
    proposal_side: int = 320  # image's longer side for selective search; its cost grows with the area
    max_proposals: int = 2000  # boxes kept per image in selective search's order (paper: ~2000 EdgeBoxes)

    def __post_init__(self) -> None:
        problems = []
        if self.train_images < 1 or self.val_images < 1:
            problems.append(f"train_images={self.train_images}, val_images={self.val_images}: need at least 1 each")
        if self.image_size < 32:
            problems.append(f"image_size={self.image_size} is too small to draw shapes; use >= 32")
        if not 1 <= self.min_instances <= self.max_instances:
            problems.append(f"need 1 <= min_instances <= max_instances, got {self.min_instances}, {self.max_instances}")
        if not 0 < self.min_scale <= self.max_scale:
            problems.append(f"need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        if not 0 <= self.min_visible <= 1 or self.void_px < 0 or not 1 <= self.jpeg_quality <= 100:
            problems.append("min_visible must lie in 0..1, void_px >= 0, jpeg_quality in 1..100")
        if self.context < 1 or self.resize_ratio < 1 or not 0 < self.window_iou <= 1 or self.balance_cap < 1:
            problems.append("need context >= 1, resize_ratio >= 1, 0 < window_iou <= 1, balance_cap >= 1")
        if self.proposal_mode not in ("fast", "quality", "single"):
            problems.append(f"proposal_mode={self.proposal_mode!r}: use 'fast', 'quality' or 'single'")
        if problems:
            raise ValueError("invalid DataConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class TrainConfig:
    """One training stage: the paper's SGD recipe (Sec. 4.1, 6.1). Used by ``train.train`` (chapter 4).

    Defaults are the paper's stage 1; ``STAGE2_PAPER`` below is its stage 2.
    """

    iterations: int = 20_000  # optimiser steps; the paper ran 20k in stage 1 and 40k in stage 2
    batch_size: int = 8  # crops per forward pass (the paper's Caffe batch)
    accumulate: int = 8  # forward passes per step: 8 x 8 = the paper's effective batch of 64
    lr: float = 0.01  # the paper's base learning rate
    lr_step: int = 9_000  # multiply the rate by lr_gamma every lr_step steps (9k in stage 1, 10k in stage 2)
    lr_gamma: float = 0.1  # the paper's step factor
    momentum: float = 0.9  # the paper's momentum
    weight_decay: float = 5e-4  # the paper's weight decay
    log_every: int = 10  # steps between rows of log.csv; the loss is averaged over them
    val_every: int = 2_000  # steps between validations on whole val images
    val_images: int = 0  # val images per validation; 0 = all (fewer keeps frequent checks cheap)
    checkpoint_every: int = 500  # steps between checkpoints: a killed run repeats at most this many
    workers: int = 2  # DataLoader processes preparing crops while the network trains
    amp: bool = True  # bf16 autocast on a GPU, 2-3x an fp32 step there (the CPU always trains in fp32)
    sync_bn: bool = True  # under torchrun on GPUs, BN statistics over the global batch (SyncBatchNorm)
    # "sgd" (the paper: momentum, weight decay, step schedule) or "adam" (same rate schedule and weight decay,
    # no momentum term; the learning study tries it because it scales each weight's step by its own history)
    optimizer: str = "sgd"
    # True: the encoder keeps its starting weights (ImageNet's, or stage 0's) and its BNs their statistics, and
    # only fc6 onwards learn; saves the encoder's backward pass. The paper fine-tunes everything (False)
    freeze_encoder: bool = False

    def __post_init__(self) -> None:
        if min(self.iterations, self.batch_size, self.accumulate, self.lr_step, self.log_every,
               self.val_every, self.checkpoint_every) < 1 or self.lr <= 0 or self.val_images < 0:
            raise ValueError(f"invalid TrainConfig {self}: counts must be >= 1 and lr > 0")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r}: use 'sgd' or 'adam'")

    @property
    def global_batch(self) -> int:
        """Crops per optimiser step in a single process (times the number of processes under torchrun)."""
        return self.batch_size * self.accumulate


STAGE2_PAPER = TrainConfig(iterations=40_000, lr_step=10_000)  # the paper's stage 2, started from stage 1


@dataclass(frozen=True)
class CRFParams:
    """Fully connected CRF settings (paper Sec. 5.2); the defaults are the release's
    (``generate_EDeconvNet_CRF_results.m``). Used by ``ensemble.dense_crf`` (chapter 6) and ``InferConfig.crf``."""

    gaussian_sxy: float = 3.0  # smoothness kernel: spatial std in pixels
    gaussian_weight: float = 3.0  # ... and its Potts weight
    bilateral_sxy: float = 20.0  # appearance kernel: spatial std in pixels
    bilateral_srgb: float = 3.0  # ... colour std on the 0-255 scale
    bilateral_weight: float = 5.0  # ... and its Potts weight
    iterations: int = 10  # mean-field steps

    def label(self) -> str:
        """The three settings chapter 6 searches, for tables: ``"w 5, sxy 20, srgb 3"``."""
        return f"w {self.bilateral_weight:g}, sxy {self.bilateral_sxy:g}, srgb {self.bilateral_srgb:g}"


@dataclass(frozen=True)
class InferConfig:
    """Instance-wise inference, the ensemble and its CRF (paper Sec. 5.1, 5.2, 6.2). Used by ``aggregate`` and
    ``ensemble`` (chapters 5 and 6) and by ``python -m deconvnet segment``.

    Defaults are the ``paper`` preset's.
    """

    top_n: int = 50  # proposals segmented per image: the paper keeps the top 50 of ~2000 (Sec. 5.1)
    batch_size: int = 50  # windows per forward pass: one image's proposals go through the network together
    uncovered: str = "background"  # pixels no window covers: "background" (the paper's zero padding) or "whole"
    # How the windows' class scores combine per pixel: "max" (Eq. 1, what the paper uses) or "mean" (Eq. 2, the
    # average over the windows covering the pixel); chapter 5 measures both
    aggregation: str = "max"
    eval_images: int = 0  # val images chapters 5 and 6 score; 0 = all but the tuning images
    tune_images: int = 30  # the last val images, kept apart to tune the CRF on, never scored
    # The CRF search (chapter 6): every combination of these bilateral-kernel settings is tried on the tuning
    # images, and so is the release's own setting (weight 5, sxy 20, srgb 3); the Gaussian kernel and the 10
    # iterations stay at the release's values. A CRF pass costs ~1-2 s on a 500 px image.
    crf_weights: tuple[float, ...] = (3.0, 5.0, 10.0)  # bilateral weight (Potts compatibility)
    crf_sxy: tuple[float, ...] = (20.0, 50.0)  # bilateral spatial std in pixels
    crf_srgb: tuple[float, ...] = (3.0, 10.0)  # bilateral colour std (0-255 scale)
    # The CRF `python -m deconvnet segment --crf preset` applies, and `--crf tuned` where chapter 6 has not yet
    # tuned one for this preset: the release's setting
    crf: CRFParams = field(default_factory=CRFParams)

    def __post_init__(self) -> None:
        if self.top_n < 1 or self.batch_size < 1 or self.eval_images < 0 or self.tune_images < 0:
            raise ValueError(f"invalid InferConfig {self}: top_n and batch_size must be >= 1, image counts >= 0")
        if self.uncovered not in ("background", "whole"):
            raise ValueError(f"uncovered={self.uncovered!r}: use 'background' or 'whole'")
        if self.aggregation not in ("max", "mean"):
            raise ValueError(f"aggregation={self.aggregation!r}: use 'max' (paper Eq. 1) or 'mean' (Eq. 2)")

    def image_split(self, n: int) -> tuple[list[int], list[int]]:
        """Indices of the val images to score and of those to tune the CRF on (the last ones), disjoint."""
        tune = min(self.tune_images, n - 1)  # at least one image is scored
        rest = n - tune
        scored = rest if self.eval_images == 0 else min(self.eval_images, rest)
        return list(range(scored)), list(range(rest, n))


@dataclass(frozen=True)
class ExplainConfig:
    """How much chapters 2, 3 and 7 look inside the networks. Used by notebooks 02 (Zeiler & Fergus projections
    in ImageNet VGG16), 03 (linear probes of the trained decoder) and 07 (the pointing game). Defaults are the
    ``paper`` preset's; ``cpu`` scores fewer objects in the pointing game."""

    projection_side: int = 224  # ImageNet photos are resized to VGG16's input side before projecting (ch. 2)
    projection_photos: int = 8  # photos searched for each channel's strongest activations
    # channels projected per layer: the deepest layer gets most, as the paper's Fig. 4 reads the deep end
    projection_channels: tuple[tuple[str, int], ...] = (("conv5_3", 4), ("conv4_3", 2), ("conv3_3", 2))
    projection_per_channel: int = 4  # strongest activations projected per channel (one grid row each)
    probe_fit_images: int = 40  # train images whose pixels fit the linear probes (ch. 3)
    probe_eval_images: int = 60  # val images that score them; full-width maps: ~3 min on 2 cores at 224 px
    probe_pixels_per_image: int = 1000  # pixels sampled per fitting image, so every image weighs the same
    pointing_objects: int = 200  # objects the pointing game scores (ch. 7): about 8 s each on 2 cores (cpu preset)

    def __post_init__(self) -> None:
        counts = (self.projection_side, self.projection_photos, self.projection_per_channel,
                  self.probe_fit_images, self.probe_eval_images, self.probe_pixels_per_image, self.pointing_objects)
        if min(counts) < 1 or any(n < 1 for _, n in self.projection_channels):
            raise ValueError(f"invalid ExplainConfig {self}: every count must be >= 1")


@dataclass(frozen=True)
class Preset:
    """A named bundle of the per-concern configs; chapters read only the parts they need."""

    name: str
    description: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    stage1: TrainConfig = field(default_factory=TrainConfig)
    stage2: TrainConfig = STAGE2_PAPER
    # Stage 0 (``shape_pretraining``): the encoder, fc6 and fc7 first learn to name the centred object of
    # stage-1 crops, as the paper's start from VGG16's whole classifier taught them ImageNet's classes; the
    # encoder starts from ImageNet when ``model.pretrained``. None = no stage 0 (the paper converts VGG16's fc6
    # and fc7, which do not ship offline here)
    pretrain: TrainConfig | None = None
    infer: InferConfig = field(default_factory=InferConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def replace(self, **changes) -> Preset:
        """A copy with some concerns replaced, e.g. ``preset.replace(model=ModelConfig(width=0.5))``."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="the whole book in minutes on 2 CPU cores; what the tests run",
        # the cpu preset's network (full width, ImageNet VGG16, 64 px crops) on tiny data and budgets
        model=ModelConfig(width=1.0, input_size=64, fc_kernel=2, pretrained=True),
        # ~200 small scenes: the tree and its proposals are made in well under a minute on 2 cores
        data=DataConfig(train_images=160, val_images=48, image_size=128, min_scale=0.08, void_px=1,
                        proposal_side=128),
        # a dozen steps of 4 crops per stage: seconds per stage, enough to test every path, not to learn
        pretrain=TrainConfig(iterations=8, batch_size=4, accumulate=1, lr=0.001, lr_step=8, log_every=2,
                             val_every=8, checkpoint_every=4, workers=0),
        stage1=TrainConfig(iterations=12, batch_size=4, accumulate=1, lr_step=8, log_every=2, val_every=12,
                           val_images=8, checkpoint_every=6, workers=0),
        stage2=TrainConfig(iterations=16, batch_size=4, accumulate=1, lr_step=12, log_every=2, val_every=16,
                           val_images=8, checkpoint_every=8, workers=0),
        # 8 scored images x 50 windows keep chapters 5 and 6 under a minute and a half each on 2 busy cores;
        # the CRF search tries 2 settings on 3 images (128 px: about 0.1-0.3 s per CRF pass)
        infer=InferConfig(eval_images=8, tune_images=3, crf_weights=(10.0,), crf_sxy=(10.0,),
                          crf_srgb=(3.0, 10.0)),
        # chapters 2 and 3 in about a minute each: smaller photos, fewer channels, fewer probe images
        explain=ExplainConfig(projection_side=128, projection_photos=5,
                              projection_channels=(("conv5_3", 3), ("conv4_3", 1), ("conv3_3", 1)),
                              projection_per_channel=3, probe_fit_images=12, probe_eval_images=16,
                              probe_pixels_per_image=500, pointing_objects=12),
    ),
    "cpu": Preset(
        name="cpu",
        description="the committed book when no GPU is at hand: about two hours on 2 CPU cores from nothing",
        # The learning study (appendix) decides: the paper's full-width network from ImageNet VGG16, on 64 px
        # crops (1/12 of a 224 crop's cost; 64/32 = 2 -> fc6 is 2x2), ~7 crops/s of training on 2 cores. From
        # random weights, narrower networks named no class at all within the budget
        model=ModelConfig(width=1.0, input_size=64, fc_kernel=2, pretrained=True),
        # a few thousand scenes a little larger than the crops; proposals at 192 px take minutes, once
        data=DataConfig(train_images=2400, val_images=400, image_size=224, min_scale=0.06, void_px=2,
                        proposal_side=192),
        # Stage 0 as the study's `imagenet64-stage0-lr0.001` arm: 250 steps x 8 = 2,000 crops at lr 0.001 (at
        # 0.01 the new fc6/fc7 diverged), no drop; it names 69% of val crops and lifts the decoder's "what"
        pretrain=TrainConfig(iterations=250, batch_size=8, accumulate=1, lr=0.001, lr_step=250, log_every=25,
                             val_every=250, checkpoint_every=50, workers=1),
        # batch 8 without accumulation, the study's batch: 200 + 400 steps see 4,800 crops, ~12 minutes per
        # recipe; the rate drops for the last fifth of each stage, as the paper's drops come late
        stage1=TrainConfig(iterations=200, batch_size=8, accumulate=1, lr_step=160, log_every=10, val_every=200,
                           val_images=50, checkpoint_every=50, workers=1),
        stage2=TrainConfig(iterations=400, batch_size=8, accumulate=1, lr_step=320, log_every=10,
                           val_every=400, val_images=50, checkpoint_every=50, workers=1),
        # 40 scored images (2,000 windows) take a few minutes per chapter at full width; 16 more tune the CRF
        # over 8 settings, the spatial stds scaled to these 224 px images (the release's 20 px is for 500 px)
        infer=InferConfig(eval_images=40, tune_images=16, crf_weights=(5.0, 10.0), crf_sxy=(10.0, 20.0),
                          crf_srgb=(3.0, 10.0)),
        # 32 objects for the pointing game: a hit rate's interval about +-15 points, ~3 minutes of chapter 7
        explain=ExplainConfig(pointing_objects=32),
    ),
    "paper": Preset(
        name="paper",
        description="the paper's sizes (full VGG16 width, 224 crops, ImageNet init); meant for a GPU",
        model=ModelConfig(),
        data=DataConfig(),  # VOC's sizes: 10,582 train and 1,449 val images of 500 px
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
