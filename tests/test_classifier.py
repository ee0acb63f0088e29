"""The demo's ImageNet classifier: its predictions on real photos, image conversion, and saliency on it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import skimage.data
import torch
from captum.attr import LayerGradCam
from PIL import Image
from test_saliency import Deconvolution6, GuidedBackprop6, assert_agree

from deconvnet.explain import classifier, saliency

CHELSEA, COFFEE = 285, 967  # ImageNet's "Egyptian cat" and "espresso"


@pytest.fixture(scope="module")
def model() -> classifier.ImageNetClassifier:
    return classifier.load_classifier()


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return torch.cat([classifier.preprocess(skimage.data.chelsea()), classifier.preprocess(skimage.data.coffee())])


def test_top1_on_chelsea_and_coffee(model, photos):
    with torch.no_grad():
        (cat, *_), (coffee, *_) = classifier.topk(model(photos), k=3)
    assert (cat.index, cat.name) == (CHELSEA, "Egyptian cat")
    assert (coffee.index, coffee.name) == (COFFEE, "espresso") and coffee.probability > 0.5
    assert len(classifier.categories()) == 1000


@pytest.mark.filterwarnings("ignore:Setting backward hooks", "ignore:Input Tensor 0")
def test_saliency_on_the_classifier_matches_captum(model, photos):
    """ReLU6 modules, one of them reused for stem and head: captum's rules on ReLU6 agree exactly."""
    classes = [CHELSEA, COFFEE]
    for ours, theirs in ((saliency.guided_backprop, GuidedBackprop6), (saliency.deconvnet, Deconvolution6)):
        assert_agree(ours(model, photos, classes), theirs(model).attribute(photos.clone(), target=classes))
    cam = saliency.grad_cam(model, photos, classes, classifier.CAM_LAYER, upsample=False)  # (2, 1, 7, 7)
    assert_agree(cam, LayerGradCam(model, model.features).attribute(photos, target=classes,
                                                                    relu_attributions=True))


def test_preprocess_converts_any_mode_to_rgb():
    grey = np.tile(np.linspace(0, 1, 64), (48, 1))  # float greyscale, as skimage returns it
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :32, 3] = 255  # left half opaque red, right half transparent
    wide = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20)
    for image in (grey, rgba, wide, Image.fromarray(rgba).convert("P"), Image.fromarray(rgba, "RGBA")):
        x = classifier.preprocess(image, size=32)
        assert x.shape == (1, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    rgb = np.asarray(classifier.to_rgb(rgba))
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, -1]) == (255, 255, 255)  # alpha onto white
    with pytest.raises(ValueError, match="expected an image array"):
        classifier.preprocess(np.zeros((4, 4, 2)))


def test_load_image_errors_and_modes(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        classifier.load_image(tmp_path / "missing.png")
    (tmp_path / "noise.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="cannot read"):
        classifier.load_image(tmp_path / "noise.jpg")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "grey.png")
    data = (tmp_path / "grey.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read"):
        classifier.load_image(tmp_path / "cut.png")
    assert classifier.load_image(tmp_path / "grey.png").mode == "RGB"


def test_missing_packages_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite-pytorch==0.1.0"):
        classifier.load_classifier()
