"""Stage 0, the ImageNet stand-in: a shape classifier whose encoder, fc6 and fc7 start the segmenters."""

import dataclasses

import pytest
import torch

from deconvnet.config import ModelConfig
from deconvnet.model.network import DeconvNet, FCN8s
from deconvnet.train.stage0 import ObjectCrops, ShapeClassifier, crop_accuracy, transfer_pretrained

CFG = ModelConfig(width=0.0625, input_size=64, fc_kernel=2, pretrained=False)


def trained_looking_classifier(seed=0):
    """A classifier with non-trivial BN statistics and affine parameters, as after training."""
    torch.manual_seed(seed)
    net = ShapeClassifier(CFG)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 3, 64, 64) * 2)  # running statistics move away from (0, 1)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_classifier_shapes_and_broadcast():
    net = ShapeClassifier(CFG).eval()
    x = torch.rand(2, 3, 64, 64)
    scores = net.classify(x)
    assert scores.shape == (2, 21)
    spread = net(x)
    assert spread.shape == (2, 21, 64, 64)
    assert torch.equal(spread[:, :, 17, 40], scores)
    assert net.classify(torch.rand(1, 3, 128, 96)).shape == (1, 21), "larger inputs average over positions"


@pytest.mark.parametrize("kind", [DeconvNet, FCN8s])
def test_transfer_copies_encoder_fc6_fc7(kind):
    source = trained_looking_classifier()
    target = kind(CFG).eval()
    transfer_pretrained(source, target)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, _ = source.encoder(source.normalise(x))
        b, _ = target.encoder(target.normalise(x))
    assert torch.equal(a, b)
    assert torch.equal(source.fc7[0].weight, target.fc7[0].weight)
    assert torch.equal(source.fc6[1].running_var, target.fc6[1].running_var)


def test_transfer_into_a_network_without_bn_folds_bn_exactly():
    source = trained_looking_classifier(1)
    target = DeconvNet(dataclasses.replace(CFG, batch_norm=False)).eval()
    transfer_pretrained(source, target)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        a = source.fc7(source.fc6(source.encoder(source.normalise(x))[0]))
        b = target.fc7(target.fc6(target.encoder(target.normalise(x))[0]))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in target.modules())
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert a.abs().max() > 1e-2, "a test on an all-zero output would prove nothing"


def test_transfer_refuses_another_width():
    with pytest.raises(ValueError, match="another width"):
        transfer_pretrained(ShapeClassifier(CFG), DeconvNet(dataclasses.replace(CFG, width=0.125)))


class _Crops:
    """Stands in for data.Stage1Crops: items (image, instance, window) and annotation labels."""

    class _Dataset:
        def annotation(self, i):
            return torch.tensor([3, 7]).numpy(), None, (64, 64)

    def __init__(self):
        self.dataset = self._Dataset()
        self.items = [(0, 0, None), (0, 1, None), (1, 1, None)]
        self.epoch = None

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.items)

    def __getitem__(self, j):
        label = torch.zeros(64, 64, dtype=torch.int64)
        label[:4] = 255
        return torch.rand(3, 64, 64), label


def test_object_crops_label_every_pixel_with_the_centred_instance():
    crops = ObjectCrops(_Crops())
    assert crops.classes == [3, 7, 7]
    _, label = crops[0]
    assert label.shape == (64, 64) and bool((label == 3).all())
    crops.set_epoch(4)
    assert crops.crops.epoch == 4
    score = crop_accuracy(ShapeClassifier(CFG), crops)
    assert score["commonest"] == pytest.approx(2 / 3) and 0 <= score["accuracy"] <= 1 and score["crops"] == 3
