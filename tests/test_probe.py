"""Linear probes: on constructed features the answers are known; the fit is scikit-learn's logistic regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from deconvnet.explain import probe, probe_scores
from deconvnet.infer.metrics import VOID, confusion_matrix
from deconvnet.model.network import DeconvNet

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


def fit_samples() -> list[probe.Sample]:
    return [(constructed(scene(i), i), scene(i)) for i in range(12)]


def eval_samples() -> list[probe.Sample]:
    return [(constructed(scene(100 + i), 100 + i), scene(100 + i)) for i in range(6)]


@pytest.fixture(scope="module")
def scores() -> dict[str, probe_scores.StageScores]:
    return probe_scores.probe(fit_samples(), eval_samples(), K, pixels_per_image=600, band=2)


@pytest.fixture(scope="module")
def per_image() -> tuple[probe.Probes, dict[str, probe_scores.StageScores], dict[str, probe_scores.StageCounts]]:
    probes = probe.fit_probes(fit_samples(), K, pixels_per_image=600)
    return probes, *probe_scores.score_probes(probes, eval_samples(), K, band=2, per_image=True)


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
    band = probe_scores.boundary_band(lab, 1)
    assert not band[lab == VOID].any(), "void pixels are never scored"
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[2:10, 2:10] = True  # one pixel either side of the void ring
    expected[5:7, 5:7] = False  # the object's inside, two pixels from void
    expected &= lab != VOID
    assert torch.equal(band, expected)
    flat = torch.zeros(6, 6, dtype=torch.uint8)
    flat[:, 3:] = 2  # a change of label without void also makes a band
    flat_band = probe_scores.boundary_band(flat, 1)
    assert flat_band[:, 1:5].all() and not flat_band[:, [0, 5]].any()


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
    out = probe_scores.probe_stages(net, data[:2], data[2:], ("deconv5", "deconv1"), pixels_per_image=200)
    assert set(out) == {"deconv5", "deconv1"}
    for s in out.values():
        assert 0 <= s.shape_iou <= 1 and 0 <= s.object_accuracy <= 1


def test_per_image_counts_sum_to_the_pooled_counts(per_image, scores):
    """Exact: each image's counts, summed, are the counts of all eval pixels scored at once."""
    probes, pooled_scores, counts = per_image
    samples = eval_samples()
    labels = torch.cat([lab.flatten().long() for _, lab in samples])  # every eval pixel, (P,)
    band = torch.cat([probe_scores.boundary_band(lab.long(), 2).flatten() for _, lab in samples])
    fg = probe.targets(labels, "shape")
    obj = fg == 1
    for s, c in counts.items():
        feats = torch.cat([probe.upsample(m[s], lab.shape).flatten(1) for m, lab in samples], 1).T  # (P, C)
        shape_pred = probes[s]["shape"].predict(feats)
        class_logits = probes[s]["class"].logits(feats)  # (P, K)
        which = class_logits[:, 1:].argmax(1) + 1
        assert len(c) == len(samples) and c.shape.shape == (6, 2, 2) and c.classes.shape == (6, K, K)
        assert np.array_equal(c.shape.sum(0), confusion_matrix(shape_pred, fg, 2).numpy())
        assert np.array_equal(c.classes.sum(0), confusion_matrix(class_logits.argmax(1), labels, K).numpy())
        assert c.band.sum(0).tolist() == [int((shape_pred == fg)[band].sum()), int(band.sum())]
        assert c.objects.sum(0).tolist() == [int((which == labels)[obj].sum()), int(obj.sum())]
        assert c.activation[:, [1, 3]].sum(0).tolist() == [int(obj.sum()), int((fg == 0).sum())]
        mine, theirs = c.pooled(), pooled_scores[s]
        assert (mine.shape_iou, mine.boundary_accuracy, mine.object_accuracy) == (
            theirs.shape_iou, theirs.boundary_accuracy, theirs.object_accuracy)
        assert mine.class_iou == pytest.approx(theirs.class_iou, rel=1e-12)
        assert mine.object_contrast == pytest.approx(theirs.object_contrast, rel=1e-6, nan_ok=True)
        np.testing.assert_equal(vars(theirs), vars(scores[s]), "per_image=True leaves the scores as they were")


def test_stage_difference_and_interval(per_image):
    _, scores_, counts = per_image
    same = probe_scores.stage_difference(counts["classes"], counts["classes"], "object_accuracy")
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}, "a stage against itself: the same images, no gap"
    gain = probe_scores.stage_difference(counts["classes"], counts["shape"], "object_accuracy", seed=3)
    assert gain["value"] == pytest.approx(scores_["classes"].object_accuracy - scores_["shape"].object_accuracy)
    assert 0 < gain["low"] <= gain["value"] <= gain["high"], "the class channels name the objects, shape cannot"
    assert gain == probe_scores.stage_difference(counts["classes"], counts["shape"], "object_accuracy", seed=3)
    for score in probe_scores.SCORES:
        one = probe_scores.stage_interval(counts["coarse"], score, resamples=200)
        assert one["low"] <= one["value"] <= one["high"], score
        assert one["value"] == pytest.approx(getattr(scores_["coarse"], score), rel=1e-6)
    names = ("shape", "classes", "band", "objects", "activation")
    halves = [probe_scores.StageCounts(*(getattr(counts[s], f)[:3] for f in names)) for s in ("classes", "noise")]
    with pytest.raises(ValueError, match="the same images"):
        probe_scores.stage_difference(halves[0], counts["noise"], "shape_iou")
    with pytest.raises(ValueError, match="valid scores are"):
        probe_scores.stage_difference(*halves, "pixel_accuracy")


@pytest.mark.parametrize("cells,size", [((7, 5), (7, 5)), ((4, 3), (13, 10)), ((2, 2), (31, 17)), ((5, 7), (70, 100))])
def test_upsample_at_picks_what_upsample_gives(cells, size):
    """Fitting reads the picked pixels of the upsampled maps without making them (``probe.upsample_at``)."""
    maps = torch.randn(6, *cells)
    flat = torch.randperm(size[0] * size[1])[:50]
    torch.testing.assert_close(probe.upsample_at(maps, size, flat), probe.upsample(maps, size).flatten(1)[:, flat])


def test_scores_at_the_stage_resolution_equal_scores_of_the_upsampled_features():
    """score_probes scores each stage before upsampling (an affine probe commutes with bilinear weights)."""
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 4, (30, 22), generator=g)
    lab[0, :5] = 255
    maps = {"a": torch.rand(8, 4, 3, generator=g), "b": torch.rand(5, 30, 22, generator=g)}  # rectified
    probes = probe.fit_probes([(maps, lab)], 4, 200)
    (scores, counts) = probe_scores.score_probes(probes, [(maps, lab)], 4, per_image=True)
    for s, m in maps.items():
        full = probe.upsample(m, lab.shape)  # (C, H, W): the features at every pixel, then the probes
        shape, classes = probes[s]["shape"].logits(full), probes[s]["class"].logits(full)
        fg = probe.targets(lab, "shape")
        assert counts[s].shape[0].tolist() == confusion_matrix(shape.argmax(0), fg, 2).tolist()
        assert counts[s].classes[0].tolist() == confusion_matrix(classes.argmax(0), lab, 4).tolist()
        obj, bg = fg == 1, fg == 0
        contrast = full.mean(0)[obj].mean() / full.mean(0)[bg].mean()
        assert scores[s].object_contrast == pytest.approx(float(contrast), rel=1e-4)
