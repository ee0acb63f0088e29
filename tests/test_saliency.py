"""The saliency methods against captum and pytorch-grad-cam (independent implementations), on a tiny VGG-like net.

Captum agrees to float precision (asserted: relative 1e-5; measured: identical) for vanilla, deconvnet, guided
backprop, Grad-CAM and guided Grad-CAM. Where pytorch-grad-cam is installed, its Grad-CAM (scaled to [0, 1],
resized with OpenCV) agrees within 1e-6 when we scale the same way, within 1e-4 when our map is scaled once.
"""

from __future__ import annotations

import gc
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam, LayerGradCam, Saliency
from torch import nn

from deconvnet.explain import saliency

pytestmark = [  # captum's notices, given at every call
    pytest.mark.filterwarnings("ignore:Setting backward hooks"),
    pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients"),
]

LAYER = "features.relu3"  # the last rectified conv maps, (N, 16, 8, 8)


def tiny_vgg(activation=lambda: nn.ReLU(inplace=True)) -> nn.Module:
    """Convs, in-place ReLUs and max pools like VGG16, small enough for a test."""
    torch.manual_seed(0)
    features = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=activation(), conv2=nn.Conv2d(8, 8, 3, padding=1),
        relu2=activation(), pool1=nn.MaxPool2d(2), conv3=nn.Conv2d(8, 16, 3, padding=1), relu3=activation(),
        pool2=nn.MaxPool2d(2)))
    head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 32), activation(), nn.Linear(32, 5))
    model = nn.Sequential(OrderedDict(features=features, head=head)).eval()
    for m in model.modules():  # He init keeps the signal alive through the layers, so no map is trivially zero
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            nn.init.normal_(m.bias, std=0.1)
    return model


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


CLASSES = [0, 3, 4]


def assert_agree(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert ours.abs().max() > 0, "an all-zero map agrees with anything"
    theirs = theirs.detach()
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol * float(theirs.abs().max()))


@pytest.mark.parametrize("method, reference", [
    (saliency.vanilla, Saliency),
    (saliency.deconvnet, Deconvolution),
    (saliency.guided_backprop, GuidedBackprop),
])
def test_gradient_methods_match_captum(method, reference, x):
    model = tiny_vgg()
    ours = method(model, x, CLASSES)
    kwargs = {"abs": False} if method is saliency.vanilla else {}
    assert_agree(ours, reference(model).attribute(x.clone(), target=CLASSES, **kwargs))


class _CaptumReLU6Rules:
    """Captum's rules hook only nn.ReLU; the same rules on ReLU6 modules (a Hardtanh) check ours there."""

    def _register_hooks(self, module):
        from captum._utils.common import _register_backward_hook

        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))


class GuidedBackprop6(_CaptumReLU6Rules, GuidedBackprop):
    pass


class Deconvolution6(_CaptumReLU6Rules, Deconvolution):
    pass


@pytest.mark.parametrize("method, reference", [(saliency.deconvnet, Deconvolution6),
                                               (saliency.guided_backprop, GuidedBackprop6)])
def test_relu6_rules_match_captum_rules(method, reference, x):
    model = tiny_vgg(lambda: nn.ReLU6(inplace=True))
    x = x * 10  # drives some pre-activations past 6, where ReLU6's forward mask closes
    ours = method(model, x, CLASSES)
    assert_agree(ours, reference(model).attribute(x.clone(), target=CLASSES))


def test_rules_differ_as_defined(x):
    """Deconvnet ignores the forward mask, guided backprop also keeps only positive signal."""
    model = tiny_vgg()
    plain, deconv, guided = (f(model, x, CLASSES) for f in (saliency.vanilla, saliency.deconvnet,
                                                             saliency.guided_backprop))
    assert not torch.allclose(plain, guided) and not torch.allclose(deconv, guided)


def test_in_place_and_out_of_place_relus_agree(x):
    in_place, out_of_place = tiny_vgg(), tiny_vgg(lambda: nn.ReLU(inplace=False))
    for method in (saliency.vanilla, saliency.deconvnet, saliency.guided_backprop):
        torch.testing.assert_close(method(in_place, x, CLASSES), method(out_of_place, x, CLASSES))
    torch.testing.assert_close(saliency.grad_cam(in_place, x, CLASSES, "features.conv3"),
                               saliency.grad_cam(out_of_place, x, CLASSES, "features.conv3"))


