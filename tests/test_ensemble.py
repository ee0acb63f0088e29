"""The ensemble rules give the values of hand-built cases; the dense CRF cleans up noisy labels along image edges;
the CRF search keeps the best setting; ``segment`` runs every model and refuses what it cannot do."""

import numpy as np
import pytest
import torch
from segment_stubs import ColourStub, scene

from deconvnet.config import DataConfig, InferConfig
from deconvnet.infer.ensemble import (
    RELEASE_CRF,
    CRFParams,
    crf_candidates,
    dense_crf,
    mean_rule,
    product_rule,
    segment,
    tune_crf,
)


def test_mean_rule_averages_probabilities():
    d = torch.tensor([0.0, np.log(3.0)]).view(2, 1, 1)  # softmax: 1/4, 3/4
    f = torch.tensor([np.log(3.0), 0.0]).view(2, 1, 1)  # softmax: 3/4, 1/4
    assert mean_rule(d, f).flatten().tolist() == pytest.approx([0.5, 0.5])
    f2 = torch.tensor([0.0, 0.0]).view(2, 1, 1)  # uniform: no opinion
    assert mean_rule(d, f2).flatten().tolist() == pytest.approx([3 / 8, 5 / 8])


def test_product_rule_is_the_release_s_clipped_product():
    d = torch.tensor([2.0, 1.0, -4.0]).view(3, 1, 1)
    f = torch.tensor([0.5, 3.0, -1.0]).view(3, 1, 1)
    # clipped product: [1, 3, 0] -> softmax
    expected = torch.softmax(torch.tensor([1.0, 3.0, 0.0]), 0)
    assert torch.allclose(product_rule(d, f).flatten(), expected)
    neg = torch.tensor([-1.0, -2.0, -3.0]).view(3, 1, 1)
    assert product_rule(neg, f).flatten().tolist() == pytest.approx([1 / 3] * 3)  # all clipped: uniform


def noisy_halves(seed=0):
    """A black/white image, split down the middle, with probabilities that are right on 75% of the pixels."""
    rng = np.random.default_rng(seed)
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255
    truth = np.zeros((40, 40), np.int64)
    truth[:, 20:] = 1
    right = rng.random((40, 40)) < 0.75
    p1 = np.where(right == (truth == 1), 0.6, 0.4).astype(np.float32)
    return image, torch.from_numpy(np.stack([1 - p1, p1])), truth


def test_dense_crf_cleans_noise_along_the_image_edge():
    image, probs, truth = noisy_halves()
    before = (probs.argmax(0).numpy() == truth).mean()
    q = dense_crf(image, probs, RELEASE_CRF)
    assert q.shape == probs.shape and torch.allclose(q.sum(0), torch.ones(40, 40), atol=1e-4)
    assert before == pytest.approx(0.75, abs=0.05) and (q.argmax(0).numpy() == truth).mean() > 0.98
    with pytest.raises(ValueError, match="differ in size"):
        dense_crf(image[:10], probs)


def test_release_settings_and_the_search():
    assert (RELEASE_CRF.gaussian_sxy, RELEASE_CRF.gaussian_weight, RELEASE_CRF.bilateral_sxy,
            RELEASE_CRF.bilateral_srgb, RELEASE_CRF.bilateral_weight, RELEASE_CRF.iterations) == (3, 3, 20, 3, 5, 10)
    cands = crf_candidates(InferConfig(crf_weights=(5.0, 10.0), crf_sxy=(20.0,), crf_srgb=(3.0,)))
    assert cands[0] == RELEASE_CRF and len(cands) == 2, "the release's setting once, first"
    off = CRFParams(gaussian_weight=0.0, bilateral_weight=0.0)  # no pairwise terms: the noisy input
    image, probs, truth = noisy_halves()
    best, rows = tune_crf([image], [probs], [truth], [off, RELEASE_CRF], num_classes=2)
    assert best == RELEASE_CRF and rows[0]["mean_iou"] < rows[1]["mean_iou"] and len(rows) == 2
    assert {"bilateral_weight", "mean_iou", "seconds_per_image"} <= set(rows[0])


def test_segment_runs_every_model_with_timings():
    image, truth, boxes = scene()
    data = DataConfig(train_images=1, val_images=1, image_size=64, proposal_side=64)
    cfg = InferConfig(top_n=3)
    nets = dict(deconvnet=ColourStub(), fcn=ColourStub())
    for model in ("deconvnet", "fcn8s", "edeconvnet"):
        out = segment(image, data, cfg, model=model, proposals=boxes, **nets)
        assert out.labels.shape == (64, 64) and out.labels[16, 16] == 1 and out.labels[48, 48] == 2
        assert torch.allclose(out.probabilities.sum(0), torch.ones(64, 64), atol=1e-5)
    out = segment(image, data, cfg, model="edeconvnet", rule="product", crf=RELEASE_CRF, proposals=boxes, **nets)
    assert {"DeconvNet: network", "FCN-8s: whole image", "ensemble", "dense CRF", "total"} <= set(out.timings)
    assert out.crf == RELEASE_CRF and out.labels[16, 16] == 1
    assert set(out.scores) == {"deconvnet", "fcn8s"} and out.scores["fcn8s"].shape == (3, 64, 64)
    assert set(segment(image, data, cfg, model="fcn8s", **nets).scores) == {"fcn8s"}
    with pytest.raises(ValueError, match="needs the trained fcn"):
        segment(image, data, cfg, model="edeconvnet", deconvnet=ColourStub(), proposals=boxes)
    with pytest.raises(ValueError, match="valid models are: deconvnet, fcn8s, edeconvnet"):
        segment(image, data, cfg, model="segnet", **nets)
    with pytest.raises(ValueError, match="valid rules are: mean, product"):
        segment(image, data, cfg, rule="max", **nets)
