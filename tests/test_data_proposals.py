"""Selective search proposals: deterministic, in image pixels, cached per image, and the recall measure."""

import numpy as np
import pytest
from conftest import synthvoc_split
from skimage import data

from deconvnet.config import DataConfig
from deconvnet.data import proposals as P
from deconvnet.data.proposals import cached_proposals, proposal_recall, selective_search

CFG = DataConfig(train_images=4, val_images=2, image_size=64, min_scale=0.2, void_px=1, proposal_side=64)


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    return synthvoc_split(tmp_path_factory, CFG, "val")


def test_selective_search_is_deterministic_and_in_image_pixels():
    image = data.chelsea()  # (300, 451, 3)
    a = selective_search(image, "fast", max_side=120, max_boxes=300)
    b = selective_search(image, "fast", max_side=120, max_boxes=300)
    assert np.array_equal(a, b)  # the ranking's random factor is seeded
    assert a.dtype == np.float32 and a.shape[1] == 4 and 50 < len(a) <= 300
    assert (a[:, 2] > a[:, 0]).all() and (a[:, 3] > a[:, 1]).all()
    assert a[:, [0, 1]].min() >= 0 and a[:, 2].max() <= 451 + 1e-3 and a[:, 3].max() <= 300 + 1e-3
    assert a[:, 2].max() > 300  # shrunk to 120 px for the search, but boxes come back at full size
    assert len(np.unique(a, axis=0)) == len(a)


def test_proposals_are_cached_per_image_and_read_back(val, tmp_path, monkeypatch):
    first = cached_proposals(val, CFG, tmp_path / "a", workers=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{i}.npy" for i in val.ids]
    parallel = cached_proposals(val, CFG, tmp_path / "b", workers=2, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(first, parallel, strict=True))

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached image")

    monkeypatch.setattr(P, "selective_search", fail)
    again = cached_proposals(val, CFG, tmp_path / "a", workers=1, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


def test_default_cache_lies_next_to_vocdevkit_and_names_the_method(val):
    folder = P.proposal_dir(val, CFG)
    assert folder.parent == val.root.parent.parent / "proposals"
    assert folder.name == "selective_search_fast_64px_2000"


def test_recall_counts_objects_covered_at_iou_half_by_the_top_k():
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)]
    props = [np.array([[50, 50, 60, 60], [0, 0, 10, 12], [20, 20, 40, 40]], np.float32)]
    assert proposal_recall(props, gt, top_k=50) == 0.5  # IoU 0.83 and 0.25
    assert proposal_recall(props, gt, top_k=1) == 0.0
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        proposal_recall([props[0]], [np.zeros((0, 4), np.float32)])


def test_proposals_find_most_generated_objects(val):
    props = cached_proposals(val, CFG, workers=1, progress=False)
    gt = [val.annotation(i)[1] for i in range(len(val))]
    assert proposal_recall(props, gt, top_k=2000) >= 0.5
