"""Command line: ``python -m deconvnet COMMAND ...`` (or ``deconvnet COMMAND``).

Each command is a small function that parses nothing itself: ``add_*`` registers its arguments, ``run_*``
calls into the package. Errors a user can act on (bad preset, missing or unreadable file, a folder that
cannot be written) print one line and exit 2; ``--debug`` shows the traceback instead. Output locations are
checked before the slow part.
"""

from __future__ import annotations

import argparse
import sys


def _add_data_options(p, what: str) -> None:
    """``--voc-root`` / ``--sbd-root``: a real PASCAL VOC 2012 tree (and SBD) instead of the generated SynthVOC."""
    p.add_argument("--voc-root", default=None, metavar="PATH",
                   help=f"{what} on real PASCAL VOC 2012: its VOCdevkit folder, the folder above it, or "
                        "VOCdevkit/VOC2012 (default: the preset's generated SynthVOC)")
    p.add_argument("--sbd-root", default=None, metavar="PATH",
                   help="SBD's release (benchmark_RELEASE or its dataset folder): its labels join VOC's train "
                        "split, minus VOC's val images (needs --voc-root)")


def _use_data(args):
    """Check ``--voc-root`` / ``--sbd-root`` now (one clear line if they are no VOC / SBD tree) and use them."""
    from .datasets import use_voc

    return use_voc(args.voc_root, args.sbd_root)


def add_summary(sub) -> None:
    p = sub.add_parser("summary", help="print the layer table (name, output shape, parameters) and totals")
    p.add_argument("--preset", default="paper", help="preset whose model to summarise (default: paper)")
    p.add_argument("--model", default="deconvnet", choices=["deconvnet", "fcn8s"])
    p.set_defaults(func=run_summary)


def run_summary(args) -> None:
    from .config import get_preset
    from .summary import format_table, layer_table

    cfg = get_preset(args.preset).model
    print(format_table(layer_table(cfg, kind=args.model)))


def add_book(sub) -> None:
    p = sub.add_parser("book", help="execute the chapter notebooks with papermill, in _toc.yml order")
    p.add_argument("--preset", default="auto", help="quick, cpu, paper or auto (paper with CUDA, else cpu)")
    p.add_argument("--only", nargs="*", default=None, metavar="CHAPTER",
                   help="run only these chapters (e.g. 01 or 01_architecture); default: all")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="extra notebook parameter (must exist in every selected notebook's parameters cell)")
    p.add_argument("--list", action="store_true", help="list the chapters and exit")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the executed chapters, results/ and provenance.md here instead of book/")
    _add_data_options(p, "execute every chapter")
    p.set_defaults(func=run_book)


def run_book(args) -> None:
    from .book import ChapterFailed, chapters, run_chapters

    if args.list:
        for ch in chapters():
            print(ch.name)
        return
    params = {name: _literal(value) for name, value in args.parameter}
    try:
        run_chapters(preset=args.preset, only=args.only, parameters=params, voc_root=args.voc_root,
                     sbd_root=args.sbd_root, out=args.out)
    except ChapterFailed as err:
        print(f"deconvnet book: {err}", file=sys.stderr)
        sys.exit(1)


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train (or load, if already trained) a model of a preset; torchrun-ready")
    p.add_argument("--preset", default="auto", help="quick, cpu, paper or auto")
    p.add_argument("--stage", type=int, default=2,
                   help="train up to this stage (1 or 2; default 2); 0 = only the CPU presets' shape classifier")
    p.add_argument("--recipe", default="two_stage", help="two_stage, stage2_only or no_bn")
    p.add_argument("--model", default="deconvnet", choices=["deconvnet", "fcn8s"])
    _add_data_options(p, "train")
    p.set_defaults(func=run_train)


