"""Every figure of the book. Functions take data and return a matplotlib Figure; chapters show them.

Notebook-facing: no core module imports this one. Sections below are grouped by chapter.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch

# ---------------------------------------------------------------------------------------------------------
# Chapter 1: architecture
# ---------------------------------------------------------------------------------------------------------

_GROUP_COLOURS = {"encoder": "#4C72B0", "fc": "#DD8452", "decoder": "#55A868", "score": "#C44E52"}


def architecture_diagram(rows, title: str = "DeconvNet") -> plt.Figure:
    """The encoder-decoder as boxes: height ~ spatial size, width ~ log channels (paper Fig. 2).

    ``rows`` is ``summary.layer_table(...)``; pools and unpools are drawn as thin markers.
    """
    fig, ax = plt.subplots(figsize=(12, 3.6))
    side_max = max(r.output_shape[1] for r in rows)
    x = 0.0
    for r in rows:
        c, h = r.output_shape[0], r.output_shape[1]
        height = 0.15 + 0.85 * h / side_max
        if r.kind in ("pool", "unpool"):
            ax.annotate("", xy=(x + 0.25, 0.5), xytext=(x, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#777", lw=1.2))
            ax.text(x + 0.12, 0.53 + height / 2, r.name, rotation=90, ha="center", va="bottom", fontsize=7,
                    color="#555")
            x += 0.35
            continue
        width = 0.12 + 0.1 * np.log2(max(c, 1))
        box = FancyBboxPatch((x, 0.5 - height / 2), width, height, boxstyle="round,pad=0.005",
                             fc=_GROUP_COLOURS[r.group], ec="white", alpha=0.9)
        ax.add_patch(box)
        if r.kind in ("fc", "score") or r.name.endswith("_1") or r.name == "fc6_deconv":
            ax.text(x + width / 2, 0.5 - height / 2 - 0.03, f"{r.name}\n{c}x{h}", ha="center", va="top",
                    fontsize=6.5)
        x += width + 0.06
    for group, colour in _GROUP_COLOURS.items():
        ax.bar(0, 0, color=colour, label=group)
    ax.legend(loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 1.12))
    ax.set_xlim(-0.1, x + 0.1)
    ax.set_ylim(-0.12, 1.08)
    ax.axis("off")
    ax.set_title(title, pad=22)
    return fig


def parameter_shares(totals: dict[str, dict[str, int]]) -> plt.Figure:
    """Parameters and multiply-accumulates per group, as shares of the total (``summary.group_totals``)."""
    groups = list(totals)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "multiply-accumulates")):
        values = np.array([totals[g][key] for g in groups], dtype=float)
        shares = values / values.sum()
        bars = ax.barh(groups, shares, color=[_GROUP_COLOURS[g] for g in groups])
        for bar, share in zip(bars, shares, strict=True):
            ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{share:.1%}", va="center")
        ax.set_xlim(0, 1.15)
        ax.invert_yaxis()
        ax.set_title(f"share of {label}")
    fig.tight_layout()
    return fig


def filter_grid(weight: torch.Tensor, columns: int = 16, title: str = "") -> plt.Figure:
    """First-layer filters ``(C_out, 3, k, k)`` as small RGB tiles, each scaled to its own range."""
    w = weight.detach().float().cpu()
    w = w - w.amin(dim=(1, 2, 3), keepdim=True)
    w = w / w.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    rows = -(-w.shape[0] // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.5, rows * 0.5))
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, w, strict=False):
        ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest")
    if title:
        fig.suptitle(title, y=1.02)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapters 2 and 7: Zeiler & Fergus projections, saliency maps (``projection``, ``saliency``)
# ---------------------------------------------------------------------------------------------------------

SALIENCY_TITLES = {"vanilla": "gradient", "deconvnet": "deconvnet", "guided": "guided backprop",
                   "gradcam": "Grad-CAM", "guided_gradcam": "guided Grad-CAM"}


def signed_image(signal: torch.Tensor, percentile: float = 99.5) -> np.ndarray:
    """A signed ``(3, H, W)`` map as an RGB image: its mean is grey, the ``percentile`` of the deviation saturates.

    Scaling by a high percentile rather than the maximum keeps a few extreme pixels from greying out the rest;
    centring on the mean shows the structure of deconvnet maps, which are positive almost everywhere.
    """
    s = signal.detach().float().cpu()
    s = s - s.mean()
    scale = float(torch.quantile(s.abs().flatten(), percentile / 100)) or 1.0
    return (s / scale * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, 3)


def heatmap_overlay(image: torch.Tensor, cam: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """A ``(1, H, W)`` class map over its ``(3, H, W)`` image in [0, 1], coloured with jet (Grad-CAM's figures)."""
    heat = cam.detach().float().cpu()[0]
    heat = heat / heat.max().clamp_min(1e-12)
    coloured = plt.get_cmap("jet")(heat.numpy())[..., :3]  # (H, W, 3)
    return (1 - alpha) * image.detach().float().cpu().permute(1, 2, 0).numpy() + alpha * coloured


def saliency_grid(image: torch.Tensor, maps: dict[str, torch.Tensor], predictions, region=None,
                  size: float = 2.2, side: dict | None = None) -> plt.Figure:
    """Rows = methods, columns = classes (chapter 7 demo, ``deconvnet explain``).

    ``image`` is ``(3, H, W)`` in [0, 1]; ``maps[method]`` holds one map per class, ``(K, C, H, W)``;
    ``predictions`` are K ``(index, name, probability)`` triples (``classifier.topk``). ``region`` (H, W),
    the pixels whose score was explained (a segmentation net's object), is outlined on every panel.
    ``side`` maps titles to ``(H, W, 3)`` images shown under the input (e.g. ground truth and prediction).
    """
    methods, k = list(maps), len(predictions)
    fig, axes = plt.subplots(len(methods), k + 1, figsize=(size * (k + 1), (size + 0.1) * len(methods)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    axes[0, 0].imshow(image.detach().float().cpu().permute(1, 2, 0).numpy())
    axes[0, 0].set_title("input")
    for row, (title, picture) in enumerate((side or {}).items(), start=1):
        if row < len(methods):
            axes[row, 0].imshow(picture, interpolation="nearest")
            axes[row, 0].set_title(title, fontsize=9)
    for row, method in enumerate(methods):
        axes[row, 1].set_ylabel(SALIENCY_TITLES.get(method, method))
        for col, (_, name, probability) in enumerate(predictions, start=1):
            m = maps[method][col - 1]
            shown = heatmap_overlay(image, m) if m.shape[0] == 1 else signed_image(m)
            axes[row, col].imshow(shown)
            if row == 0:
                axes[row, col].set_title(f"{name}\np = {probability:.2f}", fontsize=9)
    if region is not None:  # white outline of the explained pixels
        outlined = [axes[0, 0], *axes[1 : 1 + len(side or {}), 0], *axes[:, 1:].flat]
        for ax in outlined:
            ax.contour(np.asarray(region, dtype=float), levels=[0.5], colors="white", linewidths=0.9)
    fig.tight_layout()
    return fig


def projection_grid(projections, columns: int = 9, size: float = 1.1) -> plt.Figure:
    """Zeiler & Fergus (2014, Fig. 2): per channel a row of projections, and beside them the patches that caused them.

    ``projections`` are ``projection.Projection`` objects, grouped by channel in the order given; each channel
    shows at most ``columns`` of them. Every tile is the unit's receptive field (clipped at the image border).
    """
    channels = list(dict.fromkeys((p.activation.layer, p.activation.channel) for p in projections))
    k = min(columns, max(sum((p.activation.layer, p.activation.channel) == c for p in projections) for c in channels))
    fig, axes = plt.subplots(len(channels), 2 * k + 1, figsize=(size * (2 * k + 0.3), size * len(channels) + 0.4),
                             squeeze=False, gridspec_kw=dict(width_ratios=[1] * k + [0.3] + [1] * k))
    for ax in axes.flat:
        ax.axis("off")
    for r, key in enumerate(channels):
        mine = [p for p in projections if (p.activation.layer, p.activation.channel) == key][:k]
        for c, p in enumerate(mine):
            axes[r, c].imshow(signed_image(p.crop()))
            axes[r, k + 1 + c].imshow(p.patch.detach().float().cpu().permute(1, 2, 0).numpy())
        axes[r, 0].text(-0.08, 0.5, f"{key[0]}\nch. {key[1]}", transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=8)
    axes[0, 0].set_title("projections to pixels", loc="left", fontsize=9)
    axes[0, k + 1].set_title("image patches (receptive fields)", loc="left", fontsize=9)
    fig.tight_layout(w_pad=0.2, h_pad=0.3)
    return fig


def localisation_bars(rows, target: str = "image", methods=None, baselines=("centre Gaussian", "uniform"),
                      tolerance: float | None = None) -> plt.Figure:
    """Pointing-game hit rate and energy inside the object per method, for the object's class and an absent one.

    ``rows`` are ``localisation.localise``'s; only those of ``target`` are drawn. Baselines are dashed lines.
    Error bars are one standard error over objects (chapter 7).
    """
    rows = [r for r in rows if r["target"] == target]
    methods = methods or list(dict.fromkeys(r["method"] for r in rows if r["method"] not in baselines))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, key, label in ((axes[0], "hit", "pointing game: hit rate"),
                           (axes[1], "energy", "energy inside the object")):
        for offset, used, colour in ((-0.2, "own", "#4C72B0"), (0.2, "other", "#A6BDDB")):
            values = [np.array([r[key] for r in rows if r["method"] == m and r["class_used"] == used], float)
                      for m in methods]
            means = [np.nanmean(v) for v in values]
            errors = [np.nanstd(v) / np.sqrt(max(np.isfinite(v).sum(), 1)) for v in values]
            ax.bar(np.arange(len(methods)) + offset, means, 0.4, yerr=errors, color=colour, capsize=2,
                   label="object's class" if used == "own" else "a class absent from the image")
        for b, style in zip(baselines, (":", "--"), strict=False):
            level = np.nanmean([r[key] for r in rows if r["method"] == b])
            ax.axhline(level, color="#C44E52", ls=style, lw=1.2, label=f"baseline: {b}")
        ax.set_xticks(range(len(methods)), [SALIENCY_TITLES.get(m, m) for m in methods], rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(label + (f" (tolerance {tolerance:g} px)" if key == "hit" and tolerance is not None else ""),
                     fontsize=10)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path, dpi: int = 120) -> None:
    """Save ``fig`` atomically (a temporary name, then ``os.replace``): readers never see half a file."""
    from pathlib import Path

    from .files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")


# ---------------------------------------------------------------------------------------------------------
# Chapter 2: unpooling - pooling with switches on numbers and on a photo, switches swapped (``layers``)
# ---------------------------------------------------------------------------------------------------------


def _number_grid(ax, values: np.ndarray, title: str, marked=None, cmap: str = "Blues", fmt: str = "{:g}") -> None:
    """A small matrix drawn as coloured cells with its numbers; ``marked`` cells get a red frame."""
    v = np.asarray(values, dtype=float)
    ax.imshow(v, cmap=cmap, vmin=min(v.min(), 0), vmax=max(v.max(), 1e-12) * 1.3)
    for (i, j), value in np.ndenumerate(v):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=9,
                color="#999" if value == 0 else "black")
    if marked is not None:
        for i, j in zip(*np.nonzero(np.asarray(marked)), strict=True):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#C44E52", lw=2))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def pool_unpool_numbers(x: torch.Tensor, pooled: torch.Tensor, switches: torch.Tensor,
                        unpooled: torch.Tensor) -> plt.Figure:
    """One ``(H, W)`` map, its 2x2 max pooling with switches, and the unpooled map (paper Fig. 3, left).

    Grey lines mark the pooling windows; red frames the maxima the switches remember.
    """
    x, p, s, u = (t.detach().cpu().squeeze().numpy() for t in (x, pooled, switches, unpooled))
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), gridspec_kw=dict(width_ratios=[x.shape[1], p.shape[1],
                                                                                      p.shape[1], u.shape[1]]))
    _number_grid(axes[0], x, f"input {x.shape[0]} x {x.shape[1]}", marked=u != 0)
    _number_grid(axes[1], p, "pooled (max of each window)")
    _number_grid(axes[2], s, "switches (flat index)", cmap="Greys", fmt="{:.0f}")
    _number_grid(axes[3], u, f"unpooled {u.shape[0]} x {u.shape[1]}", marked=u != 0)
    for ax in (axes[0], axes[3]):
        for k in range(0, x.shape[0] + 1, 2):
            ax.axhline(k - 0.5, color="#777", lw=1)
        for k in range(0, x.shape[1] + 1, 2):
            ax.axvline(k - 0.5, color="#777", lw=1)
    fig.tight_layout()
    return fig


