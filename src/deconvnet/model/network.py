"""DeconvNet and FCN-8s on one VGG16 encoder (paper Sec. 3.1, Fig. 2; Long et al. 2015).

The encoder is torchvision's own VGG16 definition (``torchvision.models.vgg.make_layers``) with its max pools
swapped for pools that keep switches. The decoder mirrors it: fc6-deconv, then five stages of unpooling and
3x3 deconvolutions, each followed by BN and ReLU, and a 1x1 score layer.

Models take RGB images in [0, 1] and normalise them with the statistics stored in ``pixel_mean`` /
``pixel_std``, which ``pretrained.load_vgg16_encoder`` sets to those its weights were trained with. Every
model is built on the CPU fast path (``fastpath.use_fast_path``: channels-last maps, fc6 / fc6-deconv as
matrix products); it computes the same function as plain NCHW convolutions, to float rounding.

Used in chapter 1 (architecture) and by every later chapter; FCN-8s in chapter 6 (ensemble).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import torch
from torch import nn
from torchvision.models import vgg

from deconvnet.config import VGG16_DEPTHS, ModelConfig
from deconvnet.model.fastpath import use_fast_path
from deconvnet.model.layers import Pool, Unpool, conv_block, deconv_block
from deconvnet.model.pretrained import load_vgg16_encoder

# FCN-8s's fc6 under ``fc_kernel=2`` (the small presets) is a "same"-padded convolution with an even kernel, and
# PyTorch notes once per process that it pads a copy of its input: that costs a little time and changes no
# number, so the note would only clutter the pages (chapters 1, 4-6) and the training logs.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths", category=UserWarning)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's RGB statistics; replaced by the weights' own on loading
IMAGENET_STD = (0.229, 0.224, 0.225)

# Decoder stages 5..1 as (stage, output channels of each 3x3 deconvolution), from the release's deploy file.
DECODER_STAGES = ((5, (512, 512, 512)), (4, (512, 512, 256)), (3, (256, 256, 128)), (2, (128, 64)), (1, (64, 64)))


def _config(cfg: ModelConfig | None, overrides: dict) -> ModelConfig:
    cfg = cfg or ModelConfig(pretrained=False)
    return replace(cfg, **overrides) if overrides else cfg


class VGGEncoder(nn.Module):
    """The 13 convolutions of VGG16 in five blocks, each followed by a pool that keeps switches.

    ``forward`` returns the pool5 map and, per block, ``(switches, size before pooling)`` for the decoder.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layer_cfg: list[int | str] = []
        for width, depth in zip(cfg.block_widths, VGG16_DEPTHS, strict=True):
            layer_cfg += [width] * depth + ["M"]
        layers = list(vgg.make_layers(layer_cfg, batch_norm=cfg.batch_norm))
        self.blocks = nn.ModuleList()
        self.pools = nn.ModuleList()
        current: list[nn.Module] = []
        for layer in layers:
            if isinstance(layer, nn.MaxPool2d):
                self.blocks.append(nn.Sequential(*current))
                self.pools.append(Pool())
                current = []
            else:
                current.append(layer)
        for b, block in enumerate(self.blocks, start=1):
            convs = [m for m in block if isinstance(m, nn.Conv2d)]
            for i, conv in enumerate(convs, start=1):
                conv.paper_name = f"conv{b}_{i}"
                if not cfg.conv_bias:
                    conv.register_parameter("bias", None)
            self.pools[b - 1].paper_name = f"pool{b}"

    def convs(self) -> list[nn.Conv2d]:
        """The 13 convolutions in order: conv1_1 ... conv5_3."""
        return [m for block in self.blocks for m in block if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor, stages: dict | None = None):
        skips = []
        for b, (block, pool_) in enumerate(zip(self.blocks, self.pools, strict=True), start=1):
            features = block(x)  # (N, C_b, H / 2^(b-1), W / 2^(b-1))
            x, switches = pool_(features)  # (N, C_b, H / 2^b, W / 2^b)
            skips.append((switches, features.shape))
            if stages is not None:
                stages[f"conv{b}"], stages[f"pool{b}"] = features, x
        return x, skips


