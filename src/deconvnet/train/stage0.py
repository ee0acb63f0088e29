"""Stage 0: fc6 and fc7 learn to name the centred object before the decoder trains.

The paper starts its encoder, fc6 and fc7 from VGG16 trained to classify ImageNet (Sec. 4.1, 6.1); only the
decoder starts from random weights. The small presets keep ImageNet's 13 convolutions (``model.pretrained``)
but work on 64 px crops, where pool5 is 2x2: VGG16's 7x7 fc6 cannot be used, so fc6 and fc7 would start
from random weights and the decoder would learn from features that name nothing. Stage 0 gives them what
ImageNet's classifier gives the paper: the learning study (appendix) measured it lifting the decoder's class
accuracy on stage-1 crops by about 12 points at 4,000 crops.

* ``ShapeClassifier`` - the segmentation network's encoder, fc6 and fc7 (same module names, same shapes),
  topped by one 1x1 classification layer (fc8), like VGG16's classifier written as convolutions;
* ``ObjectCrops`` - stage-1 crops whose label is the class of their centred object, on every pixel, so the
  segmentation engine's per-pixel loss is ordinary classification cross-entropy (one vote per crop);
* ``transfer_pretrained`` - copies encoder, fc6 and fc7 into a DeconvNet or FCN-8s; into a network without
  BN it folds each BN into its convolution, so that network starts from the very same function.

Stage 0 sees only stage 1's training crops, never a val image. Used through ``pipeline`` by every chapter that
loads a trained model of a preset with ``Preset.pretrain`` (``quick`` and ``cpu``); the ``paper`` preset has
none.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch.utils.data import Dataset

from deconvnet.config import ModelConfig
from deconvnet.model.fastpath import use_fast_path
from deconvnet.model.layers import conv_block
from deconvnet.model.network import Segmenter, _config

TRANSFERRED = ("encoder", "fc6", "fc7")  # the modules ImageNet initialises in the paper; the decoder is new


class ShapeClassifier(Segmenter):
    """VGG16's encoder, fc6 and fc7 with a 1x1 classification layer: ImageNet's network at our sizes.

    ``classify(x)`` gives class scores ``(N, num_classes)`` (fc7 averaged over positions when the input is
    larger than a crop); ``forward`` spreads them over the image, ``(N, num_classes, H, W)``, so the
    segmentation engine trains the classifier unchanged.
    """

    def __init__(self, cfg: ModelConfig | None = None, **overrides):
        cfg = _config(cfg, overrides)
        super().__init__(cfg)
        c5, fc, k = cfg.block_widths[-1], cfg.fc_width, cfg.fc_kernel
        opts = dict(bn=cfg.batch_norm, bias=cfg.conv_bias)
        self.fc6 = conv_block(c5, fc, k, padding=0, **opts)  # (N, 4096, 1, 1) for a crop, as in DeconvNet
        self.fc7 = conv_block(fc, fc, 1, padding=0, **opts)
        self.fc8 = nn.Conv2d(fc, cfg.num_classes, 1)  # VGG16's fc8, one output per class
        self.fc6[0].paper_name, self.fc7[0].paper_name, self.fc8.paper_name = "fc6", "fc7", "fc8"
        self.init_weights()
        use_fast_path(self)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, _ = self.encoder(self.normalise(x))  # (N, 512, H/32, W/32)
        h = self.fc7(self.fc6(h))  # (N, 4096, 1, 1) for a crop
        return self.fc8(h).mean((2, 3))  # (N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.classify(x)
        return scores[:, :, None, None].expand(-1, -1, *x.shape[-2:])  # (N, num_classes, H, W)


class ObjectCrops(Dataset):
    """Stage-1 crops labelled, on every pixel, with the class of the instance they are centred on.

    Wraps a ``data.Stage1Crops``; the image side is unchanged (same crops, augmentation and epochs).
    """

    def __init__(self, crops):
        self.crops = crops
        labels_of = {}
        self.classes = []
        for i, instance, _ in crops.items:
            if i not in labels_of:
                labels_of[i] = crops.dataset.annotation(i)[0]
            self.classes.append(int(labels_of[i][instance]))

    def set_epoch(self, epoch: int) -> None:
        self.crops.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, j: int):
        image, label = self.crops[j]
        return image, torch.full(label.shape, self.classes[j], dtype=torch.int64)  # (3, S, S), (S, S)


@torch.no_grad()
def crop_accuracy(classifier: ShapeClassifier, crops: ObjectCrops, batch_size: int = 64) -> dict:
    """Top-1 accuracy on ``crops`` beside the commonest class's share (what always guessing it scores)."""
    classifier.eval()
    correct = 0
    for start in range(0, len(crops), batch_size):
        idx = range(start, min(start + batch_size, len(crops)))
        images = torch.stack([crops[j][0] for j in idx])  # (B, 3, S, S)
        guess = classifier.classify(images).argmax(1)
        correct += int((guess == torch.tensor([crops.classes[j] for j in idx])).sum())
    counts = torch.bincount(torch.tensor(crops.classes))
    return {"accuracy": correct / len(crops), "commonest": int(counts.max()) / len(crops), "crops": len(crops)}


def _units(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every convolution of encoder, fc6 and fc7 in order, with the BN that follows it (if any)."""
    units: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    for name in TRANSFERRED:
        for layer in getattr(model, name).modules():
            if isinstance(layer, nn.Conv2d):
                units.append((layer, None))
            elif isinstance(layer, nn.BatchNorm2d):
                units[-1] = (units[-1][0], layer)
    return units


@torch.no_grad()
def transfer_pretrained(classifier: ShapeClassifier, model: Segmenter) -> None:
    """Start ``model``'s encoder, fc6 and fc7 from ``classifier``'s (paper Sec. 4.1 with our stand-in).

    A BN of the classifier goes into the model's BN when it has one; otherwise it is folded into the
    convolution with its running statistics (w' = w g / s, b' = (b - m) g / s + beta), which computes exactly
    what the classifier computes in inference mode.
    """
    source, target = _units(classifier), _units(model)
    if len(source) != len(target):
        raise ValueError(f"cannot transfer {len(source)} pretrained convolutions into {len(target)}")
    for (conv, bn), (conv_t, bn_t) in zip(source, target, strict=True):
        if conv.weight.shape != conv_t.weight.shape:
            raise ValueError(f"pretrained {getattr(conv, 'paper_name', 'conv')} has shape "
                             f"{tuple(conv.weight.shape)}, the model {tuple(conv_t.weight.shape)}: another width")
        weight, bias = conv.weight, conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        if bn is not None and bn_t is None:
            weight, bias = fuse_conv_bn_weights(weight, bias, bn.running_mean, bn.running_var, bn.eps,
                                                bn.weight, bn.bias)
        elif bn is not None:
            bn_t.load_state_dict(bn.state_dict())
        conv_t.weight.copy_(weight)
        if conv_t.bias is not None:
            conv_t.bias.copy_(bias)
        elif bn is None and conv.bias is not None:
            raise ValueError("the model's convolutions have no bias to take the pretrained one")