def run_train(args) -> None:
    from .config import get_preset
    from .datasets import describe_data
    from .pipeline import pretrained_classifier, trained_model

    preset = get_preset(args.preset)
    real = _use_data(args)  # before any work
    if real is not None:
        print(f"data: {describe_data(real)} in {real.voc}", flush=True)
    if args.stage == 0:
        result = pretrained_classifier(preset, progress=True)
        state = "loaded from" if result.reused else "trained into"
        print(f"shape classifier (stage 0) {state} {result.run_dir}")
        return
    result = trained_model(preset, args.recipe, args.stage, args.model, progress=True)
    last = result.history["val"][-1] if result.history["val"] else {}
    state = "loaded from" if result.reused else "trained into"
    print(f"{args.model} ({args.recipe}, stage {args.stage}) {state} {result.run_dir}")
    if last:
        print(f"val mean IoU {last['mean_iou']:.3f}, pixel accuracy {last['pixel_accuracy']:.3f} (step {last['step']})")


def _literal(text: str):
    """``-p n 3`` gives the int 3, ``-p name abc`` the string 'abc'."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="saliency maps of an ImageNet classifier's top-k classes for one image "
                                       "(chapter 7)")
    p.add_argument("image", help="image file; greyscale, palette and RGBA images are converted to RGB")
    p.add_argument("--topk", type=int, default=3, help="how many of the most probable classes (default: 3)")
    p.add_argument("--methods", default="all",
                   help="comma-separated: vanilla, deconvnet, guided, gradcam, guided_gradcam; or all (default)")
    p.add_argument("--out", default="explain", help="folder for <image>_explain.png and .json (default: explain); "
                                                     "refused if it holds another image's of the same stem")
    p.set_defaults(func=run_explain)


def run_explain(args) -> None:
    from pathlib import Path

    import matplotlib.pyplot as plt
    import torch

    from .book import write_json
    from .classifier import CAM_LAYER, load_classifier, preprocess, topk
    from .plot import saliency_grid, save_figure
    from .saliency import check_methods, explain

    methods = check_methods(args.methods)  # refuse bad names before the slow part
    if not 1 <= args.topk <= 1000:
        raise ValueError(f"--topk {args.topk}: must lie in 1..1000 (ImageNet has 1000 classes)")
    out = _out_folder(args.out) / f"{Path(args.image).stem}_explain"
    _refuse_another_images_outputs(out.with_suffix(".json"), args.image, args.out)
    x = preprocess(_load_image(args.image))  # (1, 3, 224, 224)
    model = load_classifier()
    with torch.no_grad():
        (predictions,) = topk(model(x), args.topk)
    batch = x.expand(args.topk, -1, -1, -1)  # one copy per class: a single backward pass serves all k
    maps = explain(model, batch, [p.index for p in predictions], methods, layer=CAM_LAYER)
    fig = saliency_grid(x[0], maps, predictions)
    save_figure(fig, out.with_suffix(".png"))
    plt.close(fig)
    write_json(out.with_suffix(".json"), {"image": str(args.image), "methods": list(methods),
                                          "predictions": [p._asdict() for p in predictions]})
    for p in predictions:
        print(f"{p.probability:6.1%}  {p.name}")
    print(f"wrote {out.with_suffix('.png')}")


def add_make_data(sub) -> None:
    p = sub.add_parser("make-data", help="write the SynthVOC scenes (VOC 2012 layout) and cache their proposals")
    p.add_argument("--preset", default="quick", help="preset whose data parameters to use (default: quick)")
    p.add_argument("--root", default=None, help="folder to hold VOCdevkit/ (default: data/synthvoc-PRESET)")
    p.add_argument("--workers", type=int, default=0, help="processes drawing scenes (default: one per core)")
    p.add_argument("--no-proposals", action="store_true", help="skip computing selective-search proposals")
    p.add_argument("--voc-root", default=None, metavar="PATH",
                   help="instead of generating scenes, compute and cache the proposals of a real PASCAL VOC 2012 "
                        "tree (its VOCdevkit folder, the folder above it, or VOCdevkit/VOC2012), beside it")
    p.add_argument("--sbd-root", default=None, metavar="PATH",
                   help="with --voc-root: SBD's release, whose training images get proposals too")
    p.set_defaults(func=run_make_data)


def run_make_data(args) -> None:
    from .config import get_preset
    from .data import make_data
    from .files import check_folder

    preset = get_preset(args.preset)
    cfg = preset.data
    if args.voc_root is not None or args.sbd_root is not None:
        _real_proposals(args, preset)
        return
    root = args.root or f"data/synthvoc-{preset.name}"
    check_folder(root, f"--root {root}", "give a folder to hold VOCdevkit/ (it is made if missing)")
    done = make_data(cfg, root, proposals=not args.no_proposals, workers=args.workers)
    print(f"SynthVOC ({cfg.train_images} train + {cfg.val_images} val images) in {done['voc_root']}: "
          f"scenes {done['scenes_s']:.1f} s, proposals {done['proposals_s']:.1f} s")


def _real_proposals(args, preset) -> None:
    """``make-data --voc-root``: check a real tree and cache the preset's proposals beside it."""
    import time

    from .data.proposals import proposal_dir
    from .datasets import describe_data, missing_proposals, voc_proposals

    if args.root is not None:
        raise ValueError(f"--root {args.root} generates SynthVOC and --voc-root {args.voc_root} reads real VOC: "
                         f"give one of them")
    real = _use_data(args)
    folder = proposal_dir(real.val_set(), preset.data)
    todo = 0 if args.no_proposals else missing_proposals(preset, real)
    start = time.perf_counter()
    if todo:
        print(f"selective search for {todo:,} images ({preset.name} preset's settings) ...", flush=True)
        voc_proposals(preset, real, workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    state = "skipped (--no-proposals)" if args.no_proposals else f"{todo:,} computed in {seconds:.1f} s"
    print(f"{describe_data(real)} in {real.voc}: proposals {state}, cached in {folder}")


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
    _add_data_options(p, "use the models trained")
    p.set_defaults(func=run_segment)


MAX_SIDE = 2048  # the aggregation keeps three (C, H, W) maps: ~1 GB at 2048 px; shrink larger images first


def run_segment(args) -> None:
    import numpy as np

    from .config import get_preset
    from .datasets import voc_root
    from .ensemble import segment, tuned_crf
    from .pipeline import trained_model

    preset = get_preset(args.preset)  # refuse a bad name before reading anything
    out = _out_folder(args.out)  # and a place the results cannot go, before the work
    _use_data(args)  # and a --voc-root that is no VOC tree
    image = np.array(_load_image(args.image, _segment_size), dtype=np.uint8)  # (H, W, 3); clear errors
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


def output_stem(image) -> str:
    """``a.jpg`` -> ``a_jpg``: the outputs of ``a.jpg`` and ``a.png`` in one ``--out`` do not overwrite each other."""
    from pathlib import Path

    path = Path(image)
    return f"{path.stem}_{path.suffix[1:]}" if path.suffix else path.name


def _out_folder(out: str):
    """``--out`` as a Path, refused now (before any work) if it is a file or cannot be written."""
    from .files import check_folder

    return check_folder(out, f"--out {out}", "give a folder for the outputs (it is made if missing)")


def _refuse_another_images_outputs(record, image, out) -> None:
    """``explain`` names its outputs by the image's stem: refuse to overwrite those of a differently named image."""
    import json
    from pathlib import Path

    try:
        made_from = json.loads(Path(record).read_text())["image"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing there, or nothing that says where it came from
    if Path(made_from).name != Path(image).name:
        raise ValueError(f"--out {out} already holds {Path(record).stem}.png and .json, made from {made_from}; "
                         f"give {image} another --out, or delete them first")


def _load_image(path, check_size=None):
    """``classifier.load_image``, after a look at the header: an image too large to decode is one clear line.

    ``check_size(path, w, h)`` may refuse the size before the pixels are decoded.
    """
    import warnings
    from pathlib import Path

    from PIL import Image

    from .classifier import load_image

    if Path(path).is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:  # reads the header only
                    w, h = im.size
        except Image.DecompressionBombError as err:
            raise ValueError(f"{path} is too large to open safely ({_bomb(err)}); shrink it first") from None
        except (OSError, SyntaxError, ValueError):
            pass  # load_image says what is wrong with it
        else:
            if check_size is not None:
                check_size(path, w, h)
    try:
        return load_image(path)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path} is too large to open safely ({_bomb(err)}); shrink it first") from None


def _bomb(err: Exception) -> str:
    """PIL's DecompressionBombError without its 'could be decompression bomb DOS attack'."""
    return str(err).split(", could be")[0].rstrip(".")


# Rough wall time to make what ``segment`` needs from nothing (scenes, proposals, stage 0, both networks); see
# the comments of the presets in config.py.
TRAINING_TIME = {"quick": "a minute or two", "cpu": "roughly 20 to 40 minutes on 2 CPU cores",
                 "paper": "many hours on a GPU, days on a CPU"}


def needed_runs(preset, kinds, runs=None) -> list[tuple[str, object]]:
    """``(what, run folder)`` of every model ``trained_model(preset, kind=k)`` loads or trains, k in ``kinds``.

    Mirrors ``pipeline.trained_model`` for the default recipe (two_stage, stage 2); a test checks the two agree.
    """
    import dataclasses

    from . import datasets, pipeline
    from .checkpoint import cache_key

    runs = pipeline.RUNS if runs is None else runs
    model_cfg = dataclasses.replace(preset.model, batch_norm=True)  # two_stage keeps BN
    data_key = datasets.data_key_parts(datasets.real_voc())  # a real VOC tree's identity, as trained_model's

    def decisive(cfg) -> dict:
        return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in pipeline.BOOKKEEPING}

    found, start = [], None
    if preset.pretrain is not None:
        key = cache_key(kind="classifier", model=model_cfg, data=preset.data, samples="objects",
                        train=decisive(preset.pretrain), parent=None, seed=preset.run.seed, **data_key)
        start = runs / preset.name / f"{pipeline.PRETRAIN}-{key}"
        found.append(("the stage-0 shape classifier", start))
    for kind in kinds:
        parent = start
        for k, (samples, cfg) in enumerate(pipeline._plan(preset, "two_stage"), start=1):
            key = cache_key(kind=kind, model=model_cfg, data=preset.data, samples=samples, train=decisive(cfg),
                            parent=parent and parent.name, seed=preset.run.seed, **data_key)
            parent = runs / preset.name / f"two_stage-stage{k}-{key}"
            found.append((f"{kind} stage {k}", parent))
    return found


