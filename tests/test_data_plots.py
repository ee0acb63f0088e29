"""The data gallery's figures draw from what the reader and the samplers return."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import synthvoc_split

from deconvnet.book import plot
from deconvnet.config import DataConfig
from deconvnet.data import Stage1Crops, class_and_scale_stats

CFG = DataConfig(train_images=3, val_images=1, image_size=64, min_scale=0.2, void_px=1, proposal_side=64)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    return synthvoc_split(tmp_path_factory, CFG, "train")


def test_colour_mask_uses_vocs_colours():
    assert plot.colour_mask(np.array([[0, 1, 255]])).tolist() == [[[0, 0, 0], [128, 0, 0], [224, 224, 192]]]


def test_gallery_figures_draw(train):
    figures = [
        plot.scene_gallery(train, [0, 1, 2]),
        plot.sample_gallery(Stage1Crops(train, CFG, 32, train=False), [0, 1], train.classes, title="stage 1"),
        plot.class_scale_histograms(class_and_scale_stats(train), train.classes),
        plot.proposal_overlay(train[0][0], np.array([[0, 0, 10, 10]]), train[0][1]["boxes"].numpy()),
    ]
    assert [len(f.axes) for f in figures] == [9, 4, 2, 1]
    assert figures[0].axes[0].patches  # boxes drawn on the first scene
    for f in figures:
        f.canvas.draw()
        plt.close(f)


def test_architecture_labels_do_not_overlap():
    from deconvnet.config import get_preset
    from deconvnet.model.summary import layer_table

    fig = plot.architecture_diagram(layer_table(get_preset("paper").model))
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in fig.axes[0].texts if t.get_text()]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    plt.close(fig)


def test_long_sample_titles_are_wrapped():
    image, label = np.zeros((3, 16, 16), np.float32), np.arange(16 * 16).reshape(16, 16) % 6
    fig = plot.sample_gallery([(torch.from_numpy(image), torch.from_numpy(label))], [0],
                              ["background", "disk", "ring", "triangle", "ladder", "hourglass"])
    assert "\n" in fig.axes[0].get_title()
    plt.close(fig)
