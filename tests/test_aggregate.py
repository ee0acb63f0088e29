"""Instance-wise inference: max and mean aggregation give the exact values of hand-built cases, uncovered pixels
are background (or whole-image scores), windows go through the network in batches and land where they were cut."""

import numpy as np
import pytest
import torch
from segment_stubs import ColourStub, scene

from deconvnet.config import DataConfig, InferConfig
from deconvnet.infer.aggregate import Aggregator, cut_windows, proposal_windows, segment_instances

DATA = DataConfig(train_images=1, val_images=1, image_size=64, proposal_side=64)


def constant(values, side=4):
    """A ``(C, side, side)`` score map holding ``values[c]`` everywhere."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1).expand(-1, side, side).clone()


def test_max_and_mean_by_hand():
    agg = Aggregator(3, (8, 8))
    agg.add((0, 0, 4, 4), constant([0.0, 2.0, 0.0]))  # window A, no resize (4x4 map into a 4x4 window)
    agg.add((2, 2, 6, 6), constant([0.0, -1.0, 1.0]))  # window B overlaps A on rows/cols 2-3
    overlap, only_a, only_b = (slice(None), 2, 2), (slice(None), 0, 0), (slice(None), 5, 5)
    mx, mean = agg.scores("max"), agg.scores("mean")
    assert mx[overlap].tolist() == [0.0, 2.0, 1.0]  # Eq. 1: per class, the larger of the two
    assert mean[overlap].tolist() == [0.0, 0.5, 0.5]  # Eq. 2 divided by the 2 covering windows
    assert mx[only_a].tolist() == mean[only_a].tolist() == [0.0, 2.0, 0.0]
    assert mx[only_b].tolist() == mean[only_b].tolist() == [0.0, -1.0, 1.0]
    assert agg.labels("max")[2, 2] == 1 and agg.labels("mean")[2, 2] == 1  # tie 0.5/0.5: the first class wins
    assert agg.count[2, 2] == 2 and agg.count[0, 0] == 1 and agg.count[7, 7] == 0


def test_uncovered_pixels_are_background_or_the_fallback():
    agg = Aggregator(3, (8, 8))
    agg.add((0, 0, 4, 4), constant([0.0, -3.0, -5.0]))  # covered, background wins anyway
    agg.add((4, 4, 8, 8), constant([-1.0, 3.0, 0.0]))
    for how in ("max", "mean"):
        assert agg.scores(how)[:, 7, 0].tolist() == [0.0, 0.0, 0.0]  # zero scores: uniform after softmax
        assert agg.labels(how)[7, 0] == 0 and agg.labels(how)[6, 6] == 1
    whole = constant([0.0, 0.0, 9.0], side=8)
    assert agg.scores("max", whole)[:, 7, 0].tolist() == [0.0, 0.0, 9.0]
    assert agg.labels("max", whole)[7, 0] == 2 and agg.labels("max", whole)[6, 6] == 1  # covered: unchanged
    with pytest.raises(ValueError, match="valid ones are: max, mean"):
        agg.scores("median")


def test_windows_are_resized_into_their_box_and_clipped_to_the_image():
    agg = Aggregator(2, (6, 6))
    agg.add((-2, -2, 4, 4), constant([0.0, 1.0], side=3))  # a 6x6 window, a third of it outside
    assert agg.count.sum() == 16 and agg.count[:4, :4].eq(1).all()
    assert torch.allclose(agg.scores("max")[1, :4, :4], torch.ones(4, 4))  # a constant map stays constant
    agg.add((10, 10, 20, 20), constant([5.0, 0.0]))  # wholly outside: counted as added, covers nothing
    assert agg.added == 2 and agg.count.sum() == 16


def test_segment_instances_batches_windows_and_puts_them_back():
    image, truth, boxes = scene()
    stub = ColourStub()
    cfg = InferConfig(top_n=3, batch_size=2)
    result = segment_instances(stub, image, DATA, cfg, proposals=boxes, snapshots=(1, 2, 50))
    assert stub.calls == [2, 1], "three windows in batches of at most two"
    assert result.windows.shape == (3, 4) and result.scores.shape == (3, 64, 64)
    covered = result.coverage > 0
    interior = np.zeros((64, 64), bool)
    interior[10:22, 10:22] = interior[42:54, 42:54] = True  # away from the resize's blurred edges
    assert (result.labels.numpy()[interior] == truth[interior]).all()
    assert (result.labels.numpy()[~covered.numpy()] == 0).all()  # uncovered: background
    assert not covered[0, 63] and covered[16, 16]
    # snapshots: after one window only the red square's window is covered, later both
    assert result.snapshots[1]["covered"].sum() < result.snapshots[2]["covered"].sum()
    assert (result.snapshots[1]["max"][42:54, 42:54] == 0).all() and (result.snapshots[2]["max"][48, 48] == 2)
    assert torch.equal(result.snapshots[50]["max"], result.labels), "fewer proposals than 50: the final map"
    assert set(result.timings) == {"proposals", "crop", "network", "aggregate", "total"}  # no whole-image pass
    assert torch.allclose(result.probabilities.sum(0), torch.ones(64, 64))


def test_whole_image_fallback_fills_uncovered_pixels():
    image, truth, boxes = scene()
    stub = ColourStub()
    result = segment_instances(stub, image, DATA, InferConfig(top_n=1, uncovered="whole"), proposals=boxes,
                               snapshots=(1,))
    assert result.whole_scores is not None and stub.calls[0] == 1  # the whole image first, one pass
    assert result.labels[48, 48] == 2, "the blue square has no window: the whole-image scores label it"
    assert result.snapshots[1]["max"][48, 48] == 0 and result.snapshots[1]["max+whole"][48, 48] == 2


def test_proposals_default_to_selective_search_and_windows_follow_the_training_rule():
    image, _, boxes = scene()
    windows = proposal_windows(boxes, DATA, top_n=2)
    assert windows.shape == (2, 4) and windows[0].tolist() == pytest.approx([6.4, 6.4, 25.6, 25.6])  # 1.2x, square
    crops = cut_windows(image, windows, 32)
    assert crops.shape == (2, 3, 32, 32) and crops.dtype == torch.float32 and crops[0, 0, 16, 16] == 1.0
    result = segment_instances(ColourStub(), image, DATA, InferConfig(top_n=5))
    assert result.timings["proposals"] > 0 and 1 <= len(result.windows) <= 5  # a simple image has few
    with pytest.raises(ValueError, match="valid ones are"):
        segment_instances(ColourStub(), image, DATA, InferConfig(), proposals=boxes, how="sum")


def test_the_aggregation_rule_is_one_config_field():
    image, _, boxes = scene()
    assert InferConfig().aggregation == "max", "the paper's Eq. 1"
    for how in ("max", "mean"):
        configured = segment_instances(ColourStub(), image, DATA, InferConfig(aggregation=how), proposals=boxes)
        given = segment_instances(ColourStub(), image, DATA, InferConfig(), proposals=boxes, how=how)
        assert configured.how == how and torch.equal(configured.scores, given.scores)
    with pytest.raises(ValueError, match="aggregation='sum'"):
        InferConfig(aggregation="sum")


def test_infer_config_splits_val_into_scored_and_tuning_images():
    assert InferConfig(eval_images=3, tune_images=2).image_split(10) == ([0, 1, 2], [8, 9])
    assert InferConfig(eval_images=0, tune_images=2).image_split(5) == ([0, 1, 2], [3, 4])  # 0: all the rest
    assert InferConfig(eval_images=0, tune_images=9).image_split(3) == ([0], [1, 2])  # one is always scored
    with pytest.raises(ValueError, match="use 'background' or 'whole'"):
        InferConfig(uncovered="nearest")