def switch_positions(switches: torch.Tensor, width: int) -> np.ndarray:
    """Which cell of its 2x2 window each maximum came from, 0..3 (top-left, top-right, bottom-left, bottom-right)."""
    s = switches.detach().cpu().numpy()
    return (s // width % 2) * 2 + (s % width % 2)


_POSITION_COLOURS = np.array([[0.30, 0.45, 0.69], [0.87, 0.52, 0.32], [0.33, 0.66, 0.41], [0.77, 0.31, 0.32]])


def unpooling_on_a_photo(image: torch.Tensor, features: torch.Tensor, pooled: torch.Tensor, switches: torch.Tensor,
                         unpooled: torch.Tensor, zoom: tuple[int, int, int], title: str = "") -> plt.Figure:
    """One channel through max pooling and unpooling, whole (top) and zoomed in (bottom).

    ``image`` ``(3, H, W)``; ``features``/``unpooled`` ``(h, w)`` (the channel before pooling and after
    unpooling), ``pooled``/``switches`` ``(h / 2, w / 2)``; ``zoom`` = (top, left, side) in ``features`` cells
    (even numbers, so that windows are whole).
    """
    top, left, side = zoom
    scale = image.shape[-1] / features.shape[-1]
    positions = switch_positions(switches, features.shape[-1])
    f, p, u = (t.detach().float().cpu().numpy() for t in (features, pooled, unpooled))
    vmax = float(f.max()) or 1.0
    fig, axes = plt.subplots(2, 5, figsize=(12, 5.4))
    crop = (slice(top, top + side), slice(left, left + side))
    half = (slice(top // 2, (top + side) // 2), slice(left // 2, (left + side) // 2))
    rows = [
        (image.permute(1, 2, 0).cpu().numpy(), f, p, _POSITION_COLOURS[positions], u),
        (image[:, int(top * scale) : int((top + side) * scale), int(left * scale) : int((left + side) * scale)]
         .permute(1, 2, 0).cpu().numpy(), f[crop], p[half], _POSITION_COLOURS[positions[half]], u[crop]),
    ]
    titles = ["photo", f"before pooling {f.shape[0]}x{f.shape[1]}", f"pooled {p.shape[0]}x{p.shape[1]}",
              "switches: where each max was", f"unpooled {u.shape[0]}x{u.shape[1]}"]
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            ax = axes[r, c]
            if panel.ndim == 3:
                ax.imshow(panel, interpolation="nearest")
            else:
                ax.imshow(panel, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    for c in range(1, 5):  # the zoom's frame on the whole maps
        k = 2 if c in (2, 3) else 1
        axes[0, c].add_patch(plt.Rectangle((left / k - 0.5, top / k - 0.5), side / k, side / k, fill=False,
                                           ec="#55A868", lw=1.2))
    axes[0, 0].add_patch(plt.Rectangle((left * scale - 0.5, top * scale - 0.5), side * scale, side * scale,
                                       fill=False, ec="#55A868", lw=1.2))
    axes[1, 0].set_ylabel("zoomed in", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c) for c in _POSITION_COLOURS]
    axes[1, 3].legend(handles, ["top left", "top right", "bottom left", "bottom right"], fontsize=7,
                      loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def switch_swap_grid(rows, names) -> plt.Figure:
    """Per row one unit: its image patch, its projection with its own switches, then with other photos' switches.

    ``rows`` are lists of ``projection.Projection`` (own switches first); ``names`` label the switches' photos.
    """
    k = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.5 * (k + 1), 1.6 * len(rows) + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (row, labels) in enumerate(zip(rows, names, strict=True)):
        axes[i, 0].imshow(row[0].patch.detach().float().cpu().permute(1, 2, 0).numpy())
        axes[i, 0].set_title(f"{row[0].activation.layer} ch. {row[0].activation.channel}", fontsize=7)
        for j, (p, label) in enumerate(zip(row, labels, strict=True), start=1):
            axes[i, j].imshow(signed_image(p.crop()))
            axes[i, j].set_title(("own: " if j == 1 else "") + label, fontsize=7,
                                 color="#C44E52" if j == 1 else "black")
    fig.tight_layout()
    return fig


def agreement_strip(own: np.ndarray, others: np.ndarray, labels) -> plt.Figure:
    """Edge agreement per unit: with its own switches (red) and with each other photo's (grey)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(own) + 1.5), 2.8))
    for i, values in enumerate(others):
        ax.scatter(np.full(len(values), i), values, color="#999", s=14,
                   label="other photos' switches" if i == 0 else None)
    ax.scatter(range(len(own)), own, color="#C44E52", s=40, marker="D", label="own switches", zorder=3)
    ax.set_xticks(range(len(own)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("edge agreement (correlation)")
    ax.axhline(0, color="#ccc", lw=0.8)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapter 3: deconvolution - the adjoint, filters stamped onto sparse maps, maps per decoder stage, probes
# ---------------------------------------------------------------------------------------------------------


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
        rgb = _rgb(image)
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
    """Linear-probe scores per decoder stage (``probe.probe_stages``), shape on the left, class on the right.

    ``table`` maps stage -> ``probe.StageScores`` (or dicts of the same fields), coarse to fine; ``references``
    (e.g. the input pixels) are drawn as dotted horizontal lines.
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


# ---------------------------------------------------------------------------------------------------------
# Chapter 4: data - SynthVOC scenes, stage-1 / stage-2 samples, class and scale histograms (``data``)
# ---------------------------------------------------------------------------------------------------------


def colour_mask(mask) -> np.ndarray:
    """A class or instance map ``(H, W)`` in VOC's colours ``(H, W, 3)`` uint8 (void is cream)."""
    from .data.voc import voc_colormap

    return voc_colormap()[np.asarray(mask, dtype=np.int64).clip(0, 255)]


def _rgb(image) -> np.ndarray:
    """``(3, H, W)`` tensor (uint8 or float in [0, 1]) or ``(H, W, 3)`` array -> ``(H, W, 3)`` for imshow."""
    a = image.detach().cpu().permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return a if a.dtype == np.uint8 else a.clip(0, 1)


def _draw_boxes(ax, boxes, names, colours) -> None:
    for (x0, y0, x1, y1), name, colour in zip(boxes, names, colours, strict=True):
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.2))
        ax.text(x0, y0 - 1, name, color="white", fontsize=6, va="bottom",
                bbox=dict(fc=colour, ec="none", pad=0.8, alpha=0.85))


def scene_gallery(dataset, indices, size: float = 2.2) -> plt.Figure:
    """Per scene of a ``data.voc.VOCSegmentation``: image with boxes and class names, class map, instance map.

    Shows what the reader returns for generated and real VOC alike (chapter 4's data gallery).
    """
    cmap = colour_mask(np.arange(256))
    fig, axes = plt.subplots(len(indices), 3, figsize=(3 * size, len(indices) * size * 0.8), squeeze=False)
    for row, i in zip(axes, indices, strict=True):
        image, target = dataset[i]
        labels = target["labels"].tolist()
        colours = [cmap[c] / 255 for c in labels]
        row[0].imshow(_rgb(image))
        _draw_boxes(row[0], target["boxes"].tolist(), [dataset.classes[c] for c in labels], colours)
        row[1].imshow(colour_mask(target["mask"]), interpolation="nearest")
        instances = (target["masks"].numpy() * np.arange(1, len(labels) + 1)[:, None, None]).max(axis=0, initial=0)
        instances[target["mask"].numpy() == 255] = 255
        row[2].imshow(colour_mask(instances), interpolation="nearest")
        row[0].set_ylabel(target["image_id"], fontsize=7)
    for ax, title in zip(axes[0], ("image and boxes", "class mask (void cream)", "instance mask"), strict=True):
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def sample_gallery(samples, indices, classes, title: str = "", size: float = 1.5) -> plt.Figure:
    """Training samples ``(image, label)`` of ``data.samples.Stage1Crops`` / ``Stage2Windows``: crop above,
    label below, titled with the classes it holds (chapter 4)."""
    fig, axes = plt.subplots(2, len(indices), figsize=(len(indices) * size, 2 * size + 0.3), squeeze=False)
    for col, i in enumerate(indices):
        image, label = samples[i]
        present = [classes[c] for c in label.unique().tolist() if 0 < c < 255]
        axes[0, col].imshow(_rgb(image))
        axes[1, col].imshow(colour_mask(label), interpolation="nearest")
        axes[0, col].set_title(", ".join(present) or "background", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def class_scale_histograms(stats: dict, classes) -> plt.Figure:
    """Instances per class and the histogram of object scales, from ``data.voc.class_and_scale_stats``.

    Scale is sqrt(box area / image area): the paper's claim about very small and very large objects
    (Sec. 5.1) needs both ends populated (chapter 4).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw=dict(width_ratios=(1.6, 1)))
    counts = stats["class_counts"][1:]
    left.bar(range(len(counts)), counts, color=colour_mask(np.arange(1, len(counts) + 1)) / 255)
    left.set_xticks(range(len(counts)), classes[1:], rotation=60, ha="right", fontsize=7)
    left.set_ylabel("instances")
    bins = np.geomspace(0.01, 1.0, 21)
    right.hist(stats["scales"].clip(bins[0], bins[-1]), bins=bins, color="#4C72B0")
    right.set_xscale("log")
    right.set_xlabel("object scale: sqrt(box area / image area)")
    right.set_ylabel("instances")
    fig.tight_layout()
    return fig


def proposal_overlay(image, proposals: np.ndarray, gt_boxes: np.ndarray, top_k: int = 50) -> plt.Figure:
    """The first ``top_k`` proposals (thin) over the ground-truth boxes (thick) of one image (chapters 4, 5)."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(_rgb(image))
    for x0, y0, x1, y1 in proposals[:top_k]:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#DD8452", lw=0.5, alpha=0.6))
    for x0, y0, x1, y1 in gt_boxes:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#55A868", lw=2))
    ax.set_title(f"top {top_k} proposals (orange), ground truth (green)", fontsize=8)
    ax.axis("off")
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapter 4: training - loss and validation curves, confusion matrix, predictions beside ground truth
# ---------------------------------------------------------------------------------------------------------

_RECIPE_STYLE = {"two_stage": ("#4C72B0", "-"), "stage2_only": ("#DD8452", "--"), "no_bn": ("#C44E52", ":"),
                 "two_stage seed 1": ("#4C72B0", "-.")}


def training_curves(histories: dict[str, list[dict]], stage_ends: dict[str, int] | None = None) -> plt.Figure:
    """Training loss (left) and validation mean IoU (right) against steps, one line per recipe.

    ``histories`` maps a label to ``[{"train": rows, "val": rows}, ...]`` for its consecutive stages; steps
    continue across stages. ``stage_ends`` marks where stage 1 ends with a dotted line.
    """
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, stages in histories.items():
        colour, style = _RECIPE_STYLE.get(label, (None, "-"))
        offset, steps, losses, vsteps, ious = 0, [], [], [], []
        for hist in stages:
            steps += [offset + r["step"] for r in hist["train"]]
            losses += [r["loss"] for r in hist["train"]]
            vsteps += [offset + r["step"] for r in hist["val"]]
            ious += [r["mean_iou"] for r in hist["val"]]
            offset += hist["train"][-1]["step"] if hist["train"] else 0
        ax_loss.plot(steps, losses, style, color=colour, label=label)
        ax_iou.plot(vsteps, ious, style, color=colour, marker="o", ms=3, label=label)
    for end in (stage_ends or {}).values():
        for ax in (ax_loss, ax_iou):
            ax.axvline(end, color="#999", lw=0.8, ls=":")
    ax_loss.set(xlabel="step", ylabel="training loss (per pixel)", yscale="log", title="training loss")
    ax_iou.set(xlabel="step", ylabel="mean IoU", title="validation mean IoU (whole images)")
    ax_iou.set_ylim(bottom=0)
    ax_loss.legend(frameon=False)
    fig.tight_layout()
    return fig


def confusion_plot(matrix, classes, title: str = "") -> plt.Figure:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), as percentages."""
    m = np.asarray(matrix, dtype=float)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class's pixels")
    fig.tight_layout()
    return fig


def prediction_grid(images, truths, predictions: dict[str, list], size: float = 2.0) -> plt.Figure:
    """Columns: image, ground truth, then one column per model's prediction (VOC colours, void white)."""
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(len(images), columns, figsize=(columns * size, len(images) * size), squeeze=False)
    for r, (image, truth) in enumerate(zip(images, truths, strict=True)):
        panels = [_rgb(image), colour_mask(truth)] + [colour_mask(p[r]) for p in predictions.values()]
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel, interpolation="nearest")
            axes[r, c].axis("off")
    for c, title in enumerate(["image", "ground truth", *predictions]):
        axes[0, c].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapters 5 and 6: instance-wise aggregation, the ensemble and the CRF (``aggregate``, ``ensemble``)
# ---------------------------------------------------------------------------------------------------------


def label_overlay(image, labels, alpha: float = 0.6) -> np.ndarray:
    """``(H, W, 3)`` uint8: the image with every non-background pixel tinted in its class's VOC colour.

    What ``python -m deconvnet segment`` writes beside the palette PNG (chapter 6).
    """
    rgb = _rgb(image)
    rgb = rgb.astype(np.float32) if rgb.dtype == np.uint8 else rgb.astype(np.float32) * 255
    labels = np.asarray(labels)
    tint = colour_mask(labels).astype(np.float32)
    mix = np.where((labels > 0)[..., None], (1 - alpha) * rgb + alpha * tint, rgb)
    return mix.round().clip(0, 255).astype(np.uint8)


_AGG_STYLE = {"max": ("#4C72B0", "-", "o"), "mean": ("#DD8452", "--", "s"),
              "max+whole": ("#4C72B0", ":", "^"), "mean+whole": ("#DD8452", ":", "v")}


def iou_vs_proposals(curves: dict[str, dict[int, float]], baselines: dict[str, float] | None = None,
                     coverage: dict[int, float] | None = None) -> plt.Figure:
    """Mean IoU against the number of proposals N, one line per aggregation; baselines as horizontal lines.

    ``curves`` maps a method ("max", "mean", "max+whole", ...) to ``{N: mean IoU}``; ``coverage`` (``{N:
    share of pixels covered}``) goes in a second panel (chapter 5).
    """
    panels = 2 if coverage else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    for name, points in curves.items():
        colour, style, marker = _AGG_STYLE.get(name, (None, "-", "o"))
        ns = sorted(points)
        ax.plot(ns, [points[n] for n in ns], style, color=colour, marker=marker, ms=4, label=name)
    for (name, value), colour in zip((baselines or {}).items(), ("#55A868", "#C44E52", "#8172B2"), strict=False):
        ax.axhline(value, color=colour, lw=1.2, ls="-.", label=name)
    ax.set_xscale("log")
    ns = sorted({n for p in curves.values() for n in p})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set(xlabel="proposals per image (N)", ylabel="mean IoU", title="mean IoU against N")
    top = max([v for p in curves.values() for v in p.values()] + list((baselines or {}).values()) + [0.05])
    ax.set_ylim(0, top * 1.15)  # from zero: differences are read against the whole scale
    ax.legend(frameon=False, fontsize=8)
    if coverage:
        cx = axes[0, 1]
        ns = sorted(coverage)
        cx.plot(ns, [coverage[n] for n in ns], "-o", color="#555", ms=4)
        cx.set_xscale("log")
        cx.set_xticks(ns, [str(n) for n in ns])
        cx.set_ylim(0, 1.02)
        cx.set(xlabel="proposals per image (N)", ylabel="share of pixels", title="pixels covered by a window")
    fig.tight_layout()
    return fig


def filling_in(image, truth, snapshots: dict[int, dict], windows: np.ndarray, how: str = "max",
               size: float = 2.0) -> plt.Figure:
    """How the aggregated map fills in as proposals are added (the paper's Fig. 6, chapter 5).

    Top row: the image with the first N windows; bottom row: the label map after N windows (uncovered pixels
    hatched grey). Last column: the ground truth. ``snapshots`` is ``InstanceSegmentation.snapshots``.
    """
    ns = sorted(snapshots)
    fig, axes = plt.subplots(2, len(ns) + 1, figsize=((len(ns) + 1) * size, 2 * size + 0.4), squeeze=False)
    rgb = _rgb(image)
    for col, n in enumerate(ns):
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(rgb)
        for x0, y0, x1, y1 in windows[:n]:
            top.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="#FFD700",
                                        lw=0.6, alpha=0.8))
        top.set_xlim(-0.5, rgb.shape[1] - 0.5)
        top.set_ylim(rgb.shape[0] - 0.5, -0.5)
        shown = colour_mask(snapshots[n][how]).copy()
        uncovered = ~np.asarray(snapshots[n]["covered"])
        shown[uncovered] = (shown[uncovered] * 0.3 + 110).astype(np.uint8)  # grey: no window here
        bottom.imshow(shown, interpolation="nearest")
        share = 1 - uncovered.mean()
        top.set_title(f"N = {n}", fontsize=9)
        bottom.set_title(f"{how}, {share:.0%} covered", fontsize=8)
    axes[0, -1].imshow(rgb)
    axes[0, -1].set_title("image", fontsize=9)
    axes[1, -1].imshow(colour_mask(truth), interpolation="nearest")
    axes[1, -1].set_title("ground truth", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def size_bars(table: dict[str, dict[str, float | None]], counts: dict[str, int] | None = None) -> plt.Figure:
    """Mean instance IoU per object-size bin (small, medium, large), one bar per method (chapters 5, 6)."""
    methods = list(table)
    bins = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / len(methods)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, method in enumerate(methods):
        values = [table[method][b] if table[method][b] is not None else np.nan for b in bins]
        ax.bar(np.arange(len(bins)) + (k - (len(methods) - 1) / 2) * width, values, width, label=method,
               color=palette[k % len(palette)])
    names = [f"{b}\n({counts[b]} objects)" if counts else b for b in bins]
    ax.set_xticks(range(len(bins)), names)
    ax.set_ylabel("mean IoU per object")
    ax.legend(frameon=False, fontsize=8, ncol=min(len(methods), 3))
    ax.set_ylim(0, max(0.05, np.nanmax([[v if v is not None else np.nan for v in t.values()]
                                        for t in table.values()]) * 1.25))
    fig.tight_layout()
    return fig
