"""The commands ``summary``, ``book``, ``train``, ``explain`` and ``make-data``: ``add_*`` registers a command's
arguments, ``run_*`` calls into the package. ``segment`` has its own module.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deconvnet.cli.inputs import load_image, out_folder, refuse_another_images_outputs
from deconvnet.cli.options import add_data_options, use_data


def add_summary(sub) -> None:
    p = sub.add_parser("summary", help="print the layer table (name, output shape, parameters) and totals")
    p.add_argument("--preset", default="paper", help="preset whose model to summarise (default: paper)")
    p.add_argument("--model", default="deconvnet", choices=["deconvnet", "fcn8s"])
    p.set_defaults(func=run_summary)


def run_summary(args) -> None:
    from deconvnet.config import get_preset
    from deconvnet.model.summary import format_table, layer_table

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
    add_data_options(p, "execute every chapter")
    p.set_defaults(func=run_book)


def run_book(args) -> None:
    from deconvnet.book.runner import ChapterFailed, chapters, run_chapters

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
    add_data_options(p, "train")
    p.set_defaults(func=run_train)


def run_train(args) -> None:
    from deconvnet.config import get_preset
    from deconvnet.data.datasets import describe_data
    from deconvnet.train.pipeline import pretrained_classifier, trained_model

    preset = get_preset(args.preset)
    real = use_data(args)  # before any work
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

    import matplotlib.pyplot as plt
    import torch

    from deconvnet.book.page import write_json
    from deconvnet.book.plot import saliency_grid, save_figure
    from deconvnet.explain.classifier import CAM_LAYER, load_classifier, preprocess, topk
    from deconvnet.explain.saliency import check_methods, explain

    methods = check_methods(args.methods)  # refuse bad names before the slow part
    if not 1 <= args.topk <= 1000:
        raise ValueError(f"--topk {args.topk}: must lie in 1..1000 (ImageNet has 1000 classes)")
    out = out_folder(args.out) / f"{Path(args.image).stem}_explain"
    refuse_another_images_outputs(out.with_suffix(".json"), args.image, args.out)
    x = preprocess(load_image(args.image))  # (1, 3, 224, 224)
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
    from deconvnet.config import get_preset
    from deconvnet.data import make_data
    from deconvnet.files import check_folder

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

    from deconvnet.data.datasets import describe_data, missing_proposals, voc_proposals
    from deconvnet.data.proposals import proposal_dir

    if args.root is not None:
        raise ValueError(f"--root {args.root} generates SynthVOC and --voc-root {args.voc_root} reads real VOC: "
                         f"give one of them")
    real = use_data(args)
    folder = proposal_dir(real.val_set(), preset.data)
    todo = 0 if args.no_proposals else missing_proposals(preset, real)
    start = time.perf_counter()
    if todo:
        print(f"selective search for {todo:,} images ({preset.name} preset's settings) ...", flush=True)
        voc_proposals(preset, real, workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    state = "skipped (--no-proposals)" if args.no_proposals else f"{todo:,} computed in {seconds:.1f} s"
    print(f"{describe_data(real)} in {real.voc}: proposals {state}, cached in {folder}")