def test_grad_cam_matches_captum_to_float_precision(x):
    model = tiny_vgg()
    ours = saliency.grad_cam(model, x, CLASSES, LAYER, upsample=False)  # (3, 1, 8, 8)
    theirs = LayerGradCam(model, model.features.relu3).attribute(x, target=CLASSES, relu_attributions=True)
    assert_agree(ours, theirs)
    upsampled = saliency.grad_cam(model, x, CLASSES, LAYER)
    assert upsampled.shape == (3, 1, 16, 16)
    torch.testing.assert_close(upsampled, F.interpolate(ours, size=(16, 16), mode="bilinear"))


def _min_max(cam: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's per-image scaling to [0, 1]."""
    cam = cam - cam.amin((1, 2, 3), keepdim=True)
    return cam / (cam.amax((1, 2, 3), keepdim=True) + 1e-7)


def test_grad_cam_matches_pytorch_grad_cam(x):
    """A second, optional reference: not a project dependency (its OpenCV clashes with opencv-contrib)."""
    grad_cam_package = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    GradCAM = grad_cam_package.GradCAM
    model = tiny_vgg()
    targets = [ClassifierOutputTarget(c) for c in CLASSES]
    with GradCAM(model, target_layers=[model.features.relu3]) as cam:
        theirs = torch.from_numpy(cam(input_tensor=x, targets=targets))[:, None]  # (3, 1, 16, 16) in [0, 1]
    # they scale each low-resolution map to [0, 1], resize it (OpenCV) and scale it again; so do we here
    low = saliency.grad_cam(model, x, CLASSES, LAYER, upsample=False)
    ours = _min_max(F.interpolate(_min_max(low), size=(16, 16), mode="bilinear"))
    assert (ours - theirs).abs().max() < 1e-6
    # without their epsilons, our upsampled map scaled once differs by their size relative to the map's range
    assert (_min_max(saliency.grad_cam(model, x, CLASSES, LAYER)) - theirs).abs().max() < 1e-4


def test_guided_grad_cam_matches_captum(x):
    """Captum multiplies guided backprop by its Grad-CAM resized to the input, as the paper does.

    (pytorch-grad-cam's recipe also subtracts each map's minimum first, so it is not compared here.)
    """
    model = tiny_vgg()
    ours = saliency.guided_grad_cam(model, x, CLASSES, LAYER)
    theirs = GuidedGradCam(model, model.features.relu3).attribute(x.clone(), target=CLASSES,
                                                                 interpolate_mode="bilinear")
    assert_agree(ours, theirs)


def test_batches_give_each_item_its_own_class(x):
    model = tiny_vgg()
    batched = saliency.explain(model, x, CLASSES, layer=LAYER)
    for i, c in enumerate(CLASSES):
        single = saliency.explain(model, x[i : i + 1], c, layer=LAYER)
        for method in saliency.METHODS:
            torch.testing.assert_close(batched[method][i : i + 1], single[method])


def test_explain_shapes_and_one_int_for_all(x):
    maps = saliency.explain(tiny_vgg(), x, 2, layer=LAYER)
    assert list(maps) == list(saliency.METHODS)
    assert maps["gradcam"].shape == (3, 1, 16, 16) and maps["guided_gradcam"].shape == (3, 3, 16, 16)


def test_bad_layer_lists_valid_ones(x):
    with pytest.raises(ValueError, match=r"unknown layer 'conv9'.*features\.relu3.*head\.1"):
        saliency.grad_cam(tiny_vgg(), x, CLASSES, "conv9")


def test_layer_not_in_the_forward_pass(x):
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.spare = tiny_vgg(), nn.Conv2d(3, 3, 1)  # spare: registered, never called

        def forward(self, x):
            return self.net(x)

    with pytest.raises(ValueError, match="'spare' is not called"):
        saliency.grad_cam(WithSpare(), x, CLASSES, "spare")


def test_bad_method_class_count_and_missing_relus(x):
    with pytest.raises(ValueError, match="valid methods are: vanilla, deconvnet"):
        saliency.check_methods("vanilla,smoothgrad")
    with pytest.raises(ValueError, match="3 classes for a batch of 2|got 3 target classes"):
        saliency.vanilla(tiny_vgg(), x[:2], CLASSES)
    with pytest.raises(ValueError, match="need a layer"):
        saliency.explain(tiny_vgg(), x, CLASSES)
    functional = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5))
    with pytest.raises(ValueError, match="no ReLU-like modules"):
        saliency.guided_backprop(functional, x, CLASSES)


