"""Chapters 5 and 6's figures draw from what instance-wise inference returns; the overlay tints objects only."""

import matplotlib.pyplot as plt
import numpy as np
from segment_stubs import ColourStub, scene

from deconvnet.book import plot
from deconvnet.config import DataConfig, InferConfig
from deconvnet.infer.aggregate import segment_instances

DATA = DataConfig(train_images=1, val_images=1, image_size=64, proposal_side=64)


def test_label_overlay_tints_objects_and_keeps_background():
    image, truth, _ = scene()
    out = plot.label_overlay(image, truth, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    assert out[0, 0].tolist() == [0, 0, 0]  # background: the image itself
    assert out[16, 16].tolist() == [192, 0, 0]  # red object, half VOC's dark red (128, 0, 0)


def test_aggregation_figures_draw():
    image, truth, boxes = scene()
    result = segment_instances(ColourStub(), image, DATA, InferConfig(top_n=3), proposals=boxes, snapshots=(1, 3))
    figures = [
        plot.filling_in(image, truth, result.snapshots, result.windows),
        plot.iou_vs_proposals({"max": {1: 0.2, 3: 0.4}, "mean": {1: 0.2, 3: 0.3}}, {"whole image": 0.35},
                              {1: 0.3, 3: 0.6}),
        plot.size_bars({"whole": {"small": 0.1, "medium": None, "large": 0.5},
                        "max": {"small": 0.2, "medium": 0.3, "large": 0.4}}, {"small": 2, "medium": 0, "large": 1}),
    ]
    assert [len(f.axes) for f in figures] == [6, 2, 1]
    assert len(figures[0].axes[1].patches) == 3  # the first three windows drawn on the image
    for f in figures:
        f.canvas.draw()
        plt.close(f)


def test_label_map_figures_name_the_classes_they_show():
    image, truth, boxes = scene()
    classes = [f"class {c}" for c in range(21)]
    result = segment_instances(ColourStub(), image, DATA, InferConfig(top_n=3), proposals=boxes, snapshots=(1, 3))
    shown = np.unique(truth[truth < 255]).tolist()
    for fig in (plot.filling_in(image, truth, result.snapshots, result.windows, classes=classes),
                plot.prediction_grid([image], [truth], {"truth again": [truth]}, classes=classes)):
        (legend,) = fig.legends
        names = [t.get_text() for t in legend.get_texts()]
        assert set(names) >= {classes[c] for c in shown} and "class 255" not in names  # void has no entry
        plt.close(fig)
    assert not plot.prediction_grid([image], [truth], {"truth again": [truth]}).legends  # no names, no legend
