"""Chapter 3: the adjoint, filters stamped onto sparse maps, maps per decoder stage, probes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from deconvnet.book.plot.base import colour_mask, rgb_array


def matrix_pair(a: torch.Tensor, titles=("A: convolution", "A^T: transposed convolution")) -> plt.Figure:
    """A small convolution as its matrix ``A`` and the transpose ``A^T`` that transposed convolution applies."""
    m = a.detach().float().cpu().numpy()
    lim = float(np.abs(m).max()) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw=dict(width_ratios=[m.shape[1], m.shape[0]]))
    for ax, shown, title in zip(axes, (m, m.T), titles, strict=True):
        ax.imshow(shown, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{title}  ({shown.shape[0]} x {shown.shape[1]})", fontsize=9)
        ax.set_xlabel("input pixel")
        ax.set_ylabel("output pixel")
    fig.tight_layout()
    return fig


def signed_panels(panels, titles, columns: int | None = None, size: float = 2.0, suptitle: str = "",
                  shared: bool = False) -> plt.Figure:
    """Maps ``(h, w)`` side by side, red positive, blue negative, zero white; each scaled to its own range
    unless ``shared``. Used for the stamp demonstration and the step-by-step decoder stage (chapter 3)."""
    arrays = [p.detach().float().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in panels]
    columns = columns or len(arrays)
    rows = -(-len(arrays) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.35), squeeze=False)
    common = max(float(np.abs(a).max()) for a in arrays) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for ax, a, title in zip(axes.flat, arrays, titles, strict=False):
        lim = common if shared else (float(np.abs(a).max()) or 1.0)
        ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def stage_maps_grid(images, masks, maps: list[dict[str, torch.Tensor]], stages, size: float = 1.25,
                    vmax: float | None = None) -> plt.Figure:
    """The paper's Fig. 4 for our network: per image (rows) the input, its truth, and one map per decoder stage.

    ``maps[i][stage]`` is ``(h, w)``, e.g. the channel chosen for that stage; each is scaled to its own
    maximum, or all to ``[0, vmax]`` (probabilities: ``vmax=1``).
    """
    columns = 2 + len(stages)
    fig, axes = plt.subplots(len(images), columns, figsize=(size * columns, size * len(images) + 0.4), squeeze=False)
    for r, (image, mask, row) in enumerate(zip(images, masks, maps, strict=True)):
        rgb = rgb_array(image)
        extent = (0, rgb.shape[1], rgb.shape[0], 0)  # every map drawn over the image's area, whatever its stride
        axes[r, 0].imshow(rgb, extent=extent)
        axes[r, 1].imshow(colour_mask(mask), interpolation="nearest", extent=extent)
        for c, stage in enumerate(stages, start=2):
            m = row[stage].detach().float().cpu().numpy()
            top = vmax if vmax is not None else float(m.max()) or 1.0
            stride = 1  # as probe.upsample: the cells of a cropped map cover the image, the last one in part
            while m.shape[0] * stride < rgb.shape[0] or m.shape[1] * stride < rgb.shape[1]:
                stride *= 2
            axes[r, c].imshow(m, cmap="magma", vmin=0, vmax=top, interpolation="nearest",
                              extent=(0, m.shape[1] * stride, m.shape[0] * stride, 0))
            axes[r, c].set_xlim(0, rgb.shape[1])
            axes[r, c].set_ylim(rgb.shape[0], 0)
    for ax, title in zip(axes[0], ["input", "truth", *stages], strict=True):
        ax.set_title(title.replace("_", "-"), fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(w_pad=0.2, h_pad=0.2)
    return fig


def kernel_grids(layers: dict[str, torch.Tensor], max_in: int = 12, max_out: int = 12) -> plt.Figure:
    """(Transposed) convolution kernels ``(C_in, C_out, k, k)`` as tiles, one panel per layer: rows = input,
    columns = output channel (the first ``max_in`` x ``max_out``), one symmetric colour scale per layer (red
    positive, blue negative)."""
    fig, axes = plt.subplots(1, len(layers), figsize=(4.6 * len(layers), 4.4), squeeze=False)
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("white")
    for ax, (name, weight) in zip(axes[0], layers.items(), strict=True):
        w = weight.detach().float().cpu()[:max_in, :max_out]
        c_in, c_out, k, _ = w.shape
        lim = float(w.abs().max()) or 1.0
        canvas = np.full((c_in * (k + 1) - 1, c_out * (k + 1) - 1), np.nan)
        for i in range(c_in):
            for o in range(c_out):
                canvas[i * (k + 1) : i * (k + 1) + k, o * (k + 1) : o * (k + 1) + k] = w[i, o].numpy()
        im = ax.imshow(canvas, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_xticks([o * (k + 1) + (k - 1) / 2 for o in range(c_out)], range(c_out), fontsize=6)
        ax.set_yticks([i * (k + 1) + (k - 1) / 2 for i in range(c_in)], range(c_in), fontsize=6)
        ax.set_xlabel("output channel", fontsize=8)
        ax.set_ylabel("input channel", fontsize=8)
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        ax.set_title(f"{name}: {' x '.join(map(str, weight.shape))}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return fig


_PROBE_LABELS = {"shape_iou": "shape: foreground IoU", "boundary_accuracy": "shape: accuracy near boundaries",
                 "class_iou": "class: mean IoU", "object_accuracy": "class: accuracy on objects"}


def probe_curves(table, references: dict[str, dict[str, float]] | None = None) -> plt.Figure:
    """Linear-probe scores per decoder stage (``probe_scores.probe_stages``), shape left, class right.

    ``table`` maps stage -> ``probe_scores.StageScores`` (or dicts of the same fields), coarse to fine;
    ``references`` (e.g. the input pixels) are drawn as dotted horizontal lines.
    """
    stages = list(table)
    get = lambda s, f: getattr(table[s], f) if not isinstance(table[s], dict) else table[s][f]  # noqa: E731
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharex=True)
    for ax, fields in zip(axes, (("shape_iou", "boundary_accuracy"), ("class_iou", "object_accuracy")), strict=True):
        for field, colour in zip(fields, ("#4C72B0", "#DD8452"), strict=True):
            ax.plot(range(len(stages)), [get(s, field) for s in stages], marker="o", color=colour,
                    label=_PROBE_LABELS[field])
            for name, ref in (references or {}).items():
                ax.axhline(ref[field], color=colour, ls=":", lw=1)
                ax.text(len(stages) - 0.6, ref[field], name, fontsize=6, color=colour, va="bottom", ha="right")
        for k, s in enumerate(stages):
            if s.startswith("unpool"):
                ax.axvspan(k - 0.4, k + 0.4, color="#eee", zorder=0)
        ax.set_xticks(range(len(stages)), stages, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    axes[0].set_ylabel("score on val images")
    axes[0].set_title("what a linear read-out finds: shape", fontsize=9)
    axes[1].set_title("what a linear read-out finds: class", fontsize=9)
    fig.tight_layout()
    return fig