def _hooks(model: nn.Module) -> int:
    return sum(len(d) for m in model.modules() for d in (m._forward_hooks, m._forward_pre_hooks,
                                                          m._backward_hooks, m._backward_pre_hooks))


def test_model_is_left_as_found(x):
    model = tiny_vgg().train()
    before = [(name, id(m)) for name, m in model.named_modules()]
    saliency.explain(model, x, CLASSES, layer=LAYER)
    with pytest.raises(ValueError):  # an error half-way must not leave swapped modules or hooks behind
        saliency.explain(model, x[:2], CLASSES, layer=LAYER)
    assert [(name, id(m)) for name, m in model.named_modules()] == before
    assert _hooks(model) == 0 and model.training
    assert all(p.grad is None for p in model.parameters())


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) in (torch.Tensor, nn.Parameter))


def test_repeated_calls_do_not_grow_memory(x):
    model = tiny_vgg()
    saliency.explain(model, x, CLASSES, layer=LAYER)
    before = _live_tensors()
    for _ in range(3):
        saliency.explain(model, x, CLASSES, layer=LAYER)
    assert _live_tensors() == before


def test_works_under_no_grad_and_with_frozen_weights(x):
    model = tiny_vgg().requires_grad_(False)
    with torch.no_grad():
        maps = saliency.explain(model, x, CLASSES, layer=LAYER)
    assert all(np.isfinite(m.numpy()).all() and m.abs().max() > 0 for m in maps.values())


def test_score_maps_with_a_region():
    """A segmentation net's (N, K, H, W) scores: the gradient of one class's scores summed over a region."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1)).eval()
    x = torch.rand(1, 3, 8, 8)
    region = torch.zeros(1, 8, 8, dtype=torch.bool)
    region[:, 2, 3] = True
    ours = saliency.vanilla(net, x, 1, region=region)
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(net(xg)[0, 1, 2, 3], xg)
    torch.testing.assert_close(ours, expected)


def test_region_score_makes_a_segmenter_a_classifier_for_captum():
    """``region=`` and captum on ``RegionScore`` explain the same thing: the summed scores of one region."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 3, 3, padding=1),
                        nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(3, 3, 1)).eval()
    x = torch.rand(2, 3, 8, 8)
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[0, 2:5, 1:4] = True
    region[1, 5:, 5:] = True
    wrapped = saliency.RegionScore(net, region)
    assert wrapped(x).shape == (2, 3)
    for ours, reference in ((saliency.vanilla, Saliency), (saliency.deconvnet, Deconvolution),
                            (saliency.guided_backprop, GuidedBackprop)):
        kwargs = {"abs": False} if ours is saliency.vanilla else {}
        assert_agree(ours(net, x, [1, 2], region=region),
                     reference(wrapped).attribute(x.clone(), target=[1, 2], **kwargs))


def test_shared_targets_equal_one_call_per_target():
    """explain_targets shares one forward pass per rule among its targets; each answer is explain's own."""
    from deconvnet.config import ModelConfig
    from deconvnet.model.network import DeconvNet

    torch.manual_seed(0)
    net = DeconvNet(ModelConfig(width=1 / 16, input_size=64, fc_kernel=2, pretrained=False)).eval()
    x = torch.randn(2, 3, 64, 64)
    whole = torch.ones(2, 64, 64, dtype=torch.bool)
    part = torch.zeros(2, 64, 64, dtype=torch.bool)
    part[:, 10:30, 20:40] = True
    targets = [([3, 5], whole), ([7, 1], whole), ([3, 5], part)]
    shared = saliency.explain_targets(net, x, targets, layer="encoder.blocks.4")
    for (classes, region), answer in zip(targets, shared, strict=True):
        alone = saliency.explain(net, x, classes, layer="encoder.blocks.4", region=region)
        assert list(answer) == list(saliency.METHODS)
        for method in saliency.METHODS:
            torch.testing.assert_close(answer[method], alone[method], rtol=1e-5, atol=1e-7)
    assert not torch.equal(shared[0]["vanilla"], shared[1]["vanilla"]), "another class, another map"
