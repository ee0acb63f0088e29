"""Linear probes: on constructed features the answers are known; the fit is scikit-learn's logistic regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from deconvnet import probe
from deconvnet.metrics import VOID
from deconvnet.model import DeconvNet

K = 5  # background + 4 object classes


def scene(seed: int, size: int = 64) -> torch.Tensor:
    """A class map: 2-3 rectangles of random classes on background, each with a one-pixel void ring."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(2, 4)):
        top, left = rng.integers(2, size - 24, size=2)
        h, w = rng.integers(10, 22, size=2)
        lab[top - 1 : top + h + 1, left - 1 : left + w + 1] = VOID
        lab[top : top + h, left : left + w] = rng.integers(1, K)
    return torch.from_numpy(lab)


def one_hot(lab: torch.Tensor) -> torch.Tensor:
    clean = torch.where(lab == VOID, torch.zeros_like(lab), lab).long()
    return F.one_hot(clean, K).permute(2, 0, 1).float()  # (K, H, W)


def constructed(lab: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Stages whose content is known: the shape only, the classes, the classes at stride 8, noise."""
    g = torch.Generator().manual_seed(seed)
    noise = 0.05 * torch.randn(1, *lab.shape, generator=g)
    classes = one_hot(lab)
    return {
        "shape": (1 - classes[:1]) + noise,  # object vs background, no word on which object
        "classes": classes + noise,
        "coarse": F.avg_pool2d(classes[None], 8)[0],  # (K, H / 8, W / 8): the classes, blurred by the stride
        "noise": torch.randn(3, *lab.shape, generator=g),
        "bright": (3 - 2 * classes[:1]).expand(2, -1, -1),  # (2, H, W): 3 on objects, 1 on background
    }


@pytest.fixture(scope="module")
def scores() -> dict[str, probe.StageScores]:
    fit = [(constructed(scene(i), i), scene(i)) for i in range(12)]
    test = [(constructed(scene(100 + i), 100 + i), scene(100 + i)) for i in range(6)]
    return probe.probe(fit, test, K, pixels_per_image=600, band=2)


def test_shape_only_features_give_shape_but_not_class(scores):
    s = scores["shape"]
    assert s.shape_iou > 0.99 and s.boundary_accuracy > 0.99
    assert s.object_accuracy < 0.6, "which object it is cannot be read from the shape channel"


def test_class_features_give_everything(scores):
    s = scores["classes"]
    assert min(s.shape_iou, s.boundary_accuracy, s.class_iou, s.object_accuracy) > 0.99


def test_coarse_features_lose_the_boundary_first(scores):
    s = scores["coarse"]
    assert s.shape_iou > 0.8 and s.object_accuracy > 0.9, "the overall shape and class survive a stride of 8"
    assert s.boundary_accuracy < 0.95 < scores["classes"].boundary_accuracy, "but not the exact boundary"


def test_object_contrast(scores):
    assert scores["bright"].object_contrast == pytest.approx(3.0)
    assert scores["classes"].object_contrast == pytest.approx(1, abs=0.05)  # one-hot: the same mean everywhere


def test_noise_gives_nothing(scores):
    s = scores["noise"]
    assert s.shape_iou < 0.5 and s.object_accuracy < 0.6 and s.class_iou < 0.3


def test_fit_matches_scikit_learn():
    """Same objective as LogisticRegression(C): mean cross-entropy + l2 |W|^2 with C = 1 / (2 l2 P)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g) * torch.tensor([1.0, 3.0, 0.5, 2.0]) + 1
    y = (x @ torch.randn(4, 3, generator=g) + torch.randn(400, 3, generator=g)).argmax(1)
    l2 = 1e-3
    ours = probe.fit_probe(x, y, 3, l2=l2, balanced=False)
    z = ((x - x.mean(0)) / x.std(0, unbiased=False)).double().numpy()
    options = dict(C=1 / (2 * l2 * len(x)), tol=1e-10, max_iter=10_000)
    ref = LogisticRegression(**options).fit(z, y.numpy())
    np.testing.assert_allclose(ours.logits(x).softmax(1).numpy(), ref.predict_proba(z), atol=1e-4)
    weighted = probe.fit_probe(x, y, 3, l2=l2)  # balanced, the default: class_weight="balanced", same C
    ref = LogisticRegression(class_weight="balanced", **options).fit(z, y.numpy())
    np.testing.assert_allclose(weighted.logits(x).softmax(1).numpy(), ref.predict_proba(z), atol=1e-4)


