"""The learning study's result file, read back: sparse matrices, intervals, and chapter 4's table of changes."""

import numpy as np
import pytest

from deconvnet.book.study import dense, describe, load_study, point, preset_changes, scored, sparse
from deconvnet.config import get_preset


def _point(crops, skill, seed=0, n=40):
    rng = np.random.default_rng(seed)
    mats = []
    for _ in range(n):
        m = np.zeros((21, 21), np.int64)
        truth = int(rng.integers(1, 21))
        m[0, 0] = 50
        m[truth, truth if rng.random() < skill else 1] = 30
        mats.append(m)
    return {"crops": crops, "crops_per_second": 7.0, "per_crop": sparse(mats)}


def test_sparse_and_dense_round_trip():
    rng = np.random.default_rng(0)
    mats = [rng.integers(0, 3, (21, 21)) * (rng.random((21, 21)) < 0.1) for _ in range(5)]
    assert all(np.array_equal(a, b) for a, b in zip(mats, dense(sparse(mats)), strict=True))


def test_a_point_is_scored_with_intervals_around_its_pooled_value():
    study = {"arms": {"a": {"points": [_point(500, 0.2), _point(1000, 0.9)]}}}
    early, late = point(study, "a", 500), point(study, "a", 1000)
    assert point(study, "a", 2000) is None and point(study, "b", 500) is None
    for p in (early, late):
        v = p["object_accuracy"]
        assert v["low"] <= v["value"] <= v["high"]
    assert late["object_accuracy"]["low"] > early["object_accuracy"]["high"], "a real gain is outside the noise"
    assert describe(None) == "not measured" and describe(late).endswith("]")
    assert scored(_point(1, 1.0))["object_accuracy"]["value"] == 1.0


def test_preset_changes_list_every_difference_from_the_paper_and_none_for_the_paper():
    paper = get_preset("paper")
    study = {"arms": {"imagenet64": {"points": [_point(4000, 0.5)]}}}
    assert preset_changes(paper, paper, study) == []
    rows = {r["what"]: r for r in preset_changes(get_preset("cpu"), paper, study)}
    assert rows["crop side (px)"]["the paper"] == "224" and rows["crop side (px)"]["this preset"] == "64"
    assert "`imagenet64`: what" in rows["crop side (px)"]["study"]
    assert "width (channel multiplier)" not in rows, "the cpu preset keeps the paper's width"


def test_a_missing_study_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python benchmarks/learning.py"):
        load_study(tmp_path / "learning.json")