def training_notice(preset, kinds, runs=None, data_root=None) -> str | None:
    """What ``segment`` is about to make before it can run (scenes, models), how long that takes, the way out.

    None when everything is on disk already.
    """
    from . import datasets
    from .data.voc import METADATA

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
    from .data import VOCSegmentation

    classes = list(VOCSegmentation(root, "val").classes)
    n = next(iter(nets.values())).cfg.num_classes
    return classes if len(classes) == n else [str(c) for c in range(n)]


def _write_outputs(out, stem: str, image, labels) -> list:
    """``<stem>_labels.png`` (VOC palette, pixel = class) and ``<stem>_overlay.png``, each written atomically.

    ``stem`` is ``output_stem(image)``, which keeps the image's suffix.
    """

    from PIL import Image

    from .data.voc import save_index_png
    from .files import atomic_path
    from .plot import label_overlay

    out.mkdir(parents=True, exist_ok=True)
    writers = {
        out / f"{stem}_labels.png": lambda path: save_index_png(path, labels),
        out / f"{stem}_overlay.png": lambda path: Image.fromarray(label_overlay(image, labels)).save(path, "PNG"),
    }
    for path, write in writers.items():
        with atomic_path(path) as tmp:
            write(tmp)
    return list(writers)


COMMANDS = [add_summary, add_book, add_train, add_explain, add_make_data, add_segment]


DEBUG_HELP = "on an error, show the full traceback instead of one line"


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    parser = argparse.ArgumentParser(prog="deconvnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():  # also after the command: `deconvnet segment x.jpg --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, Image.DecompressionBombError) as err:
        if args.debug:
            raise
        print(f"deconvnet {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0


def _one_line(err: Exception) -> str:
    """The error as one line; a bare OS error (errno, file) gets a pointer to ``--debug``."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        also = f" -> {err.filename2}" if err.filename2 else ""
        return f"{where}{err.strerror}{also} (--debug shows where)"
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