def test_boundary_band():
    lab = torch.zeros(12, 12, dtype=torch.uint8)
    lab[3:9, 3:9] = VOID
    lab[4:8, 4:8] = 1
    band = probe.boundary_band(lab, 1)
    assert not band[lab == VOID].any(), "void pixels are never scored"
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[2:10, 2:10] = True  # one pixel either side of the void ring
    expected[5:7, 5:7] = False  # the object's inside, two pixels from void
    expected &= lab != VOID
    assert torch.equal(band, expected)
    flat = torch.zeros(6, 6, dtype=torch.uint8)
    flat[:, 3:] = 2  # a change of label without void also makes a band
    assert probe.boundary_band(flat, 1)[:, 1:5].all() and not probe.boundary_band(flat, 1)[:, [0, 5]].any()


def test_targets_and_bad_task():
    lab = torch.tensor([[0, 3, VOID]], dtype=torch.uint8)
    assert probe.targets(lab, "shape").tolist() == [[0, 1, VOID]]
    assert probe.targets(lab, "class").tolist() == [[0, 3, VOID]]
    with pytest.raises(ValueError, match="valid tasks are: shape, class"):
        probe.targets(lab, "edges")


def test_stage_maps_crop_to_the_image_and_upsample_back():
    torch.manual_seed(0)
    net = DeconvNet(width=0.125, input_size=96, fc_kernel=3).eval()
    image = torch.rand(3, 100, 70)  # padded to 128 x 96 inside
    maps = probe.stage_maps(net, image, ("unpool5", "deconv3", "deconv1", "image", "score"))
    assert maps["unpool5"].shape[1:] == (7, 5)  # stride 16: ceil(100 / 16), ceil(70 / 16)
    assert maps["deconv3"].shape[1:] == (25, 18)  # stride 4
    assert maps["deconv1"].shape[1:] == (100, 70) and maps["score"].shape == (21, 100, 70)
    torch.testing.assert_close(maps["image"], image)
    for m in maps.values():
        assert probe.upsample(m, (100, 70)).shape[1:] == (100, 70)
    with pytest.raises(ValueError, match="valid stages are"):
        probe.stage_maps(net, image, ("deconv6",))


def test_upsample_keeps_cells_centred():
    ramp = torch.arange(4.0)[None, None, :].expand(1, 3, 4)  # (1, 3, 4) cells at stride 4
    up = probe.upsample(ramp, (10, 14))
    assert up.shape == (1, 10, 14)
    torch.testing.assert_close(up[0, 0, 0:3], torch.tensor([0.0, 0.0, 0.125]))  # cell 0 is centred on 1.5
    torch.testing.assert_close(up[0, 0, 5:7], torch.tensor([0.875, 1.125]))  # between cells 0 and 1 (centre 5.5)


def test_probe_stages_runs_on_a_model():
    torch.manual_seed(0)
    net = DeconvNet(width=0.125, input_size=96, fc_kernel=3, num_classes=K).eval()
    data = [((np.random.default_rng(i).random((96, 96, 3)) * 255).astype(np.uint8), scene(i, 96).numpy())
            for i in range(3)]
    out = probe.probe_stages(net, data[:2], data[2:], ("deconv5", "deconv1"), pixels_per_image=200)
    assert set(out) == {"deconv5", "deconv1"}
    for s in out.values():
        assert 0 <= s.shape_iou <= 1 and 0 <= s.object_accuracy <= 1
