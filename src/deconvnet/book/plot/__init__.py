"""Every figure of the book, one module per part of the paper. Functions take data and return a matplotlib
Figure; chapters show them, as ``plot.NAME``.

Notebook-facing: no core module imports this package.

* ``architecture`` - Chapter 1: the network drawn layer by layer, where its parameters sit, its first filters.
* ``visualisation`` - Chapters 2 and 7: Zeiler & Fergus projections, saliency maps, how well they find objects.
* ``unpooling`` - Chapter 2: pooling with switches on numbers and on a photo, switches swapped (``layers``).
* ``deconvolution`` - Chapter 3: the adjoint, filters stamped onto sparse maps, maps per decoder stage, probes.
* ``scenes`` - Chapter 4, the data: SynthVOC scenes, the two stages' samples, class and scale histograms.
* ``training`` - Chapter 4, training: loss and validation curves, the confusion matrix, predictions beside the truth.
* ``inference`` - Chapters 5 and 6: instance-wise aggregation, the ensemble and the CRF.
* ``base`` - Shared pieces of the figures: saving, the VOC colour map on label maps, overlays.
"""

from deconvnet.book.plot.architecture import architecture_diagram, filter_grid, parameter_shares
from deconvnet.book.plot.base import colour_mask, label_overlay, save_figure
from deconvnet.book.plot.deconvolution import kernel_grids, matrix_pair, probe_curves, signed_panels, stage_maps_grid
from deconvnet.book.plot.inference import filling_in, iou_vs_proposals, size_bars
from deconvnet.book.plot.scenes import class_scale_histograms, proposal_overlay, sample_gallery, scene_gallery
from deconvnet.book.plot.training import confusion_plot, prediction_grid, training_curves
from deconvnet.book.plot.unpooling import (
    agreement_strip,
    pool_unpool_numbers,
    switch_positions,
    switch_swap_grid,
    unpooling_on_a_photo,
)
from deconvnet.book.plot.visualisation import (
    SALIENCY_TITLES,
    heatmap_overlay,
    localisation_bars,
    projection_grid,
    saliency_grid,
    signed_image,
)

__all__ = [
    "save_figure",
    "colour_mask",
    "label_overlay",
    "architecture_diagram",
    "parameter_shares",
    "filter_grid",
    "SALIENCY_TITLES",
    "signed_image",
    "heatmap_overlay",
    "saliency_grid",
    "projection_grid",
    "localisation_bars",
    "pool_unpool_numbers",
    "switch_positions",
    "unpooling_on_a_photo",
    "switch_swap_grid",
    "agreement_strip",
    "matrix_pair",
    "signed_panels",
    "stage_maps_grid",
    "kernel_grids",
    "probe_curves",
    "scene_gallery",
    "sample_gallery",
    "class_scale_histograms",
    "proposal_overlay",
    "training_curves",
    "confusion_plot",
    "prediction_grid",
    "iou_vs_proposals",
    "filling_in",
    "size_bars",
]
