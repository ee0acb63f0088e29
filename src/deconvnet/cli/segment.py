"""The ``segment`` command: one image through DeconvNet, FCN-8s or their ensemble, with the CRF if asked.

It says what it must make first (scenes, models) and how long that takes, before a long training starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deconvnet.cli.inputs import load_image, out_folder, output_stem
from deconvnet.cli.options import add_data_options, use_data
from deconvnet.config import CRFParams


def add_segment(sub) -> None:
    p = sub.add_parser("segment", help="segment one image with DeconvNet, FCN-8s or their ensemble, optionally "
                                       "with the dense CRF (chapters 5, 6)")
    p.add_argument("image", help="image file (JPEG, PNG, ...); greyscale, palette, 16-bit and RGBA are converted")
    p.add_argument("--model", default="edeconvnet", choices=["deconvnet", "fcn8s", "edeconvnet"],
                   help="deconvnet: the preset's top-N proposals, combined by its InferConfig.aggregation (max, "
                        "paper Eq. 1); fcn8s: whole image; edeconvnet: the mean of both (default)")
    p.add_argument("--rule", default="mean", choices=["mean", "product"],
                   help="ensemble rule: mean of probabilities (the paper, default) or product of scores (release)")
    p.add_argument("--crf", nargs="?", const="tuned", choices=["tuned", "preset"], default=None,
                   help="refine with the fully connected CRF: 'tuned' (what --crf alone means) is the setting "
                        "chapter 6 chose on held-out val images under this preset, where it has run, else the "
                        "preset's; 'preset' is the preset's InferConfig.crf (the release's setting)")
    p.add_argument("--out", default="segment", help="folder for NAME_EXT_labels.png and NAME_EXT_overlay.png "
                                                     "(a.jpg gives a_jpg_labels.png; default: segment)")
    p.add_argument("--preset", default="auto", help="whose trained models: quick, cpu, paper or auto (default)")
    add_data_options(p, "use the models trained")
    p.set_defaults(func=run_segment)


MAX_SIDE = 2048  # the aggregation keeps three (C, H, W) maps: ~1 GB at 2048 px; shrink larger images first


def run_segment(args) -> None:
    import numpy as np

    from deconvnet.config import get_preset
    from deconvnet.data.datasets import voc_root
    from deconvnet.infer.ensemble import segment
    from deconvnet.train.pipeline import trained_model

    preset = get_preset(args.preset)  # refuse a bad name before reading anything
    out = out_folder(args.out)  # and a place the results cannot go, before the work
    use_data(args)  # and a --voc-root that is no VOC tree
    image = np.array(load_image(args.image, _segment_size), dtype=np.uint8)  # (H, W, 3); clear errors
    _segment_size(args.image, *image.shape[1::-1])
    kinds = {"deconvnet": ["deconvnet"], "fcn8s": ["fcn8s"], "edeconvnet": ["deconvnet", "fcn8s"]}[args.model]
    notice = training_notice(preset, kinds)  # say so before a long training starts
    if notice:
        print(f"deconvnet segment: {notice}", file=sys.stderr, flush=True)
    nets = {}
    if args.model in ("deconvnet", "edeconvnet"):
        nets["deconvnet"] = trained_model(preset, progress=True).model
    if args.model in ("fcn8s", "edeconvnet"):
        nets["fcn"] = trained_model(preset, kind="fcn8s", progress=True).model
    classes = _class_names(voc_root(preset), nets)
    crf, crf_note = None, ""
    if args.crf:
        tuned = tuned_crf(preset.name) if args.crf == "tuned" else None
        crf = tuned or preset.infer.crf
        crf_note = f"; CRF {'tuned in chapter 6' if tuned else 'of the preset'}: {crf.label()}"
    result = segment(image, preset.data, preset.infer, model=args.model, rule=args.rule, crf=crf, **nets)
    labels = result.labels.numpy().astype(np.uint8)  # (H, W)
    paths = _write_outputs(out, output_stem(args.image), image, labels)
    shares = np.bincount(labels.ravel(), minlength=len(classes)) / labels.size
    found = ", ".join(f"{classes[c]} {shares[c]:.0%}" for c in np.argsort(-shares) if shares[c] > 0)
    print(f"{args.model}{' + CRF' if crf else ''} ({preset.name} preset{crf_note}): {found}")
    print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))
    for path in paths:
        print(f"wrote {path}")


def _segment_size(path, w: int, h: int) -> None:
    if min(h, w) < 8 or max(h, w) > MAX_SIDE:
        raise ValueError(f"{path} is {w}x{h} pixels; segment needs 8 to {MAX_SIDE} pixels per side "
                         f"(resize it first)")


# Rough wall time to make what ``segment`` needs from nothing (scenes, proposals, stage 0, both networks); see
# the comments of the presets in config.py.
TRAINING_TIME = {"quick": "a minute or two", "cpu": "about an hour on 2 CPU cores",
                 "paper": "many hours on a GPU, days on a CPU"}


def training_notice(preset, kinds, runs=None, data_root=None) -> str | None:
    """What ``segment`` is about to make before it can run (scenes, models), how long that takes, the way out.

    None when everything is on disk already.
    """
    from deconvnet.data import datasets
    from deconvnet.data.voc import METADATA
    from deconvnet.train.pipeline import needed_runs

    data_root = datasets.DATA if data_root is None else data_root
    todo = [what for what, run_dir in needed_runs(preset, kinds, runs) if not (run_dir / "final.pt").is_file()]
    real = datasets.real_voc()
    if real is None:
        n = preset.data.train_images + preset.data.val_images
        tree = data_root / f"synthvoc-{preset.name}" / "VOCdevkit" / "VOC2012" / METADATA
        make = [] if tree.is_file() else [f"make its {n:,} SynthVOC scenes and their proposals"]
    else:
        n = datasets.missing_proposals(preset, real)
        make = [f"compute the proposals of {n:,} images of {datasets.describe_data(real, short=True)}"] if n else []
    if not todo and not make:
        return None
    make += [f"train {', '.join(todo)}"] if todo else []
    text = (f"the {preset.name} preset has not made everything this needs yet, so it will now {' and '.join(make)} "
            f"({TRAINING_TIME.get(preset.name, 'a while')} for all of it); they are kept for later runs.")
    if preset.name != "quick":
        text += " For a try-out in a minute or two, stop it (Ctrl-C) and add --preset quick."
    return text


def _class_names(root, nets) -> list[str]:
    """The class names of the tree the models were trained on (SynthVOC's shapes, or VOC's 21 classes)."""
    from deconvnet.data import VOCSegmentation

    classes = list(VOCSegmentation(root, "val").classes)
    n = next(iter(nets.values())).cfg.num_classes
    return classes if len(classes) == n else [str(c) for c in range(n)]


def _write_outputs(out, stem: str, image, labels) -> list:
    """``<stem>_labels.png`` (VOC palette, pixel = class) and ``<stem>_overlay.png``, each written atomically.

    ``stem`` is ``output_stem(image)``, which keeps the image's suffix.
    """

    from PIL import Image

    from deconvnet.book.plot import label_overlay
    from deconvnet.data.voc import save_index_png
    from deconvnet.files import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    writers = {
        out / f"{stem}_labels.png": lambda path: save_index_png(path, labels),
        out / f"{stem}_overlay.png": lambda path: Image.fromarray(label_overlay(image, labels)).save(path, "PNG"),
    }
    for path, write in writers.items():
        with atomic_path(path) as tmp:
            write(tmp)
    return list(writers)


def tuned_crf(preset: str, results: Path | None = None) -> CRFParams | None:
    """The CRF chapter 6 chose on its held-out tuning images under ``preset``, read from its saved result.

    None where chapter 6 has not run under that preset. Used by ``segment --crf``.
    """
    from deconvnet.book.page import load_result

    try:
        saved = load_result("06_ensemble", results)
    except FileNotFoundError:
        return None
    tuned = saved.get("crf", {}).get("tuned")
    return CRFParams(**tuned) if saved.get("preset") == preset and tuned else None