class Segmenter(nn.Module):
    """What DeconvNet and FCN-8s share, and all that inference relies on (``infer``, ``explain``):

    * ``cfg``: the ``ModelConfig`` (``num_classes``, ``fc_kernel``, ``input_size`` ...);
    * ``pixel_mean`` / ``pixel_std``: the pixel statistics ``normalise`` applies, also the value an image is
      padded with (``infer.whole.pad_image``), so padding reads as mean colour, zero after normalising;
    * ``check_input``: both sides multiples of 32 and at least ``32 * cfg.fc_kernel``;
    * ``forward``: RGB in [0, 1], ``(N, 3, H, W)`` -> class scores ``(N, num_classes, H, W)``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.encoder = VGGEncoder(cfg)
        self.channels_last = False  # set by fastpath.use_fast_path, which every subclass calls last

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse inputs the network cannot segment exactly, saying which sizes work."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch of shape (N, 3, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():  # e.g. torchvision.io.read_image's uint8 0..255 would be misnormalised
            raise ValueError(f"expected a float image in [0, 1], got dtype {x.dtype}; convert it with "
                             "x.float() / 255 (or torchvision's F.to_dtype(x, torch.float32, scale=True))")
        h, w = x.shape[-2:]
        least = 32 * self.cfg.fc_kernel
        if h % 32 or w % 32 or h < least or w < least:
            raise ValueError(
                f"input of {h}x{w} pixels: both sides must be multiples of 32 (five 2x2 pools) and at least "
                f"{least} (pool5 must cover fc6's {self.cfg.fc_kernel}x{self.cfg.fc_kernel} kernel); "
                f"resize or pad the image, e.g. to {max(least, -(-h // 32) * 32)}x{max(least, -(-w // 32) * 32)}"
            )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``, in the memory format the weights are stored in (so no layer reorders it)."""
        x = (x - self.pixel_mean) / self.pixel_std
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def init_weights(self) -> None:
        """Gaussian weights with std ``cfg.init_std`` (0.01 in the paper), zero biases, identity BN."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=self.cfg.init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class DeconvNet(Segmenter):
    """The paper's network (Sec. 3.1, Fig. 2): VGG16 encoder, fc6/fc7 as convolutions, mirrored decoder.

    ``DeconvNet()`` is the paper's network (random init, 251,805,653 parameters with 21 classes);
    ``DeconvNet(cfg)`` or ``DeconvNet(width=0.25, input_size=160, fc_kernel=5)`` builds a variant.
    Any input whose sides are multiples of 32 and at least ``32 * fc_kernel`` comes back at its own size.
    """

    def __init__(self, cfg: ModelConfig | None = None, **overrides):
        cfg = _config(cfg, overrides)
        super().__init__(cfg)
        c5, fc, k = cfg.block_widths[-1], cfg.fc_width, cfg.fc_kernel
        opts = dict(bn=cfg.batch_norm, bias=cfg.conv_bias)
        self.fc6 = conv_block(c5, fc, k, padding=0, **opts)  # (N, 4096, 1, 1) for a 224 crop
        self.fc7 = conv_block(fc, fc, 1, padding=0, **opts)
        self.fc6_deconv = deconv_block(fc, c5, k, padding=0, **opts)  # back to (N, 512, 7, 7)
        self.unpool = Unpool()
        self.decoder = nn.ModuleList()
        c_in = c5
        for stage, widths in DECODER_STAGES:
            blocks = []
            for i, width in enumerate(widths, start=1):
                block = deconv_block(c_in, cfg.channels(width), **opts)
                block[0].paper_name = f"deconv{stage}_{i}"
                blocks.append(block)
                c_in = cfg.channels(width)
            self.decoder.append(nn.Sequential(*blocks))
        self.score = nn.Conv2d(c_in, cfg.num_classes, 1)
        self.fc6[0].paper_name, self.fc7[0].paper_name = "fc6", "fc7"
        self.fc6_deconv[0].paper_name, self.score.paper_name = "fc6_deconv", "score"
        self.init_weights()
        if cfg.decoder_init in ("spread", "identity"):
            self.spread_decoder()
        use_fast_path(self)

    @torch.no_grad()
    def spread_decoder(self) -> None:
        """Add to each 3x3 deconvolution a copy of every channel onto itself through a 3x3 box (1/9 each).

        Unpooling leaves one value in four; with this start every deconvolution smooths each map over its
        neighbours, so fc6-deconv's class evidence reaches every pixel of the score layer's input at step 0,
        much as FCN's upsamplers start as bilinear interpolation. A start, not a constraint: all weights learn.
        ``decoder_init="identity"`` also shrinks the Gaussian tenfold, so that the decoder starts close to
        copying fc6-deconv's maps through the switches and the loss's gradient reaches fc7 nearly unmixed.
        """
        for stage in self.decoder:
            for block in stage:
                deconv = block[0]  # (in, out, 3, 3)
                n = min(deconv.in_channels, deconv.out_channels)
                if self.cfg.decoder_init == "identity":
                    deconv.weight.mul_(0.1)  # the Gaussian a tenth as strong: the copy dominates at the start
                deconv.weight[range(n), range(n)] += 1 / 9

    def forward(self, x: torch.Tensor, return_stages: bool = False):
        """Class scores ``(N, num_classes, H, W)``; with ``return_stages`` also a dict of every stage's map.

        The dict holds ``conv1..conv5`` (before pooling), ``pool1..pool5``, ``fc7``, ``fc6_deconv``, and
        per decoder stage ``unpool{s}`` (the sparse map) and ``deconv{s}`` (its densified version): the maps
        of the paper's Fig. 4.
        """
        self.check_input(x)
        stages: dict | None = {} if return_stages else None
        h, skips = self.encoder(self.normalise(x), stages)  # (N, 512, 7, 7)
        h = self.fc7(self.fc6(h))  # (N, 4096, 1, 1)
        if stages is not None:
            stages["fc7"] = h
        h = self.fc6_deconv(h)  # (N, 512, 7, 7)
        if stages is not None:
            stages["fc6_deconv"] = h
        for (stage, _), block, (switches, size) in zip(DECODER_STAGES, self.decoder, reversed(skips), strict=True):
            h = self.unpool(h, switches, size)  # sparse, (N, C, 2h, 2w)
            if stages is not None:
                stages[f"unpool{stage}"] = h
            h = block(h)  # dense
            if stages is not None:
                stages[f"deconv{stage}"] = h
        scores = self.score(h).contiguous()  # (N, num_classes, H, W), NCHW whatever the layout inside
        return scores if stages is None else (scores, stages)


def _bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Weights that make a ConvTranspose2d a per-channel bilinear upsampler (FCN's initialisation)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    kernel = ramp[:, None] * ramp[None, :]
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


class FCN8s(Segmenter):
    """FCN-8s (Long et al. 2015) on the same encoder as DeconvNet, the ensemble partner of paper Sec. 3.3.

    fc6 is a ``fc_kernel`` convolution with "same" padding, so scores live on the pool5 grid; they are
    upsampled 2x and fused with pool4 scores, again 2x with pool3 scores, then 8x to the input.
    """

    def __init__(self, cfg: ModelConfig | None = None, **overrides):
        cfg = _config(cfg, overrides)
        super().__init__(cfg)
        n, c3, c4, c5, fc = cfg.num_classes, cfg.block_widths[2], cfg.block_widths[3], cfg.block_widths[4], cfg.fc_width
        opts = dict(bn=cfg.batch_norm, bias=cfg.conv_bias)
        self.fc6 = conv_block(c5, fc, cfg.fc_kernel, padding="same", **opts)
        self.fc7 = conv_block(fc, fc, 1, padding=0, **opts)
        self.score_fr = nn.Conv2d(fc, n, 1)
        self.score_pool4 = nn.Conv2d(c4, n, 1)
        self.score_pool3 = nn.Conv2d(c3, n, 1)
        self.upscore2 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(n, n, 16, stride=8, padding=4, bias=False)
        for name in ("score_fr", "score_pool4", "score_pool3", "upscore2", "upscore_pool4", "upscore8"):
            getattr(self, name).paper_name = name
        self.fc6[0].paper_name, self.fc7[0].paper_name = "fc6", "fc7"
        self.init_weights()
        # FCN starts its skips at zero and its upsamplers as bilinear interpolation (Long et al., Sec. 4.3)
        for skip in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(skip.weight)
            nn.init.zeros_(skip.bias)
        for up in (self.upscore2, self.upscore_pool4, self.upscore8):
            up.weight.data.copy_(_bilinear_kernel(n, up.kernel_size[0]))
        use_fast_path(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h = self.normalise(x)
        pooled = []
        for block, pool_ in zip(self.encoder.blocks, self.encoder.pools, strict=True):
            h, _ = pool_(block(h))
            pooled.append(h)
        h = self.score_fr(self.fc7(self.fc6(h)))  # (N, classes, H/32, W/32)
        h = self.upscore2(h) + self.score_pool4(pooled[3])  # (N, classes, H/16, W/16)
        h = self.upscore_pool4(h) + self.score_pool3(pooled[2])  # (N, classes, H/8, W/8)
        return self.upscore8(h).contiguous()  # (N, classes, H, W), NCHW whatever the layout inside


def build_model(cfg: ModelConfig, kind: str = "deconvnet") -> Segmenter:
    """A DeconvNet or FCN-8s for ``cfg``, with ImageNet VGG16 encoder weights when ``cfg.pretrained``.

    The paper initialises the encoder from ImageNet VGG16 and the rest from a Gaussian (Sec. 4.1).
    Used in chapters 1, 4 and 6.
    """
    kinds = {"deconvnet": DeconvNet, "fcn8s": FCN8s}
    if kind not in kinds:
        raise ValueError(f"unknown model kind {kind!r}; valid kinds are: {', '.join(kinds)}")
    model = kinds[kind](cfg)
    if cfg.pretrained:
        load_vgg16_encoder(model)
    return model
