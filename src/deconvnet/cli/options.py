"""Options more than one command takes."""

from __future__ import annotations


def add_data_options(p, what: str) -> None:
    """``--voc-root`` / ``--sbd-root``: a real PASCAL VOC 2012 tree (and SBD) instead of the generated SynthVOC."""
    p.add_argument("--voc-root", default=None, metavar="PATH",
                   help=f"{what} on real PASCAL VOC 2012: its VOCdevkit folder, the folder above it, or "
                        "VOCdevkit/VOC2012 (default: the preset's generated SynthVOC)")
    p.add_argument("--sbd-root", default=None, metavar="PATH",
                   help="SBD's release (benchmark_RELEASE or its dataset folder): its labels join VOC's train "
                        "split, minus VOC's val images (needs --voc-root)")


def use_data(args):
    """Check ``--voc-root`` / ``--sbd-root`` now (one clear line if they are no VOC / SBD tree) and use them."""
    from deconvnet.data.datasets import use_voc

    return use_voc(args.voc_root, args.sbd_root)
